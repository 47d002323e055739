//! Headless Chromium driven over the DevTools protocol (a WebSocket of
//! JSON commands and events): navigate, evaluate, click, screenshot.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use super::process::{free_port, Server};

pub struct Browser {
    _chromium: Server,
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Exceptions, console errors and failed or refused requests seen so far.
    pub errors: Vec<String>,
}

fn binary() -> Result<&'static str, String> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| "chromium is not installed (Debian package `chromium`; tests/run installs it)".to_string())
}

impl Browser {
    pub fn start(dir: &Path) -> Result<Browser, String> {
        let port = free_port("127.0.0.1");
        let mut cmd = Command::new(binary()?);
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--window-size=1280,1900"])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
            .arg("about:blank");
        let chromium = Server::start("chromium", cmd, &dir.join("chromium.log"))?;
        // The page target's WebSocket, once the DevTools endpoint answers.
        let start = Instant::now();
        let url = loop {
            let list = super::gateway::curl("GET", &format!("http://127.0.0.1:{port}/json/list"), &[]);
            if let Ok(r) = list {
                let targets: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if let Some(u) =
                    targets.as_array().and_then(|a| a.iter().find(|t| t["type"] == "page")).and_then(|t| t["webSocketDebuggerUrl"].as_str())
                {
                    break u.to_string();
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("chromium's DevTools did not answer on port {port} (see {})", dir.join("chromium.log").display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (ws, _) = tungstenite::connect(&url).map_err(|e| format!("DevTools WebSocket {url}: {e}"))?;
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
        }
        let mut b = Browser { _chromium: chromium, ws, next_id: 0, errors: Vec::new() };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            b.call(domain, json!({}))?;
        }
        Ok(b)
    }

    /// Send a command and wait for its result, noting events meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).map_err(|e| format!("{method}: {e}"))?;
        loop {
            let v = self.read()?;
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    return Err(format!("{method}: {e}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn read(&mut self) -> Result<Value, String> {
        loop {
            match self.ws.read().map_err(|e| format!("DevTools: {e}"))? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                    match v["method"].as_str() {
                        Some("Runtime.exceptionThrown") => self.errors.push(v["params"]["exceptionDetails"].to_string()),
                        Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                            self.errors.push(v["params"]["entry"]["text"].as_str().unwrap_or("").to_string())
                        }
                        Some("Network.responseReceived") if v["params"]["response"]["status"].as_u64().is_some_and(|s| s >= 400) => {
                            let r = &v["params"]["response"];
                            self.errors.push(format!("{} {}", r["status"], r["url"]))
                        }
                        Some("Network.loadingFailed") => self.errors.push(format!("failed: {}", v["params"]["errorText"])),
                        _ => {}
                    }
                    return Ok(v);
                }
                Message::Close(_) => return Err("DevTools closed the socket".into()),
                _ => continue,
            }
        }
    }

    /// Wait for an event by name.
    fn wait_for(&mut self, method: &str) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            let v = self.read()?;
            if v["method"] == method {
                return Ok(v["params"].clone());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("no {method} within 30 s"));
            }
        }
    }

    pub fn navigate(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.navigate", json!({"url": url}))?;
        self.wait_for("Page.loadEventFired").map(|_| ())
    }

    /// Evaluate a JavaScript expression in the page; its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}))?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Click the first element matching `selector` and wait for the page it loads.
    pub fn click_and_wait(&mut self, selector: &str) -> Result<(), String> {
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            json!(selector)
        ))?;
        if found != Value::Bool(true) {
            return Err(format!("nothing matches {selector}"));
        }
        self.wait_for("Page.loadEventFired").map(|_| ())
    }

    pub fn screenshot(&mut self, to: &Path) -> Result<(), String> {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}))?;
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
        std::fs::write(to, png).map_err(|e| e.to_string())
    }
}
