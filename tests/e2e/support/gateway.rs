//! The gateway under test: `pullgate up` on a routes.yaml, nginx on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::process::{free_port, wait_for_http, wait_for_port, Server};

pub const PULLGATE: &str = env!("CARGO_BIN_EXE_pullgate");

/// The schema v1 keys, in order (docs/access-log.md).
pub const SCHEMA_V1: [&str; 17] = [
    "ts", "id", "ip", "host", "method", "uri", "status", "bytes", "rt", "ua", "accept", "auth", "range", "dnt", "route", "upstream", "mode",
];

pub struct Gateway {
    /// `pullgate up`; stopping it stops nginx.
    _up: Server,
    pub addr: SocketAddr,
    /// The daemon's /status and /metrics.
    pub status_addr: SocketAddr,
    /// The dashboard `up` serves.
    pub dashboard_addr: SocketAddr,
    pub dir: PathBuf,
}

impl Gateway {
    /// Run `pullgate up` with `gateway_extra` (indented under `gateway:`) and `routes` (a YAML list).
    pub fn start(dir: &Path, gateway_extra: &str, routes: &str) -> Result<Gateway, String> {
        let addr = Gateway::pick_addr();
        let routes_path = dir.join("routes.yaml");
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        std::fs::write(&routes_path, Gateway::yaml(addr, gateway_extra, routes)).map_err(|e| e.to_string())?;
        Gateway::launch(dir, addr, &routes_path, &[])
    }

    /// An address for a gateway to listen on.
    pub fn pick_addr() -> SocketAddr {
        format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap()
    }

    /// A routes.yaml listening on `addr`.
    pub fn yaml(addr: SocketAddr, gateway_extra: &str, routes: &str) -> String {
        format!("version: 1\ngateway:\n  listen: [\"{addr}\"]\n{gateway_extra}routes:\n{routes}")
    }

    /// Run `pullgate up -c config_path ARGS` in `dir`; the file must listen on `addr`.
    /// It does not ship its log (the shipping tests ask for that with [`Gateway::launch_with`]).
    pub fn launch(dir: &Path, addr: SocketAddr, routes_path: &Path, args: &[&str]) -> Result<Gateway, String> {
        let args: Vec<&str> = args.iter().copied().chain(["--no-ship"]).collect();
        Gateway::launch_with(dir, addr, routes_path, &args, |_| {})
    }

    /// [`Gateway::launch`], with `setup` adding to the command (environment, arguments).
    pub fn launch_with(
        dir: &Path,
        addr: SocketAddr,
        routes_path: &Path,
        args: &[&str],
        setup: impl FnOnce(&mut Command),
    ) -> Result<Gateway, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let status_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let dashboard_addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let mut cmd = Command::new(PULLGATE);
        cmd.arg("--state-dir").arg(dir.join("state")).arg("up").arg("-c").arg(routes_path);
        cmd.arg("--status-listen").arg(status_addr.to_string());
        cmd.arg("--dashboard-listen").arg(dashboard_addr.to_string()).args(args);
        setup(&mut cmd);
        let mut server = Server::start("pullgate up", cmd, &dir.join("up.log"))?;
        wait_for_http(&mut server, addr)?;
        wait_for_port(&mut server, status_addr)?;
        let gw = Gateway { _up: server, addr, status_addr, dashboard_addr, dir: dir.to_path_buf() };
        // Ready: the daemon has verified that nginx serves the config.
        let start = std::time::Instant::now();
        while !gw.status()?["serving_version"].is_string() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                return Err(format!("no config verified as serving within 20 s: {}", gw.status()?));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(gw)
    }

    /// The node dies: `pullgate up`, nginx's master and its workers get
    /// SIGKILL, as a machine losing power would stop them. What nginx
    /// logged stays in the access log; nothing else is cleaned up.
    pub fn crash(self) {
        let workers = self.workers();
        let master = std::fs::read_to_string(self.dir.join("state/nginx/nginx.pid")).unwrap_or_default();
        let Gateway { _up, .. } = self;
        _up.crash();
        for pid in master.trim().parse::<u32>().into_iter().chain(workers) {
            // SAFETY: kill(2) on a pid we read from nginx's pid file and /proc just now.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The daemon's /status, as JSON.
    pub fn status(&self) -> Result<Value, String> {
        let r = curl("GET", &format!("http://{}/status", self.status_addr), &[])?;
        serde_json::from_slice(&r.body).map_err(|e| format!("status: {e}: {}", r.text()))
    }

    /// Pids of nginx's worker processes (children of the master).
    pub fn workers(&self) -> Vec<u32> {
        let master = std::fs::read_to_string(self.dir.join("state/nginx/nginx.pid")).unwrap_or_default();
        let master: u32 = master.trim().parse().unwrap_or(0);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) && master != 0 {
                pids.push(pid);
            }
        }
        pids.sort();
        pids
    }

    pub fn access_log(&self) -> PathBuf {
        self.dir.join("state/nginx/logs/pullgate.access.log")
    }

    /// Every access log line, each checked against schema v1.
    ///
    /// nginx logs a request just after its response leaves, so a client can
    /// be done before its line is written: read until the file stops changing.
    pub fn log(&self) -> Result<Vec<Value>, String> {
        let read = || std::fs::read_to_string(self.access_log()).map_err(|e| format!("access log: {e}"));
        let mut text = read()?;
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let again = read()?;
            if again == text {
                break;
            }
            text = again;
        }
        text.lines().map(check_schema_v1).collect()
    }

    /// Log lines whose `uri` contains `needle`.
    pub fn log_for(&self, needle: &str) -> Result<Vec<Value>, String> {
        Ok(self.log()?.into_iter().filter(|l| l["uri"].as_str().is_some_and(|u| u.contains(needle))).collect())
    }
}

