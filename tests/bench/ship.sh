#!/usr/bin/env bash
# Shipper throughput: tail + parse + anonymise + batch into a null sink, into
# the local sink and into CloudWatch Logs (moto_server, for information), on a
# generated schema-v1 log; then the CPU it costs at a steady 10,000 lines/s.
#
#   tests/bench/ship.sh [LINES]     (default 1,000,000)
#
# Prints lines/s, MiB/s, CPU seconds and peak RSS of `pullgate ship`
# (release build), measured from /proc until its checkpoint reaches the end
# of the log. Needs moto_server on PATH for the CloudWatch line (tests/run
# installs it in ~/.cache/pullgate/moto-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
lines="${1:-1000000}"
cargo build -q --release -p pullgate
pg="${CARGO_TARGET_DIR:-target}/release/pullgate"
work="$(mktemp -d /tmp/pg-ship-bench.XXXXXX)"
trap 'set +e; kill "$pid" "$moto" "$writer" 2>/dev/null; rm -rf "$work"' EXIT
pid="" moto="" writer=""
PATH="$PATH:${XDG_CACHE_HOME:-$HOME/.cache}/pullgate/moto-venv/bin"

# Lines of the last n/1000 seconds (CloudWatch takes at most 14 days back).
python3 - "$lines" "$work/access.log" <<'PY'
import sys, random, time
n, path = int(sys.argv[1]), sys.argv[2]
start = int(time.time()) - n // 1000 - 1
uas = ["docker/27.1.1 go/go1.22.5 git-commit/cc13f95 kernel/6.8.0 os/linux arch/amd64 UpstreamClient(Docker-Client/27.1.1 (linux))",
       "containerd/1.7.20", "skopeo/1.15.1", "libpod/5.2.0", "Go-http-client/1.1"]
with open(path, "w") as f:
    for i in range(n):
        ip = f"{random.randint(1,223)}.{random.randint(0,255)}.{random.randint(0,255)}.{random.randint(1,254)}"
        f.write('{"ts":"%d.%03d","id":"%032x","ip":"%s","host":"get.acme.dev","method":"GET","uri":"/v2/acme/app/manifests/1.%d","status":307,"bytes":0,"rt":0.000,"ua":"%s","accept":"application/vnd.oci.image.index.v1+json","auth":"bearer","range":"","dnt":"","route":"app","upstream":"https://ghcr.io/v2/acme-org/app/manifests/1.%d","mode":"redirect"}\n'
                % (start + i // 1000, i % 1000, i, ip, i % 50, random.choice(uas), i % 50))
PY
size=$(stat -c %s "$work/access.log")
ticks=$(getconf CLK_TCK)

measure() { # LABEL ARGS...
  local label=$1; shift
  rm -rf "$work/state" "$work/events"
  local t0; t0=$(date +%s%N)
  "$pg" --state-dir "$work/state" ship --log "$work/access.log" "$@" > "$work/ship.log" 2>&1 &
  pid=$!
  until grep -q "\"offset\":$size}" "$work/state/ship/ship.checkpoint" 2>/dev/null; do sleep 0.02; done
  local wall=$(( $(date +%s%N) - t0 ))
  local cpu rss
  cpu=$(awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat")
  rss=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ -s "$work/state/ship/dead-letters.jsonl" ]; then
    echo "ship.sh: the generated log has lines the shipper dead-lettered:" >&2; head -2 "$work/state/ship/dead-letters.jsonl" >&2; exit 1
  fi
  awk -v l="$lines" -v b="$size" -v w="$wall" -v c="$cpu" -v r="$rss" -v label="$label" -v base="$base" 'BEGIN {
    s = w / 1e9
    printf "  %-24s %10.0f lines/s %8.1f MiB/s   wall %5.2f s   cpu %5.2f s   %5.1f MiB/s per cpu-s   %4.1f x sha256sum   peak rss %5.1f MiB\n",
      label, l / s, b / 1048576 / s, s, c, b / 1048576 / c, c / base, r }'
}

# A baseline in the same run, since machines here are noisy: the CPU time of
# one sha256sum pass over the same bytes (the better of two).
sha_cpu() { local TIMEFORMAT='%3U %3S'; { time sha256sum "$work/access.log" > /dev/null; } 2>&1 | awk '{print $1 + $2}'; }
base=$(printf '%s\n%s\n' "$(sha_cpu)" "$(sha_cpu)" | sort -g | head -1)

printf 'shipper on %d lines (%.0f MiB), release build; baseline: sha256sum of the log takes %.2f cpu-s\n' "$lines" "$(echo "$size / 1048576" | bc -l)" "$base"
measure "null sink, no country" --sink null --geoip-dir none
measure "null sink" --sink null
measure "local sink (fsync/batch)" --sink local --sink-dir "$work/events"
if command -v moto_server >/dev/null; then
  port=$((30000 + RANDOM % 2000))
  moto_server -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
  moto=$!
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    measure "cloudwatch (moto)" --cloudwatch-group bench --cloudwatch-endpoint "http://127.0.0.1:$port"
  kill "$moto"; wait "$moto" 2>/dev/null || true
else
  echo "  cloudwatch (moto)        skipped: moto_server is not installed"
fi

# A steady 10,000 lines/s for 20 s (100 lines every 10 ms), into the local
# sink: the shipper's CPU over that time, as a fraction of one core.
rm -rf "$work/state" "$work/events"
head -c 0 /dev/null > "$work/steady.log"
"$pg" --state-dir "$work/state" ship --log "$work/steady.log" --sink local --sink-dir "$work/events" > "$work/ship.log" 2>&1 &
pid=$!
python3 - "$work/access.log" "$work/steady.log" <<'PY' &
import sys, time
src, dst = open(sys.argv[1], "rb"), open(sys.argv[2], "ab", buffering=0)
t = time.monotonic()
for _ in range(2000):
    dst.write(b"".join(src.readline() for _ in range(100)))
    t += 0.01
    time.sleep(max(0, t - time.monotonic()))
PY
writer=$!
sleep 2
c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t0=$(date +%s%N)
sleep 15
c1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t1=$(date +%s%N)
wait "$writer" || true
awk -v c=$((c1 - c0)) -v t="$ticks" -v w=$((t1 - t0)) 'BEGIN {
  printf "  steady 10,000 lines/s     %.3f of a core (%.2f cpu-s over %.1f s)\n", c / t / (w / 1e9), c / t, w / 1e9 }'
