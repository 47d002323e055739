#!/usr/bin/env bash
# Package-index routes against bare nginx: a file redirect, and a project page.
#
#   tests/bench/indexes.sh [SECONDS] [ROUNDS] [FILES]   (default 5 s per wrk run, 5 rounds, 2,000 files)
#
# One upstream (plain nginx) serves a PEP 503 page of FILES wheels of one
# project; `pullgate render` fetches it and renders a pypi route. Same nginx
# binary, one worker, same wrapper, same JSON access log, run back to back:
#   redirect: bare nginx `return 307` vs the gateway's
#             GET /simple/big/FILE (a location regex and a map of FILES entries)
#   page:     bare nginx serving the same page as a static file vs the
#             gateway's GET /simple/big/ (Accept negotiation, try_files)
# Then the refresh: the same fetch again with every document unchanged (304s)
# against the first one, for a route of PACKAGES projects.
# Each ratio is the median of the per-round ratios; figures compare within one run only.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/nginx-lib.sh
secs="${1:-5}"
rounds="${2:-5}"
files="${3:-2000}"
conns=50
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
pg="$(pullgate_bin)"
work="$(mktemp -d /tmp/pg-bench-index.XXXXXX)"
chmod 755 "$work"
trap 'set +e; for p in "$work"/*/nginx.pid; do [ -f "$p" ] && kill -QUIT "$(cat "$p")" 2>/dev/null; done; sleep 0.5; rm -rf "$work"' EXIT
port=18080
up_port=18091

run_wrk() { # URL -> rps
  wrk -t1 -c$conns -d"${secs}s" -H 'User-Agent: pip/24.0' -H 'Accept: text/html' "$1" > "$work/wrk.out"
  grep -q "Non-2xx or 3xx" "$work/wrk.out" && { echo "unexpected status codes for $1:" >&2; cat "$work/wrk.out" >&2; exit 1; }
  awk '/^Requests\/sec/ {print $2}' "$work/wrk.out"
}

# --- the upstream: one project of $files wheels, and 200 small projects ------
mkdir -p "$work/up/root/simple/big"
{
  echo '<!DOCTYPE html><html><body>'
  for ((i = 0; i < files; i++)); do
    printf '<a href="../../files/big-1.%d-py3-none-any.whl#sha256=%064x" data-requires-python="&gt;=3.8">big-1.%d-py3-none-any.whl</a><br/>\n' "$i" "$i" "$i"
  done
  echo '</body></html>'
} > "$work/up/root/simple/big/index.html"
for ((p = 0; p < 200; p++)); do
  mkdir -p "$work/up/root/simple/p$p"
  printf '<a href="../../files/p%d-1.0.tar.gz#sha256=%064x">p%d-1.0.tar.gz</a>\n' "$p" "$p" "$p" > "$work/up/root/simple/p$p/index.html"
done
mkdir -p "$work/up"
cat > "$work/up/up.conf" <<CONF
server { listen 127.0.0.1:$up_port; root $work/up/root; types { text/html html; } }
CONF
wrapper "$work/up" "$work/up/up.conf"
start "$work/up"

