#!/usr/bin/env bash
# Gateway throughput against bare nginx, and render / nginx -t time by route count.
#
#   tests/bench/gateway.sh [SECONDS] [ROUNDS]   (default 5 s per wrk run, 5 rounds)
#
# Same nginx binary, same nginx.conf wrapper (one worker, leaving the other core
# to wrk), same connections, run back to back:
#   bare   server { return 307 http://upstream$request_uri; }   access log off
#   bare+log  the same with a schema-v1-shaped JSON access log
#   gateway   the rendered pullgate.conf (1,000 routes, default mode auto: docker is
#             redirected by its user agent), access log on
#   +ship     the same, with `pullgate ship` tailing its log (null sink, country
#             lookups on) at idle priority, and again at its default, normal
#             priority; after each such round the script waits until the
#             shipper has read the whole log, and prints how long that took
#   Lua       the same routes in Lua mode
# The variants take turns, round after round; each ratio is the median of the
# per-round ratios, so that a slow moment of the machine hits both sides.
# Figures are for comparison within one run only: machines here are noisy.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/nginx-lib.sh
secs="${1:-5}"
rounds="${2:-5}"
conns=50
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
pg="$(pullgate_bin)"
work="$(mktemp -d /tmp/pg-bench.XXXXXX)"
chmod 755 "$work"   # nginx workers (nobody, when run as root) read the route table
trap 'set +e; for p in "$work"/*/nginx.pid; do [ -f "$p" ] && kill -QUIT "$(cat "$p")" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
port=18080

routes() { # N: N exact routes, every 100th a glob
  local n=$1
  echo "version: 1"
  echo "gateway: {listen: [\"127.0.0.1:$port\"]}"
  echo "routes:"
  for ((i = 0; i < n; i++)); do
    if ((i % 100 == 99)); then
      echo "  - {name: r$i, image: \"org$i/*\", upstream: \"http://127.0.0.2:5000/org$i/*\"}"
    else
      echo "  - {name: r$i, image: \"acme/app$i\", upstream: \"http://127.0.0.2:5000/acme/app$i\"}"
    fi
  done
}


run_wrk() { # URL -> "rps p99"
  wrk -t1 -c$conns -d"${secs}s" --latency -H 'User-Agent: docker/20.10.24 go/go1.19.8' "$1" > "$work/wrk.out"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
  grep -q "Non-2xx or 3xx" "$work/wrk.out" && { echo "unexpected status codes:" >&2; cat "$work/wrk.out" >&2; exit 1; }
  echo "$rps $p99"
}

