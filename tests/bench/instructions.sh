#!/usr/bin/env bash
# Instructions per request of the nginx worker, counted by callgrind: steady
# to a few instructions from run to run, where throughput is not, and it
# needs no hardware counters (perf stat has none on many VMs).
#
#   tests/bench/instructions.sh [REQUESTS]   (default 2000)
#   PULLGATE_BIN=path/to/pullgate tests/bench/instructions.sh   (render with
#       that binary, e.g. an older commit's, instead of building this tree)
#
# Each variant runs nginx (one process, no master) under callgrind twice, for
# 500 and for 500 + REQUESTS keep-alive requests of a docker manifest GET; the
# difference over REQUESTS is the cost of one request, start-up excluded.
#   bare+log    server { return 307 ...; } with a schema-v1-shaped JSON log
#   gateway     the rendered pullgate.conf, 1,000 routes, log on
#   no bound    the same without the path-length lookahead of the registry
#               grammar (what the bound against PCRE stack exhaustion costs)
#   Lua mode    the same routes in Lua mode (redis-server running, as deployed)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/nginx-lib.sh
n="${1:-2000}"
for tool in valgrind nginx python3 redis-server; do command -v $tool >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
pg="$(pullgate_bin)"
work="$(mktemp -d /tmp/pg-ins.XXXXXX)"
chmod 755 "$work"
redis_port=16398
redis-server --bind 127.0.0.1 --port $redis_port --save "" --appendonly no --daemonize yes --pidfile "$work/redis.pid" > /dev/null
trap 'set +e; kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$work"' EXIT
port=18082
path=/v2/acme/app500/manifests/1.0

{ echo "version: 1"; echo "gateway: {access_log: $work/gw/logs/access.log, listen: [\"127.0.0.1:$port\"]}"; echo "routes:"
  for ((i = 0; i < 1000; i++)); do
    if ((i % 100 == 99)); then echo "  - {name: r$i, image: \"org$i/*\", upstream: \"http://127.0.0.2:5000/org$i/*\"}"
    else echo "  - {name: r$i, image: \"acme/app$i\", upstream: \"http://127.0.0.2:5000/acme/app$i\"}"; fi
  done; } > "$work/routes.yaml"
mkdir -p "$work/gw" "$work/nobound/conf" "$work/barelog" "$work/lua"
"$pg" --state-dir "$work/state" render -c "$work/routes.yaml" --out "$work/gw/conf" > /dev/null
sed "s|^gateway: {access_log: [^,]*, |gateway: {access_log: $work/lua/logs/access.log, redis: {url: \"redis://127.0.0.1:$redis_port/0\"}, |" "$work/routes.yaml" > "$work/lua/routes.yaml"
"$pg" --state-dir "$work/state" render -c "$work/lua/routes.yaml" --out "$work/lua/conf" > /dev/null
# The sync polls Redis every 0.25 s of wall-clock time, which callgrind
# stretches some 50-fold: poll once a day here, so that a request's count is
# the request's.
sed -i 's/interval = 0\.25,/interval = 86400,/' "$work/lua/conf/pullgate.conf"
grep -q 'interval = 86400,' "$work/lua/conf/pullgate.conf" || { echo "the Lua sync's interval is not where this script expects it" >&2; exit 1; }
grep -q '(?=\[^ \]{1,[0-9]*} )' "$work/gw/conf/pullgate.conf" || echo "(this config has no path bound: the last two rows are the same config)" >&2
sed -e 's/(?=\[^ \]{1,[0-9]*} )//' -e "s|$work/gw/logs|$work/nobound/logs|" "$work/gw/conf/pullgate.conf" > "$work/nobound/conf/pullgate.conf"
cat > "$work/barelog/bare.conf" <<CONF
$(v1like_log_format http://127.0.0.2:5000)
server { listen 127.0.0.1:$port; access_log $work/barelog/logs/access.log v1like; return 307 http://127.0.0.2:5000\$request_uri; }
CONF
wrapper "$work/barelog" "$work/barelog/bare.conf"
wrapper "$work/gw" "$work/gw/conf/pullgate.conf"
wrapper "$work/nobound" "$work/nobound/conf/pullgate.conf"
wrapper "$work/lua" "$work/lua/conf/pullgate.conf" lua

client() { # N: keep-alive GETs as docker, each must be a 307
  python3 - "$1" "$port" "$path" <<'PY'
import http.client, sys
n, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers={"User-Agent": "docker/20.10.24 go/go1.19.8"})
    r = c.getresponse(); r.read()
    assert r.status == 307, r.status
PY
}
ir() { # DIR N -> total instructions
  local out="$work/callgrind.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" nginx -p "$1" -c "$1/nginx.conf" -g 'daemon off; master_process off;' 2> "$work/valgrind.log" &
  local vp=$!
  for _ in $(seq 150); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  client "$2"
  kill -QUIT $vp; wait $vp || true
  awk '/^(summary|totals):/ {print $2}' "$out" | tail -1
}
declare -A per
for v in barelog gw nobound lua; do
  a=$(ir "$work/$v" 500); b=$(ir "$work/$v" $((500 + n)))
  per[$v]=$(( (b - a) / n ))
done
printf '\ninstructions per request (callgrind, nginx worker, GET %s as docker, %d requests)\n' "$path" "$n"
printf '  %-42s %12s\n' "bare nginx return 307, JSON log" "${per[barelog]}"
printf '  %-42s %12s\n' "pullgate, 1,000 routes, log on" "${per[gw]}"
printf '  %-42s %12s\n' "pullgate without the path bound" "${per[nobound]}"
printf '  %-42s %12s\n' "pullgate Lua mode, same routes" "${per[lua]}"
awk -v g="${per[gw]}" -v l="${per[barelog]}" -v u="${per[nobound]}" -v m="${per[lua]}" 'BEGIN {
  printf "  bare+log / gateway: %.3f (the gateway adds %d per request; target >= 0.90)\n", l / g, g - l
  printf "  the path bound: %+d per request (%.2f%% of the gateway)\n", g - u, 100 * (g - u) / u
  printf "  stock gateway / Lua mode: %.3f (Lua mode adds %d per request; target >= 0.97)\n", g / m, m - g }'
