#!/usr/bin/env bash
# Hostile traffic while real pulls go on: a bounded storm of malformed and
# oversized requests at a gateway (`pullgate up`, its own nginx, shipping to
# the local sink and ingesting into its SQLite store), with skopeo pulling
# through it from a real docker-registry all along.
#
#   tests/bench/hostile.sh [UNKNOWN_REPOS] [SLOW_CONNECTIONS]   (default 5000, 200)
#
# The storm (tests/bench/hostile_storm.py): headers of 64 KiB and 200
# headers of 4 KiB, 8 KiB paths, invalid UTF-8 in the path and the agent,
# connections that send their headers a byte a second (within nginx's
# 60 s header timeout; held 20 s at least, then closed), and GETs of UNKNOWN_REPOS
# distinct unknown repositories. Prints: real pulls that succeeded, the
# storm's answers by kind and status, the error log's growth in lines and
# bytes, and the store's rows by repository before and after (it must not
# grow a row per unknown repository).
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/nginx-lib.sh
unknown="${1:-5000}"
slow="${2:-200}"
for tool in skopeo docker-registry curl python3; do command -v $tool >/dev/null || { echo "$tool is not installed" >&2; exit 1; }; done
pg="$(realpath "$(pullgate_bin)")"
work="$(mktemp -d /tmp/pg-hostile.XXXXXX)"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
port=$(free_port)
reg=$(free_port)

# A registry with one small image, pushed from an OCI layout made here.
cat > "$work/registry.yml" <<EOF
version: 0.1
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$reg}
log: {level: error}
EOF
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
pids+=($!)
python3 - "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as t:
    body = os.urandom(65536)
    info = tarfile.TarInfo("hello"); info.size = len(body)
    t.addfile(info, io.BytesIO(body))
layer = gzip.compress(raw.getvalue(), mtime=0)
ld, ls = put(layer)
diff = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
cd, cs = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode())
md, ms = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
    "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]}, open(os.path.join(root, "index.json"), "w"))
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$reg/v2/" && break; sleep 0.05; done
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1.0" "docker://127.0.0.1:$reg/acme/app:1.0"

cat > "$work/routes.yaml" <<EOF
version: 1
gateway:
  listen: ["127.0.0.1:$port"]
routes:
  - {name: app, image: acme/app, upstream: "http://127.0.0.1:$reg/acme/app", auth: none}
EOF
"$pg" --state-dir "$work/state" up -c "$work/routes.yaml" --status-listen off --geoip-dir none --sink local > "$work/up.log" 2>&1 &
up=$!
pids+=($up)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.05; done
access="$work/state/nginx/logs/pullgate.access.log"
# nginx's error log: its lines in up's output (`up` runs nginx with error_log stderr).
nginx_errors() { grep -aE '^[0-9]{4}/[0-9]{2}/[0-9]{2} ' "$work/up.log" | wc "-$1"; }
pull() { skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/acme/app:1.0" "dir:$work/pull-$1" && rm -rf "$work/pull-$1"; }
rows() { # rows of the store's report by repository
  "$pg" --state-dir "$work/state" report --since 1h --by repository --format json 2>/dev/null \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("rows", [])))'
}
settle() { # until the store holds every request nginx logged
  local want; want=$(wc -l < "$access")
  for _ in $(seq 1 120); do
    got=$("$pg" --state-dir "$work/state" report --since 1h --format json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["totals"]["requests"])' || echo 0)
    [ "$got" -ge "$want" ] && return 0
    sleep 1
  done
  echo "the store holds $got of $want logged requests after 120 s" >&2
}

pull warmup
settle
rows_before=$(rows)
err_lines0=$(nginx_errors l); err_bytes0=$(nginx_errors c)

# Real pulls all through the storm.
(
  ok=0 failed=0
  while [ ! -e "$work/storm.done" ]; do
    if pull "$BASHPID"; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
  done
  echo "$ok $failed" > "$work/pulls"
) &
puller=$!
python3 tests/bench/hostile_storm.py 127.0.0.1 "$port" "$unknown" "$slow" > "$work/storm.txt"
touch "$work/storm.done"
wait $puller
read -r ok failed < "$work/pulls"
settle
rows_after=$(rows)
err_lines1=$(nginx_errors l); err_bytes1=$(nginx_errors c)

printf '\nhostile traffic: %s unknown repositories, %s slow connections\n' "$unknown" "$slow"
cat "$work/storm.txt"
printf '  real pulls during the storm:     %d succeeded, %d failed\n' "$ok" "$failed"
printf '  error log growth:                %d lines, %d bytes\n' "$((err_lines1 - err_lines0))" "$((err_bytes1 - err_bytes0))"
printf '  access log lines:                %d\n' "$(wc -l < "$access")"
printf '  store rows by repository:        %d before, %d after\n' "$rows_before" "$rows_after"
printf '  gateway still answers:           %s\n' "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")"