# --- throughput -------------------------------------------------------------
mkdir -p "$work/bare" "$work/barelog" "$work/gw" "$work/gwlua" "$work/gwship" "$work/gwshipn"
cat > "$work/bare/bare.conf" <<CONF
server { listen 127.0.0.1:$port; return 307 http://127.0.0.2:5000\$request_uri; }
CONF
cat > "$work/barelog/bare.conf" <<CONF
$(v1like_log_format http://127.0.0.2:5000)
server { listen 127.0.0.1:$port; access_log $work/barelog/logs/access.log v1like; return 307 http://127.0.0.2:5000\$request_uri; }
CONF
wrapper "$work/bare" "$work/bare/bare.conf"
wrapper "$work/barelog" "$work/barelog/bare.conf"
routes 1000 > "$work/gw/routes.yaml"
sed -i "s|^gateway: {|gateway: {access_log: $work/gw/logs/access.log, |" "$work/gw/routes.yaml"
"$pg" --state-dir "$work/state" render -c "$work/gw/routes.yaml" --out "$work/gw/conf" > /dev/null
wrapper "$work/gw" "$work/gw/conf/pullgate.conf"
# The same routes in Lua mode: targets from the route table (Redis running, as deployed).
redis_port=16399
redis-server --bind 127.0.0.1 --port $redis_port --save "" --appendonly no --daemonize yes --pidfile "$work/redis.pid" > /dev/null
trap 'set +e; kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null; for p in "$work"/*/nginx.pid; do [ -f "$p" ] && kill -QUIT "$(cat "$p")" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
sed "s|^gateway: {access_log: [^,]*, |gateway: {access_log: $work/gwlua/logs/access.log, redis: {url: \"redis://127.0.0.1:$redis_port/0\"}, |" "$work/gw/routes.yaml" > "$work/gwlua/routes.yaml"
"$pg" --state-dir "$work/state" render -c "$work/gwlua/routes.yaml" --out "$work/gwlua/conf" > /dev/null
wrapper "$work/gwlua" "$work/gwlua/conf/pullgate.conf" lua
# The stock gateway again, its log tailed by the shipper (idle, then normal priority).
shippers=()
for v in gwship gwshipn; do
  sed "s|^gateway: {access_log: [^,]*, |gateway: {access_log: $work/$v/logs/access.log, |" "$work/gw/routes.yaml" > "$work/$v/routes.yaml"
  "$pg" --state-dir "$work/state" render -c "$work/$v/routes.yaml" --out "$work/$v/conf" > /dev/null
  wrapper "$work/$v" "$work/$v/conf/pullgate.conf"
  : > "$work/$v/logs/access.log"
  priority=idle; [ $v = gwshipn ] && priority=normal
  "$pg" --state-dir "$work/ship-$v" ship --log "$work/$v/logs/access.log" --sink null --ship-priority $priority > "$work/ship-$v.log" 2>&1 &
  shippers+=($!)
done
trap 'set +e; kill "${shippers[@]}" 2>/dev/null || true; kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null || true; for p in "$work"/*/nginx.pid; do [ -f "$p" ] && kill -QUIT "$(cat "$p")" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
# caught_up V: seconds until V's shipper has read its whole log (its checkpoint's offset).
caught_up() {
  local s log="$work/$1/logs/access.log" cp="$work/ship-$1/ship/ship.checkpoint"
  s=$(date +%s%N)
  for _ in $(seq 6000); do
    [ -f "$cp" ] && [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["offset"])' "$cp")" = "$(stat -c %s "$log")" ] && break
    sleep 0.1
  done
  awk -v ms="$(ms "$s")" 'BEGIN {printf "%.1f", ms / 1000}'
}

path=/v2/acme/app500/manifests/1.0
variants=(bare barelog gw gwship gwshipn gwlua)
declare -A rps p99 catchup
for v in "${variants[@]}"; do
  start "$work/$v"
  curl -s -o /dev/null -w '%{http_code}' -A docker/20 "http://127.0.0.1:$port$path" | grep -q 307 || { echo "$v does not answer 307:" >&2; tail -5 "$work/$v/logs/error.log" >&2; exit 1; }
  wrk -t1 -c$conns -d1s "http://127.0.0.1:$port$path" > /dev/null # warm up
  stop "$work/$v"
done
for ((round = 1; round <= rounds; round++)); do
  for v in "${variants[@]}"; do
    start "$work/$v"
    read -r r p < <(run_wrk "http://127.0.0.1:$port$path")
    rps[$v]+="$r "; p99[$v]+="$p "
    stop "$work/$v"
    case $v in gwship*) catchup[$v]+="$(caught_up $v) " ;; esac
  done
done
for i in 0 1; do
  kill -0 "${shippers[$i]}" 2>/dev/null || { echo "a shipper stopped:" >&2; cat "$work"/ship-gwship*.log >&2; exit 1; }
done
ratios() { # A B: median of per-round A/B
  paste -d' ' <(tr ' ' '\n' <<< "${rps[$1]}" | grep .) <(tr ' ' '\n' <<< "${rps[$2]}" | grep .) | awk '{printf "%.3f ", $1 / $2}' | med
}
printf '\nthroughput: wrk -t1 -c%d, %d rounds of %ss, one nginx worker, GET %s as docker\n' "$conns" "$rounds" "$secs" "$path"
printf '  %-34s %12s %10s   %s\n' "variant" "median rps" "median p99" "per round (rps)"
for v in "${variants[@]}"; do
  case $v in bare) label="bare nginx return 307, no log" ;; barelog) label="bare nginx return 307, JSON log" ;; gw) label="pullgate, 1,000 routes, log on" ;;
    gwship) label="pullgate + shipping (idle prio)" ;; gwshipn) label="pullgate + shipping (normal prio)" ;; gwlua) label="pullgate Lua mode, same routes" ;; esac
  printf '  %-34s %12s %10s   %s\n' "$label" "$(med <<< "${rps[$v]}")" "$(tr ' ' '\n' <<< "${p99[$v]}" | grep . | awk '/ms$/ {printf "%d\n", $1 * 1000; next} /us$/ {printf "%d\n", $1; next} /s$/ {printf "%d\n", $1 * 1000000}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] "us"}')" "${rps[$v]}"
