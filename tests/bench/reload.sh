#!/usr/bin/env bash
# Edit-to-live latency, through render and reload (the stock-nginx path) and
# through Redis and the Lua hooks (target changes, no reload).
#
#   tests/bench/reload.sh [EDITS] [SIZES...]     (default 20 edits; 10 1000 10000 100000 routes)
#   PULLGATE_BIN=/path/to/other/pullgate tests/bench/reload.sh ...   (another build, for a before/after)
#
# For each size: `pullgate up` on N routes, then EDITS edits (atomic rename,
# as editors save). Reload path: each edit adds or removes a route. Redis
# path: each edit switches one route between redirect and proxy. Each is
# timed from the rename to the first request that sees the change (curl
# polling every ms); the script prints p50, p99 and max, and the daemon's
# resident memory after the edits and at its peak.
set -euo pipefail
cd "$(dirname "$0")/../.."
edits="${1:-20}"; shift || true
sizes=("${@:-10 1000 10000 100000}")
read -r -a sizes <<< "${sizes[*]}"
. tests/bench/nginx-lib.sh   # pullgate_bin: $PULLGATE_BIN (another commit's, say), else a release build
pg="$(realpath "$(pullgate_bin)")"
work="$(mktemp -d /tmp/pg-reload.XXXXXX)"
pids=()
trap 'set +e; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null; sleep 1; rm -rf "$work"' EXIT
port=18090

redis_port=16400
redis-server --bind 127.0.0.1 --port $redis_port --save "" --appendonly no --daemonize yes --pidfile "$work/redis.pid" > /dev/null
chmod 755 "$work"

routes() { # N extra-mode|none [lua]
  echo "version: 1"
  if [ "${3:-}" = lua ]; then
    echo "gateway: {listen: [\"127.0.0.1:$port\"], redis: {url: \"redis://127.0.0.1:$redis_port/0\", key: \"bench$port\"}}"
  else
    echo "gateway: {listen: [\"127.0.0.1:$port\"]}"
  fi
  echo "routes:"
  # Default mode (auto) for the others: switching `extra` then changes no
  # host-wide setting, so in Lua mode it is a target change only.
  for ((i = 0; i < $1; i++)); do
    echo "  - {name: r$i, image: \"acme/app$i\", upstream: \"http://127.0.0.2:5000/acme/app$i\"}"
  done
  [ "$2" != none ] && echo "  - {name: extra, image: \"acme/extra\", upstream: \"http://127.0.0.2:5000/acme/extra\", mode: $2}"
  return 0
}
# 307 when redirected; proxied to an upstream that is not there: 502.
code() { curl -s -o /dev/null -w '%{http_code}' -A docker/20 "http://127.0.0.1:$port/v2/acme/extra/manifests/1"; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }

measure() { # PATH N
  local path=$1 n=$2
  port=$((port + 1))
  d="$work/$path-n$n"; mkdir -p "$d"
  if [ "$path" = reload ]; then
    routes "$n" none > "$d/a.yaml"; routes "$n" redirect > "$d/b.yaml"; wa=404; wb=307
  else
    routes "$n" proxy lua > "$d/a.yaml"; routes "$n" redirect lua > "$d/b.yaml"; wa=502; wb=307
  fi
  cp "$d/a.yaml" "$d/routes.yaml"
  start=$(date +%s%N)
  "$pg" --state-dir "$d/state" up -c "$d/routes.yaml" --status-listen off > "$d/up.log" 2>&1 &
  pids+=($!)
  until [ "$(code 2>/dev/null)" = "$wa" ]; do sleep 0.05; done
  startup=$(( ($(date +%s%N) - start) / 1000000 ))
  : > "$d/times"
  for ((e = 1; e <= edits; e++)); do
    if ((e % 2)); then src=b.yaml; want=$wb; else src=a.yaml; want=$wa; fi
    cp "$d/$src" "$d/next.yaml"
    t0=$(date +%s%N); mv "$d/next.yaml" "$d/routes.yaml"
    until [ "$(code)" = "$want" ]; do sleep 0.001; done
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$d/times"
  done
  reloads=$(grep -c "new config is serving" "$d/up.log" || true)
  # The daemon's memory: now, and at its peak (nginx's is its own).
  rss=$(awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/${pids[-1]}/status")
  hwm=$(awk '/^VmHWM/ {printf "%d", $2 / 1024}' "/proc/${pids[-1]}/status")
  printf '%8s %8d %8s %8s %8s %12s %8s %12s\n' "$path" "$n" "$(pct 50 < "$d/times")" "$(pct 99 < "$d/times")" "$(pct 100 < "$d/times")" "$(awk -v s="$startup" 'BEGIN {printf "%.1f", s / 1000}')" "$reloads" "$rss/$hwm"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}

printf '%8s %8s %8s %8s %8s %12s %8s %12s\n' path routes p50_ms p99_ms max_ms startup_s reloads_logged rss/peak_MiB
for n in "${sizes[@]}"; do
  measure redis "$n"
  measure reload "$n"
done
