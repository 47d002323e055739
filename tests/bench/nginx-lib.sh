# Shared by the benchmark scripts (sourced, not run): the same nginx wrapper,
# start and stop, and medians, so that every script compares like with like;
# free ports and the pullgate under test.

# wrapper DIR INCLUDE [lua]: DIR/nginx.conf, one worker (the other core is
# wrk's), access log off at the http level, INCLUDE inside http {}.
wrapper() {
  mkdir -p "$1/logs" "$1/tmp"
  local modules=""
  [ "${3:-}" = lua ] && modules="load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
  cat > "$1/nginx.conf" <<CONF
$modules
worker_processes 1;
pcre_jit on;
pid $1/nginx.pid;
error_log $1/logs/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/tmp; proxy_temp_path $1/tmp; fastcgi_temp_path $1/tmp; uwsgi_temp_path $1/tmp; scgi_temp_path $1/tmp;
    include $2;
}
CONF
}

start() { nginx -p "$1" -c "$1/nginx.conf"; sleep 0.3; }
stop() { kill -QUIT "$(cat "$1/nginx.pid")"; while [ -f "$1/nginx.pid" ]; do sleep 0.05; done; }

# v1like_log_format TARGET: a log format with the 17 keys of schema v1, as
# the baseline's side of a comparison (its upstream is TARGET$request_uri).
v1like_log_format() {
  printf '%s' "log_format v1like escape=json '{\"ts\":\"\$msec\",\"id\":\"\$request_id\",\"ip\":\"\$remote_addr\",\"host\":\"\$host\",\"method\":\"\$request_method\",\"uri\":\"\$request_uri\",\"status\":\$status,\"bytes\":\$body_bytes_sent,\"rt\":\$request_time,\"ua\":\"\$http_user_agent\",\"accept\":\"\$http_accept\",\"auth\":\"none\",\"range\":\"\$http_range\",\"dnt\":\"\$http_dnt\",\"route\":\"bare\",\"upstream\":\"$1\$request_uri\",\"mode\":\"redirect\"}';"
}

# med: the median of the numbers on stdin (space or newline separated).
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ms START_NS: milliseconds since START_NS (from date +%s%N).
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# pullgate_bin: the pullgate to render with: $PULLGATE_BIN (another commit's,
# say), else a release build of this tree.
pullgate_bin() {
  if [ -n "${PULLGATE_BIN:-}" ]; then
    echo "$PULLGATE_BIN"
  else
    cargo build -q --release -p pullgate
    echo "${CARGO_TARGET_DIR:-target}/release/pullgate"
  fi
}

# free_port: a TCP port nothing listens on now, on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
