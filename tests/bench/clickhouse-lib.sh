# Debian's clickhouse-server for the benchmarks, on a free loopback port,
# its data under a directory of the caller's. Sourced by analytics.sh and
# pipeline.sh.
#
#   ch_start DIR   sets CH_STORE (clickhouse://127.0.0.1:PORT) and CH_PID
#   ch_stop
#
# Needs nginx-lib.sh's free_port: the caller sources that first.


ch_start() {
  command -v clickhouse-server >/dev/null || { echo "clickhouse-server is not installed (apt-get install clickhouse-server)" >&2; exit 1; }
  local dir="$1" port tcp
  mkdir -p "$dir"
  port=$(free_port)
  tcp=$(free_port)
  cat > "$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/error.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$port</http_port>
  <tcp_port>$tcp</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>1073741824</mark_cache_size>
</yandex>
XML
  cat > "$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
  clickhouse-server --config-file="$dir/config.xml" > "$dir/stdout.log" 2>&1 &
  CH_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/ping" >/dev/null || { echo "clickhouse-server did not start:" >&2; tail -5 "$dir/stdout.log" "$dir/error.log" >&2; exit 1; }
  CH_STORE="clickhouse://127.0.0.1:$port"
}

ch_stop() {
  [ -n "${CH_PID:-}" ] && kill "$CH_PID" 2>/dev/null && wait "$CH_PID" 2>/dev/null || true
  CH_PID=""
}
