#!/usr/bin/env bash
# The whole pipeline under load: wrk drives REQUESTS requests through a
# gateway (`pullgate up`, its own nginx) that ships its log to the local sink,
# while `pullgate analytics ingest --follow` feeds the store (SQLite, or
# ClickHouse with STORE=clickhouse) and a prober measures the lag from a
# request to the dashboard's report.
#
#   tests/bench/pipeline.sh [REQUESTS]       (default 10000000)
#   STORE=clickhouse tests/bench/pipeline.sh
#
# Prints sustained requests/s (and the ratio to the same gateway with
# shipping and ingest off, measured first in the same run), the CPU share of
# the sidecar (shipper; its daemon idles) and of the ingester, the lag
# p50/p99 from request to report, and the store's request count against
# the lines nginx logged and wrk's count.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/nginx-lib.sh
. tests/bench/clickhouse-lib.sh
requests="${1:-10000000}"
store_kind="${STORE:-sqlite}"
for tool in wrk curl python3; do command -v $tool >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
pg="$(realpath "$(pullgate_bin)")"
work="$(mktemp -d /tmp/pg-pipeline.XXXXXX)"
up="" ingester="" prober=""
cleanup() {
  set +e
  kill $prober $ingester 2>/dev/null || true
  [ -n "$up" ] && kill "$up" 2>/dev/null && wait "$up" 2>/dev/null
  ch_stop
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
port=$(free_port)
dash=$(free_port)
cat > "$work/routes.yaml" <<EOF
version: 1
gateway:
  listen: ["127.0.0.1:$port"]
routes:
  - {name: app, image: acme/app, upstream: "https://ghcr.io/acme/app", mode: redirect}
EOF
store=()
if [ "$store_kind" = clickhouse ]; then
  ch_start "$work/clickhouse"
  store=(--store "$CH_STORE/pipeline")
fi
url="http://127.0.0.1:$port/v2/acme/app/manifests/1.0"
# Many clients, as a popular image has: the agent (and so the origin, a
# hash of address and agent) cycles through 100,000 values.
wrk_lua="$work/ua.lua"
cat > "$wrk_lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, { ["User-Agent"] = "containerd/1.7." .. (n % 100000) })
end
LUA

start_up() { # ARGS...
  "$pg" --state-dir "$work/state" up -c "$work/routes.yaml" --status-listen off --dashboard-listen "127.0.0.1:$dash" \
    --geoip-dir none "$@" > "$work/up.log" 2>&1 &
  up=$!
  for _ in $(seq 1 200); do curl -s -o /dev/null "$url" && break; sleep 0.05; done
}
stop_up() { kill "$up"; wait "$up" 2>/dev/null || true; up=""; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
cpu_s() { awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }

# Baseline: the same gateway, nothing shipped or ingested.
start_up --no-ship --no-analytics
wrk -t1 -c32 -d10s -s "$wrk_lua" "$url" > "$work/base.txt"
base=$(rps "$work/base.txt")
stop_up
rm -rf "$work/state"

# The pipeline: shipping on, the ingester a process of its own.
start_up --no-analytics --sink local
"$pg" --state-dir "$work/state" analytics ingest --follow --poll-ms 2000 "${store[@]}" > "$work/ingest.log" 2>&1 &
ingester=$!
api="http://127.0.0.1:$dash/api/report?since=1h"
if [ "$store_kind" = clickhouse ]; then
  # The dashboard of `up` reads SQLite; the prober asks ClickHouse's report.
  seen() { "$pg" --state-dir "$work/state" report --since 1h --format csv --by tag "${store[@]}" | grep -q "^probe-$1,"; }
else
  seen() { curl -s "$api&tag=probe-$1" | grep -q '"requests":[1-9]'; }
fi
# The prober: one request with a tag of its own, then poll until the report counts it.
(
  k=0
  while :; do
    k=$((k + 1))
    t0=$(date +%s%N)
    curl -s -o /dev/null -A "docker/27.3.1 go/go1.22.7 os/linux arch/amd64" "http://127.0.0.1:$port/v2/acme/app/manifests/probe-$k"
    until seen "$k"; do sleep 0.5; done
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$work/lag.txt"
    sleep 1
  done
) &
prober=$!
# Calibrate: how long REQUESTS take at this rate.
wrk -t1 -c32 -d5s -s "$wrk_lua" "$url" > "$work/cal.txt"
secs=$(python3 -c "print(max(10, int($requests / float('$(rps "$work/cal.txt")'))))")
up_cpu0=$(cpu_s "$up"); in_cpu0=$(cpu_s "$ingester"); t0=$(date +%s%N)
wrk -t1 -c32 -d"${secs}s" -s "$wrk_lua" "$url" > "$work/run.txt"
wall=$(( $(date +%s%N) - t0 ))
up_cpu=$(echo "$(cpu_s "$up") - $up_cpu0" | bc -l); in_cpu=$(echo "$(cpu_s "$ingester") - $in_cpu0" | bc -l)
kill $prober 2>/dev/null || true; wait $prober 2>/dev/null || true; prober=""
sent=$(awk '/requests in/ {print $1}' "$work/run.txt")
calibration=$(awk '/requests in/ {print $1}' "$work/cal.txt")
touch "$work/lag.txt"
probes=$(( $(wc -l < "$work/lag.txt") + 1 ))
# Everything nginx logged reaches the store.
logged() { cat "$work/state/nginx/logs/pullgate.access.log"* 2>/dev/null | wc -l; }
stored() {
  if [ "$store_kind" = clickhouse ]; then
    "$pg" --state-dir "$work/state" report --since 1h --format json "${store[@]}"
  else
    curl -s "$api"
  fi | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["requests"])'
}
caught=$(date +%s)
lines=$(logged) # the log grows no more: count its lines once
until [ "$(stored)" -ge "$lines" ]; do sleep 1; done
caught=$(( $(date +%s) - caught ))

lag_p() { sort -n "$work/lag.txt" | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p); if (i<NR*p) i++; if (i<1) i=1; print a[i]}'; }
w=$(echo "$wall / 1000000000" | bc -l)
printf '\npipeline: %s requests by wrk in %.0f s through pullgate up (shipping to the local sink), ingest into %s\n' "$sent" "$w" "$store_kind"
printf '  sustained: %s requests/s; %s with shipping and ingest off: ratio %.2f\n' "$(rps "$work/run.txt")" "$base" "$(echo "$(rps "$work/run.txt") / $base" | bc -l)"
printf '  CPU: sidecar (shipper) %.1f%% of one core, ingester %.1f%% of one core (2 cores in all)\n' \
  "$(echo "100 * $up_cpu / $w" | bc -l)" "$(echo "100 * $in_cpu / $w" | bc -l)"
printf '  lag from request to report: p50 %s ms, p99 %s ms (%s probes)\n' "$(lag_p 0.5)" "$(lag_p 0.99)" "$(wc -l < "$work/lag.txt")"
printf '  counts: wrk %s (and %s calibrating), up to %s probes; nginx logged %s, the store counts %s; caught up %s s after wrk stopped\n' \
  "$sent" "$calibration" "$probes" "$lines" "$(stored)" "$caught"