# --- the variants ------------------------------------------------------------
log_format="$(v1like_log_format "http://127.0.0.1:$up_port")"
mkdir -p "$work/bare/root/simple/big"
cp "$work/up/root/simple/big/index.html" "$work/bare/root/simple/big/page.html"
cat > "$work/bare/bare.conf" <<CONF
$log_format
server {
    listen 127.0.0.1:$port;
    access_log $work/bare/logs/access.log v1like;
    location = /simple/big/ { root $work/bare/root; types { text/html html; } try_files /simple/big/page.html =404; }
    location / { return 307 http://127.0.0.1:$up_port/files\$request_uri; }
}
CONF
wrapper "$work/bare" "$work/bare/bare.conf"
mkdir -p "$work/gw"
cat > "$work/gw/routes.yaml" <<YAML
version: 1
gateway: {listen: ["127.0.0.1:$port"], access_log: $work/gw/logs/access.log}
routes:
  - {name: py, kind: pypi, upstream: "http://127.0.0.1:$up_port/simple/", packages: [big]}
YAML
"$pg" --state-dir "$work/state" render -c "$work/gw/routes.yaml" --out "$work/gw/conf" > /dev/null
wrapper "$work/gw" "$work/gw/conf/pullgate.conf"

last=$((files - 1))
declare -A url
url[bare-redirect]="http://127.0.0.1:$port/simple/big/big-1.$last-py3-none-any.whl"
url[gw-redirect]="http://127.0.0.1:$port/simple/big/big-1.$last-py3-none-any.whl"
url[bare-page]="http://127.0.0.1:$port/simple/big/"
url[gw-page]="http://127.0.0.1:$port/simple/big/"
for v in bare gw; do
  start "$work/$v"
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$v-redirect]}")
  [ "$code" = 307 ] || { echo "$v answers $code to the file, not 307" >&2; exit 1; }
  curl -sf -o "$work/$v.page" "${url[$v-page]}" || { echo "$v does not serve the page" >&2; exit 1; }
  stop "$work/$v"
done
declare -A rps
for ((round = 1; round <= rounds; round++)); do
  for v in bare gw; do
    start "$work/$v"
    for what in redirect page; do
      rps[$v-$what]+="$(run_wrk "${url[$v-$what]}") "
    done
    stop "$work/$v"
  done
done
ratio() { # A B
  paste -d' ' <(tr ' ' '\n' <<< "${rps[$1]}" | grep .) <(tr ' ' '\n' <<< "${rps[$2]}" | grep .) | awk '{printf "%.3f ", $1 / $2}' | med
}
printf '\nindex routes: wrk -t1 -c%d, %d rounds of %ss, one nginx worker, JSON access log on both sides\n' "$conns" "$rounds" "$secs"
printf '  a page of %d files: %d bytes upstream, %d bytes as the gateway serves it\n' "$files" "$(stat -c %s "$work/up/root/simple/big/index.html")" "$(stat -c %s "$work/gw.page")"
printf '  %-44s %12s   %s\n' variant "median rps" "per round"
for v in bare-redirect gw-redirect bare-page gw-page; do
  case $v in
    bare-redirect) label="bare nginx return 307" ;;
    gw-redirect) label="pullgate file redirect ($files-entry map)" ;;
    bare-page) label="bare nginx, the page as a static file" ;;
    gw-page) label="pullgate project page" ;;
  esac
  printf '  %-44s %12s   %s\n' "$label" "$(med <<< "${rps[$v]}")" "${rps[$v]}"
done
printf '  ratio file redirect / bare return 307:  %s\n' "$(ratio gw-redirect bare-redirect)"
printf '  ratio project page / bare static file:  %s\n' "$(ratio gw-page bare-page)"

# --- the refresh ---------------------------------------------------------------
mkdir -p "$work/many"
{
  echo "version: 1"
  echo "gateway: {listen: [\"127.0.0.1:$port\"]}"
  echo "routes:"
  echo "  - name: many"
  echo "    kind: pypi"
  echo "    upstream: http://127.0.0.1:$up_port/simple/"
  printf '    packages: ['
  for ((p = 0; p < 200; p++)); do printf 'p%d%s' "$p" "$([ $p -lt 199 ] && echo ', ')"; done
  echo ']'
} > "$work/many/routes.yaml"
s=$(date +%s%N); "$pg" --state-dir "$work/many/state" render -c "$work/many/routes.yaml" --out "$work/many/conf" > /dev/null; first=$(ms "$s")
s=$(date +%s%N); "$pg" --state-dir "$work/many/state" render -c "$work/many/routes.yaml" --out "$work/many/conf" > /dev/null; again=$(ms "$s")
docs=$(find "$work/many/conf/index" -type f | wc -l)
printf '\nrender of a route of 200 projects (fetch, render, write): first %d ms, again %d ms (%d documents written)\n' "$first" "$again" "$docs"
printf '  (again: the documents kept on disk are asked for with their validators, and the upstream answers 304)\n'
