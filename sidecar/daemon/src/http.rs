//! The sidecar's own HTTP endpoint: `/metrics` (Prometheus) and `/status` (JSON).
//! Deliberately small: two GET routes, one request per connection.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the endpoint answers: the daemon's status with whatever else runs
/// beside it (the binary adds the shipper's counters).
pub trait Report: Send + Sync + 'static {
    /// The Prometheus text of `/metrics`.
    fn metrics(&self) -> String;
    /// The JSON of `/status`.
    fn status_json(&self) -> String;
}

pub async fn serve(listener: TcpListener, report: std::sync::Arc<dyn Report>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let report = report.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, kind, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", report.metrics()),
                "/status" => ("200 OK", "application/json", report.status_json()),
                _ => ("404 Not Found", "text/plain", "try /metrics or /status\n".to_string()),
            };
            let head = format!("HTTP/1.0 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

/// `GET path` from a status endpoint, for `pullgate status`.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: pullgate\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(format!("unexpected answer from {addr}: {}", text.lines().next().unwrap_or("")))),
    }
}