done
# Cost per request, from the worker's own counters: steadier than throughput.
# A VM without hardware counters: perf stat succeeds and says `<not supported>`.
if perf stat -x, -e instructions true 2>&1 >/dev/null | grep -q '^[0-9]'; then
  printf '\ncost per request (perf stat on the nginx worker, %ss of wrk)\n' "$secs"
  printf '  %-34s %14s %14s\n' variant instructions cycles
  declare -A ins
  for v in bare barelog gw gwlua; do
    start "$work/$v"
    worker=$(pgrep -P "$(cat "$work/$v/nginx.pid")" | head -1)
    perf stat -x, -e instructions,cycles -p "$worker" -o "$work/perf.out" -- sleep "$((secs + 1))" &
    perfpid=$!
    sleep 0.5
    n=$(wrk -t1 -c$conns -d"${secs}s" -H 'User-Agent: docker/20.10.24 go/go1.19.8' "http://127.0.0.1:$port$path" | awk '/requests in/ {print $1}')
    wait $perfpid
    stop "$work/$v"
    i=$(awk -F, '$3 ~ /^instructions/ {print $1}' "$work/perf.out"); c=$(awk -F, '$3 ~ /^cycles/ {print $1}' "$work/perf.out")
    ins[$v]=$((i / n))
    printf '  %-34s %14s %14s\n' "$v" "$((i / n))" "$((c / n))"
  done
  awk -v g="${ins[gw]}" -v l="${ins[barelog]}" -v u="${ins[gwlua]}" 'BEGIN {
    printf "  instructions gateway / bare+log: %.3f (gateway adds %d per request)\n", g / l, g - l
    printf "  instructions Lua / bare+log:     %.3f (Lua mode adds %d per request)\n", u / l, u - l }'
else
  printf '\ncost per request: no hardware counters here (perf stat says <not supported>); by callgrind instead:\n'
  PULLGATE_BIN="$pg" tests/bench/instructions.sh
fi
printf '\nthroughput ratios (median of the per-round ratios)\n'
printf '  gateway / bare (no log):                  %s\n' "$(ratios gw bare)"
printf '  gateway / bare (JSON log):                %s   (target >= 0.95)\n' "$(ratios gw barelog)"
printf '  gateway + shipping / bare (JSON log):     %s\n' "$(ratios gwshipn barelog)"
printf '  gateway + shipping / gateway:             %s   (target >= 0.98; shipping at its default, normal priority)\n' "$(ratios gwshipn gw)"
printf '  gateway + shipping (idle) / gateway:      %s   (--ship-priority idle)\n' "$(ratios gwship gw)"
printf '  Lua / bare (JSON log):                    %s\n' "$(ratios gwlua barelog)"
printf '  Lua / stock gateway:                      %s   (target >= 0.97)\n' "$(ratios gwlua gw)"
printf '  shipping caught up after each round (s):  normal %s; idle %s\n' "${catchup[gwshipn]}" "${catchup[gwship]}"
printf '  (shipping runs in its own process: it adds no instructions to nginx'"'"'s worker)\n'

# --- render and nginx -t by size --------------------------------------------
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
printf '\nrender and check time (median of 3)\n'
printf '  %8s %12s %12s %14s\n' routes "render ms" "nginx -t ms" "conf bytes"
for n in 10 1000 10000; do
  d="$work/size$n"; mkdir -p "$d"
  routes "$n" > "$d/routes.yaml"
  r=(); t=()
  for _ in 1 2 3; do
    s=$(date +%s%N); "$pg" --state-dir "$work/state" render -c "$d/routes.yaml" --out "$d/conf" > /dev/null; r+=("$(ms "$s")")
    wrapper "$d" "$d/conf/pullgate.conf"
    s=$(date +%s%N); nginx -t -q -p "$d" -c "$d/nginx.conf"; t+=("$(ms "$s")")
  done
  printf '  %8d %12s %12s %14s\n' "$n" "$(median "${r[@]}")" "$(median "${t[@]}")" "$(stat -c %s "$d/conf/pullgate.conf")"
done