/// Parse one line and check it has exactly the schema v1 keys with the right types.
pub fn check_schema_v1(line: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let obj = v.as_object().ok_or_else(|| format!("not an object: {line}"))?;
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = SCHEMA_V1.to_vec();
    want.sort();
    let mut have = keys.clone();
    have.sort();
    if have != want {
        return Err(format!("keys {keys:?} are not schema v1 {SCHEMA_V1:?}"));
    }
    for k in ["status", "bytes", "rt"] {
        if !obj[k].is_number() {
            return Err(format!("`{k}` is not a number: {line}"));
        }
    }
    for k in SCHEMA_V1.iter().filter(|k| !["status", "bytes", "rt"].contains(k)) {
        if !obj[*k].is_string() {
            return Err(format!("`{k}` is not a string: {line}"));
        }
    }
    let id = obj["id"].as_str().unwrap();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`id` is not 32 hex characters: {line}"));
    }
    if !["none", "basic", "bearer"].contains(&obj["auth"].as_str().unwrap()) {
        return Err(format!("`auth` is not none/basic/bearer: {line}"));
    }
    if !["redirect", "proxy", "local"].contains(&obj["mode"].as_str().unwrap()) {
        return Err(format!("`mode` is not redirect/proxy/local: {line}"));
    }
    Ok(v)
}

/// A response as curl saw it (no redirects followed).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request with curl; `--path-as-is` so dot segments reach the server untouched.
/// `pullgate --state-dir STATE ARGS...`: its standard output, or why it failed.
pub fn pullgate_in(state: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(PULLGATE).arg("--state-dir").arg(state).args(args).output().map_err(|e| e.to_string())?;
    crate::ensure!(out.status.success(), "pullgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn curl(method: &str, url: &str, headers: &[&str]) -> Result<Reply, String> {
    curl_sending(method, url, headers, None)
}

/// [`curl`] with a request body.
pub fn curl_body(method: &str, url: &str, headers: &[&str], body: &str) -> Result<Reply, String> {
    curl_sending(method, url, headers, Some(body))
}

fn curl_sending(method: &str, url: &str, headers: &[&str], data: Option<&str>) -> Result<Reply, String> {
    let body_file = std::env::temp_dir().join(format!("pg-curl-{}-{:?}", std::process::id(), std::thread::current().id()));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "-D", "-", "-o"]).arg(&body_file);
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(d) = data {
        cmd.args(["--data-binary", d]);
    }
    cmd.arg(url);
    let out = cmd.output().map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let body = std::fs::read(&body_file).unwrap_or_default();
    let _ = std::fs::remove_file(&body_file);
    Ok(Reply { status, headers, body })
}
