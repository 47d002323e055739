#!/usr/bin/env bash
# Edit-to-live latency through render and reload (the stock-nginx path).
#
#   tests/bench/reload.sh [EDITS] [SIZES...]     (default 20 edits; 10 1000 10000 100000 routes)
#
# For each size: `pullgate up` on N routes, then EDITS edits that add or
# remove one route (atomic rename, as editors save). Each is timed from the
# rename to the first request that sees the change (curl polling every ms),
# and the script prints p50, p99 and max.
set -euo pipefail
cd "$(dirname "$0")/../.."
edits="${1:-20}"; shift || true
sizes=("${@:-10 1000 10000 100000}")
read -r -a sizes <<< "${sizes[*]}"
cargo build -q --release -p pullgate
pg="${CARGO_TARGET_DIR:-target}/release/pullgate"
work="$(mktemp -d /tmp/pg-reload.XXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; rm -rf "$work"' EXIT
port=18090

routes() { # N [extra]
  echo "version: 1"
  echo "gateway: {listen: [\"127.0.0.1:$port\"]}"
  echo "routes:"
  for ((i = 0; i < $1; i++)); do
    echo "  - {name: r$i, image: \"acme/app$i\", upstream: \"http://127.0.0.2:5000/acme/app$i\", mode: redirect}"
  done
  [ -n "${2:-}" ] && echo "  - {name: extra, image: \"acme/extra\", upstream: \"http://127.0.0.2:5000/acme/extra\", mode: redirect}"
  return 0
}
code() { curl -s -o /dev/null -w '%{http_code}' -A docker/20 "http://127.0.0.1:$port/v2/acme/extra/manifests/1"; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }

printf '%8s %8s %8s %8s %12s\n' routes p50_ms p99_ms max_ms startup_s
for n in "${sizes[@]}"; do
  port=$((port + 1))
  d="$work/n$n"; mkdir -p "$d"
  routes "$n" > "$d/plain.yaml"; routes "$n" extra > "$d/extra.yaml"
  cp "$d/plain.yaml" "$d/routes.yaml"
  start=$(date +%s%N)
  "$pg" --state-dir "$d/state" up -c "$d/routes.yaml" --status-listen off > "$d/up.log" 2>&1 &
  pids+=($!)
  until [ "$(code 2>/dev/null)" = 404 ]; do sleep 0.05; done
  startup=$(( ($(date +%s%N) - start) / 1000000 ))
  : > "$d/times"
  for ((e = 1; e <= edits; e++)); do
    if ((e % 2)); then src=extra.yaml; want=307; else src=plain.yaml; want=404; fi
    cp "$d/$src" "$d/next.yaml"
    t0=$(date +%s%N); mv "$d/next.yaml" "$d/routes.yaml"
    until [ "$(code)" = "$want" ]; do sleep 0.001; done
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$d/times"
  done
  printf '%8d %8s %8s %8s %12s\n' "$n" "$(pct 50 < "$d/times")" "$(pct 99 < "$d/times")" "$(pct 100 < "$d/times")" "$(awk -v s="$startup" 'BEGIN {printf "%.1f", s / 1000}')"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
