#!/usr/bin/env bash
# Dashboard page timings over a year of data, against the CLI in the same run.
#
#   tests/bench/dashboard.sh [LINES]   (default 1000000, over the last 365 days)
#
# Imports LINES synthetic lines spread over the year to today, starts
# `pullgate serve`, and prints the median of 5 loads (after a warm-up) of the
# overview at each range, of /api/report by client and OS per day over the
# year, and of a badge; the baseline is `pullgate report` with the same
# query from the command line (a process start and the same store reads).
set -euo pipefail
cd "$(dirname "$0")/../.."
lines="${1:-1000000}"
cargo build -q --release -p pullgate
pg="$(realpath "${CARGO_TARGET_DIR:-target}/release/pullgate")"
work="$(mktemp -d /tmp/pg-dashboard.XXXXXX)"
trap 'set +e; kill $server 2>/dev/null; rm -rf "$work"' EXIT
start=$(date -u -d '364 days ago' +%Y-%m-%d)
python3 tests/synth/access_log.py --lines "$lines" --days 365 --start "$start" --seed 5 > "$work/year.log"
"$pg" --state-dir "$work/state" analytics import "$work/year.log" > /dev/null
printf 'version: 1\ngateway:\n  resolver: ["127.0.0.53"]\nroutes:\n  - name: acme\n    image: acme/app\n    upstream: http://127.0.0.2:5000/acme/app\n    auth: none\n' > "$work/routes.yaml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$pg" --state-dir "$work/state" serve --listen "127.0.0.1:$port" -c "$work/routes.yaml" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/favicon.ico" -o /dev/null && break; sleep 0.1; done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
load() { # PATH -> median ms of 5 loads after one
  curl -sf "http://127.0.0.1:$port$1" -o /dev/null
  for _ in 1 2 3 4 5; do curl -sf -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$1"; done | median | awk '{printf "%d", $1 * 1000}'
}
cli() { # ARGS -> median ms of 5 runs after one
  "$pg" --state-dir "$work/state" "$@" > /dev/null
  for _ in 1 2 3 4 5; do s=$(date +%s%N); "$pg" --state-dir "$work/state" "$@" > /dev/null; echo $(( ($(date +%s%N) - s) / 1000000 )); done | median
}
base=$(cli report --since 365d --by client,os --granularity day --format json)
api=$(load "/api/report?range=12m&granularity=day&by=client,os")
printf '\n%d lines over 365 days; median of 5 after a warm-up, ms\n' "$lines"
printf '  %-52s %6s\n' "what" "ms"
printf '  %-52s %6d\n' "pullgate report --by client,os --granularity day (CLI)" "$base"
printf '  %-52s %6d   (%.2f of the CLI)\n' "/api/report, the same query" "$api" "$(echo "$api / $base" | bc -l)"
for r in 24h 7d 30d 12m; do
  printf '  %-52s %6d\n' "overview page, range=$r" "$(load "/?range=$r")"
done
printf '  %-52s %6d\n' "badge, pulls of acme/app over 30d" "$(load "/badge/acme/app/pulls.svg?period=30d")"
