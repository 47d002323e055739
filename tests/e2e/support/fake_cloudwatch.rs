//! A CloudWatch Logs endpoint of the tests' own, stricter than moto: it
//! checks every PutLogEvents rule (written here from the API reference, apart
//! from the shipper's code), refuses a request that breaks one and records
//! it, answers every third call with ThrottlingException and the fifth with
//! a 503, creates nothing unasked (ResourceNotFoundException until the group
//! and stream are created), and rejects events past the group's retention
//! through `rejectedLogEventsInfo`, as CloudWatch does.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::process::free_port;

const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
pub struct State {
    groups: HashMap<String, Option<i64>>,
    streams: HashSet<(String, String)>,
    /// Accepted events: (timestamp, message).
    pub events: Vec<(i64, String)>,
    /// Requests that broke a rule, and which.
    pub violations: Vec<String>,
    pub put_calls: u64,
    pub throttled: u64,
    pub unavailable: u64,
    /// Events answered as past the retention.
    pub expired: u64,
    pub largest_request: (usize, usize),
}

pub struct FakeCloudWatch {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl FakeCloudWatch {
    pub fn start() -> Result<FakeCloudWatch, String> {
        let listener = TcpListener::bind(("127.0.0.1", free_port("127.0.0.1"))).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &state);
                });
            }
        });
        Ok(FakeCloudWatch { addr, state })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Keep-alive HTTP/1.1: requests until the client closes.
fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut target = String::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-amz-target" => target = v.trim().to_string(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let op = target.rsplit('.').next().unwrap_or("");
        let (status, reply) = answer(op, &request, &mut state.lock().unwrap());
        let body = reply.to_string();
        let error = if status == 200 { String::new() } else { format!("x-amzn-ErrorType: {}\r\n", reply["__type"].as_str().unwrap_or("")) };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n{error}x-amzn-RequestId: fake\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes())?;
        conn.write_all(body.as_bytes())?;
    }
}

fn error(kind: &str, message: &str) -> (u16, Value) {
    (400, json!({"__type": kind, "message": message}))
}

fn answer(op: &str, r: &Value, s: &mut State) -> (u16, Value) {
    let group = r["logGroupName"].as_str().unwrap_or("").to_string();
    let stream = r["logStreamName"].as_str().unwrap_or("").to_string();
    match op {
        "CreateLogGroup" => {
            if s.groups.contains_key(&group) {
                return error("ResourceAlreadyExistsException", "The specified log group already exists");
            }
            s.groups.insert(group, None);
            (200, json!({}))
        }
        "PutRetentionPolicy" => match s.groups.get_mut(&group) {
            Some(days) => {
                *days = r["retentionInDays"].as_i64();
                (200, json!({}))
            }
            None => error("ResourceNotFoundException", "The specified log group does not exist."),
        },
        "CreateLogStream" => {
            if !s.groups.contains_key(&group) {
                return error("ResourceNotFoundException", "The specified log group does not exist.");
            }
            if !s.streams.insert((group, stream)) {
                return error("ResourceAlreadyExistsException", "The specified log stream already exists");
            }
            (200, json!({}))
        }
        "PutLogEvents" => put(&group, &stream, r, s),
        _ => error("UnknownOperationException", op),
    }
}

fn put(group: &str, stream: &str, r: &Value, s: &mut State) -> (u16, Value) {
    s.put_calls += 1;
    if s.put_calls.is_multiple_of(5) {
        s.unavailable += 1;
        return (503, json!({"__type": "ServiceUnavailableException", "message": "try again"}));
    }
    if s.put_calls.is_multiple_of(3) {
        s.throttled += 1;
        return error("ThrottlingException", "Rate exceeded");
    }
    if !s.streams.contains(&(group.to_string(), stream.to_string())) {
        return error("ResourceNotFoundException", "The specified log group or stream does not exist.");
    }
    let events: Vec<(i64, String)> = r["logEvents"]
        .as_array()
        .map(|a| a.iter().map(|e| (e["timestamp"].as_i64().unwrap_or(-1), e["message"].as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let bytes: usize = events.iter().map(|(_, m)| m.len() + 26).sum();
    let mut broken = Vec::new();
    if events.is_empty() || events.len() > 10_000 {
        broken.push(format!("{} events", events.len()));
    }
    if bytes > 1_048_576 {
        broken.push(format!("{bytes} bytes"));
    }
    if events.windows(2).any(|w| w[1].0 < w[0].0) {
        broken.push("not in chronological order".into());
    }
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        if last.0 - first.0 > DAY_MS {
            broken.push(format!("spans {} ms", last.0 - first.0));
        }
    }
    for (ts, m) in &events {
        if m.len() + 26 > 262_144 {
            broken.push(format!("an event of {} bytes", m.len()));
        }
        if *ts < now - 14 * DAY_MS || *ts > now + 2 * 3_600_000 {
            broken.push(format!("an event at {ts}, {} ms from now", ts - now));
        }
    }
    if !broken.is_empty() {
        let why = broken.join("; ");
        s.violations.push(why.clone());
        return error("InvalidParameterException", &why);
    }
    if (events.len(), bytes) > s.largest_request {
        s.largest_request = (events.len(), bytes);
    }
    // Past the group's retention: rejected, the rest taken.
    let retention = s.groups.get(group).copied().flatten();
    let expired = retention.map_or(0, |days| events.iter().take_while(|(ts, _)| *ts < now - days * DAY_MS).count());
    s.expired += expired as u64;
    s.events.extend(events.into_iter().skip(expired));
    if expired > 0 {
        (200, json!({"rejectedLogEventsInfo": {"expiredLogEventEndIndex": expired}}))
    } else {
        (200, json!({}))
    }
}
