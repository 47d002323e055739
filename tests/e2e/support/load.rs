//! A bounded keep-alive load loop that behaves like Go's HTTP transport (and
//! so like docker and containerd): a request on a reused connection that the
//! server closed before answering is retried once on a new connection (RFC
//! 9110 9.2.2: idempotent requests may be retried). Anything else that does
//! not get the expected status is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct LoadReport {
    pub ok: u64,
    /// Requests retried because the server closed an idle keep-alive connection.
    pub stale_retries: u64,
    pub failures: u64,
    pub first_failure: Option<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<LoadReport>>,
}

impl Load {
    /// `threads` connections sending `GET path` as `user_agent`, each expecting `status`.
    pub fn start(addr: SocketAddr, path: &str, user_agent: &str, status: u16, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let request = format!("GET {path} HTTP/1.1\r\nHost: load\r\nUser-Agent: {user_agent}\r\n\r\n");
        let threads = (0..threads)
            .map(|_| {
                let (stop, request) = (stop.clone(), request.clone());
                std::thread::spawn(move || run(addr, &request, status, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport::default();
        for t in self.threads {
            let r = t.join().unwrap_or_else(|_| LoadReport {
                failures: 1,
                first_failure: Some("load thread panicked".into()),
                ..Default::default()
            });
            total.ok += r.ok;
            total.stale_retries += r.stale_retries;
            total.failures += r.failures;
            total.first_failure = total.first_failure.or(r.first_failure);
        }
        total
    }
}

enum Attempt {
    /// Status, and whether the server will close the connection.
    Answered(u16, bool),
    /// The connection was closed before any byte of an answer.
    ClosedBeforeAnswer,
    Error(String),
}

fn attempt(conn: &mut BufReader<TcpStream>, request: &str) -> Attempt {
    if let Err(e) = conn.get_mut().write_all(request.as_bytes()) {
        return if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset) {
            Attempt::ClosedBeforeAnswer
        } else {
            Attempt::Error(e.to_string())
        };
    }
    let mut line = String::new();
    match conn.read_line(&mut line) {
        Ok(0) => return Attempt::ClosedBeforeAnswer,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Attempt::ClosedBeforeAnswer,
        Err(e) => return Attempt::Error(e.to_string()),
        Ok(_) => {}
    }
    let Some(status) = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()) else {
        return Attempt::Error(format!("bad status line {line:?}"));
    };
    let (mut length, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        match conn.read_line(&mut h) {
            Ok(0) => return Attempt::Error("closed inside the headers".into()),
            Err(e) => return Attempt::Error(e.to_string()),
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                close |= lower.starts_with("connection:") && lower.contains("close");
            }
        }
    }
    let mut body = vec![0u8; length];
    match conn.read_exact(&mut body) {
        Ok(()) => Attempt::Answered(status, close),
        Err(e) => Attempt::Error(format!("body: {e}")),
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(BufReader::new(s))
}

fn run(addr: SocketAddr, request: &str, want: u16, stop: &AtomicBool) -> LoadReport {
    let mut report = LoadReport::default();
    let fail = |report: &mut LoadReport, why: String| {
        report.failures += 1;
        report.first_failure.get_or_insert(why);
    };
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let reused = conn.is_some();
        let mut c = match conn.take().map(Ok).unwrap_or_else(|| connect(addr)) {
            Ok(c) => c,
            Err(e) => {
                fail(&mut report, format!("connect: {e}"));
                continue;
            }
        };
        let mut outcome = attempt(&mut c, request);
        if matches!(outcome, Attempt::ClosedBeforeAnswer) && reused {
            report.stale_retries += 1;
            outcome = match connect(addr) {
                Ok(fresh) => {
                    c = fresh;
                    attempt(&mut c, request)
                }
                Err(e) => Attempt::Error(format!("reconnect: {e}")),
            };
        }
        match outcome {
            Attempt::Answered(s, close) if s == want => {
                report.ok += 1;
                if !close {
                    conn = Some(c);
                }
            }
            Attempt::Answered(s, _) => fail(&mut report, format!("status {s}")),
            Attempt::ClosedBeforeAnswer => fail(&mut report, "a new connection closed before answering".into()),
            Attempt::Error(e) => fail(&mut report, e),
        }
    }
    report
}
