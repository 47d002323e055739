#!/usr/bin/env bash
# Analytics import against GoAccess on the same schema-v1 log, in one run.
#
#   tests/bench/analytics.sh [LINES] [BIG_LINES]   (default 1000000 and 0; 10000000 for the flat-memory check)
#
# Generates LINES lines with tests/synth/access_log.py (7 days), then times
# - pullgate analytics import: parse, enrich (tor-geoipdb), anonymise,
#   sessionise, store (SQLite) into a fresh state directory;
# - Debian's GoAccess on the same file (its JSON log format, -o report.json);
# and prints lines/s, wall seconds and peak RSS of each, and the ratio.
# With BIG_LINES, imports that many too and compares peak RSS with LINES'.
# Then imports LINES lines spread over a year and times
# `pullgate report --by client,os --granularity day` over that year.
# The same import and year report again into the ClickHouse store
# (Debian's clickhouse-server, started on a loopback port), beside SQLite's.
# Both programs may use both cores; wall clock is what is compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
lines="${1:-1000000}"
big="${2:-0}"
. tests/bench/nginx-lib.sh
. tests/bench/clickhouse-lib.sh
for tool in goaccess python3 /usr/bin/time; do command -v $tool >/dev/null || { echo "$tool is not installed (apt-get install goaccess time)" >&2; exit 1; }; done
cargo build -q --release -p pullgate
pg="$(realpath "${CARGO_TARGET_DIR:-target}/release/pullgate")"
work="$(mktemp -d /tmp/pg-analytics.XXXXXX)"
trap 'set +e; ch_stop; rm -rf "$work"' EXIT

gen() { # N FILE [DAYS]
  local s; s=$(date +%s%N)
  python3 tests/synth/access_log.py --lines "$1" --days "${3:-7}" --start 2025-03-03 --seed 3 --truth "$2.truth.json" > "$2"
  printf 'generated %d lines in %.1f s\n' "$(wc -l < "$2")" "$(echo "($(date +%s%N) - $s) / 1000000000" | bc -l)" >&2
}
measure() { # LABEL CMD... -> "seconds peak_kib"
  /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" > "$work/out.txt" 2> "$work/err.txt" || { echo "$1 failed:" >&2; tail -5 "$work/err.txt" >&2; exit 1; }
  cat "$work/time.out"
}
gen "$lines" "$work/access.log"
n=$(wc -l < "$work/access.log")
read -r pg_s pg_kib < <(measure "$pg" --state-dir "$work/state" analytics import "$work/access.log")
grep -q "$n events" "$work/out.txt" || { echo "the import did not take every line:" >&2; cat "$work/out.txt" >&2; exit 1; }
fmt='{"ts":"%x.%^","ip":"%h","host":"%v","method":"%m","uri":"%U","status":"%s","bytes":"%b","rt":"%T","ua":"%u"}'
read -r ga_s ga_kib < <(measure goaccess "$work/access.log" --log-format="$fmt" --datetime-format='%s' -o "$work/goaccess.json")
python3 -c "import json,sys; g=json.load(open('$work/goaccess.json'))['general']; sys.exit(0 if g['valid_requests'] == $n else 'GoAccess parsed %s of $n lines' % g['valid_requests'])"

rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }
printf '\nimport of %d schema-v1 lines (7 days), wall clock, 2 cores\n' "$n"
printf '  %-46s %10s %12s %12s\n' program seconds lines/s "peak RSS"
printf '  %-46s %10s %12s %10s MiB\n' "pullgate analytics import (enrich, anonymise," "$pg_s" "$(rate "$n" "$pg_s")" "$((pg_kib / 1024))"
printf '  %-46s\n' "  sessionise, SQLite)"
printf '  %-46s %10s %12s %10s MiB\n' "goaccess (JSON log format, -o report.json)" "$ga_s" "$(rate "$n" "$ga_s")" "$((ga_kib / 1024))"
printf '  ratio pullgate / GoAccess (lines/s): %.2f   (target >= 5)\n' "$(echo "$ga_s / $pg_s" | bc -l)"

if [ "$big" -gt 0 ]; then
  gen "$big" "$work/big.log"
  read -r big_s big_kib < <(measure "$pg" --state-dir "$work/big-state" analytics import "$work/big.log")
  printf '\n%d lines: %s s, %s lines/s, peak RSS %d MiB: %.2f of the %d-line import (target <= 1.2)\n' \
    "$big" "$big_s" "$(rate "$big" "$big_s")" "$((big_kib / 1024))" "$(echo "$big_kib / $pg_kib" | bc -l)" "$n"
fi

gen "$lines" "$work/year.log" 365
"$pg" --state-dir "$work/year-state" analytics import "$work/year.log" > /dev/null
# The best of 5 runs of a command (ms), after one to warm caches.
best_of_5() {
  local best="" s ms
  "$@"
  for _ in 1 2 3 4 5; do
    s=$(date +%s%N); "$@"; ms=$(( ($(date +%s%N) - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "$best"
}
report() { "$pg" --state-dir "$work/year-state" report --since 2025-03-03 --until 2026-03-03 --by client,os --granularity day --format json > "$work/report.json"; }
best=$(best_of_5 report) # after a first run that warms the page cache, as a dashboard's would be
python3 -c "import json,sys; r=json.load(open('$work/report.json')); t=json.load(open('$work/year.log.truth.json'))['totals']; sys.exit(0 if r['totals']['pulls'] == t['pulls'] else 'the year report is wrong')"
printf '\nreport --by client,os --granularity day over a year (%d lines, 365 days): %d ms, best of 5 (target < 200)\n' "$lines" "$best"

# The ClickHouse store: the same import and the same year's report.
ch_start "$work/clickhouse"
read -r ch_s ch_kib < <(measure "$pg" --state-dir "$work/ch-state" analytics import --store "$CH_STORE/week" "$work/access.log")
grep -q "$n events" "$work/out.txt" || { echo "the ClickHouse import did not take every line:" >&2; cat "$work/out.txt" >&2; exit 1; }
"$pg" --state-dir "$work/ch-year-state" analytics import --store "$CH_STORE/year" "$work/year.log" > /dev/null
chreport() { "$pg" --state-dir "$work/ch-year-state" report --store "$CH_STORE/year" --since 2025-03-03 --until 2026-03-03 --by client,os --granularity day --format json > "$work/ch-report.json"; }
chbest=$(best_of_5 chreport)
python3 -c "import json,sys; a=json.load(open('$work/report.json')); b=json.load(open('$work/ch-report.json')); sys.exit(0 if a['totals']['pulls'] == b['totals']['pulls'] and len(a['rows']) == len(b['rows']) else 'the ClickHouse year report differs from SQLite\'s')"
printf '\nthe ClickHouse store (clickhouse-server %s on loopback, same machine)\n' "$(curl -s "${CH_STORE/clickhouse:/http:}/?query=SELECT%20version()")"
printf '  %-46s %10s %12s %10s MiB\n' "import into ClickHouse (pullgate's RSS)" "$ch_s" "$(rate "$n" "$ch_s")" "$((ch_kib / 1024))"
printf '  ratio ClickHouse / SQLite import (lines/s): %.2f\n' "$(echo "$pg_s / $ch_s" | bc -l)"
printf '  year report: %d ms on ClickHouse, %d ms on SQLite (best of 5 each): %.2f\n' "$chbest" "$best" "$(echo "$chbest / $best" | bc -l)"
