//! Debian's clickhouse-server on loopback ports, with its data under the
//! test's directory and an account of its own (`pullgate`, with a password)
//! besides `default`; the HTTP interface is what pullgate speaks.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::process::{free_port, require, wait_for_port, Server};

pub const USER: &str = "pullgate";
pub const PASSWORD: &str = "ch-test-pw-9137";
/// An account that may read and change settings but write nothing (`readonly = 2`).
pub const READER: &str = "reader";
pub const READER_PASSWORD: &str = "ch-reader-pw-2213";

pub struct ClickHouseServer {
    /// Stopped when dropped.
    _server: Server,
    pub http: SocketAddr,
}

impl ClickHouseServer {
    pub fn start(dir: &Path) -> Result<ClickHouseServer, String> {
        require("clickhouse-server", "clickhouse-server")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let dir = dir.canonicalize().map_err(|e| e.to_string())?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let tcp = free_port("127.0.0.1");
        let d = dir.display();
        let config = format!(
            "<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><size>10M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
</yandex>
",
            http.port()
        );
        let users = format!(
            "<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default><reader><readonly>2</readonly></reader></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <{USER}><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></{USER}>
    <{READER}><password>{READER_PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>reader</profile><quota>default</quota></{READER}>
  </users>
  <quotas><default></default></quotas>
</yandex>
"
        );
        std::fs::write(dir.join("config.xml"), config).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("users.xml"), users).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("clickhouse-server");
        cmd.arg(format!("--config-file={d}/config.xml")).current_dir(&dir);
        let mut server = Server::start("clickhouse-server", cmd, &dir.join("stdout.log"))?;
        wait_for_port(&mut server, http)?;
        Ok(ClickHouseServer { _server: server, http })
    }

    /// The store address pullgate takes for database `db`.
    pub fn store(&self, db: &str) -> String {
        format!("clickhouse://{}/{db}", self.http)
    }

    /// A query's answer as text (TabSeparated), as the test account.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "-u", &format!("{USER}:{PASSWORD}"), "--data-binary", sql])
            .arg(format!("http://{}/", self.http))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            return Err(format!("clickhouse query {sql:?}: {text}{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(text)
    }
}
