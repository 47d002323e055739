//! The shipper's counters, shared between its threads and the status
//! endpoint, and their snapshot for /status and /metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct Stats {
    pub lines_read: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Events the sink acknowledged.
    pub shipped: AtomicU64,
    /// Bytes of the log whose lines the sink acknowledged (or dead-lettered).
    pub bytes_acked: AtomicU64,
    /// Lines that did not parse, and events a sink refused.
    pub dead_unparsed: AtomicU64,
    pub dead_refused: AtomicU64,
    /// Requests the sink acknowledged (PutLogEvents calls, local appends).
    pub batches: AtomicU64,
    /// Requests that failed and were tried again.
    pub retries: AtomicU64,
    /// Bytes in the log not read yet, at the last read.
    pub unread: AtomicU64,
    /// Time of the newest event the sink acknowledged (ms since the epoch).
    pub newest_acked_ms: AtomicU64,
    pub started_ms: AtomicU64,
    /// Why shipping stopped, if it did.
    pub failed: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub lines_read: u64,
    pub bytes_read: u64,
    pub shipped: u64,
    pub dead_lettered_unparsed: u64,
    pub dead_lettered_refused: u64,
    pub batches: u64,
    pub retries: u64,
    /// Bytes written to the log that the sink does not have yet.
    pub lag_bytes: u64,
    /// How far behind the sink is: 0 when it has everything, else the age of
    /// the newest event it has.
    pub lag_seconds: f64,
    pub failed: Option<String>,
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        let in_flight = self.bytes_read.load(Relaxed).saturating_sub(self.bytes_acked.load(Relaxed));
        let lag_bytes = self.unread.load(Relaxed) + in_flight;
        let lag_seconds = if lag_bytes == 0 {
            0.0
        } else {
            let since = self.newest_acked_ms.load(Relaxed).max(self.started_ms.load(Relaxed));
            (super::now_ms() as f64 - since as f64).max(0.0) / 1000.0
        };
        Snapshot {
            lines_read: self.lines_read.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            shipped: self.shipped.load(Relaxed),
            dead_lettered_unparsed: self.dead_unparsed.load(Relaxed),
            dead_lettered_refused: self.dead_refused.load(Relaxed),
            batches: self.batches.load(Relaxed),
            retries: self.retries.load(Relaxed),
            lag_bytes,
            lag_seconds,
            failed: self.failed.lock().expect("stats lock").clone(),
        }
    }
}

impl Snapshot {
    /// Prometheus lines: (name, kind, help, labels, value).
    pub fn metrics(&self) -> Vec<(&'static str, &'static str, &'static str, String, String)> {
        let c = |name, help, v: u64| (name, "counter", help, String::new(), v.to_string());
        vec![
            c("pullgate_ship_lines_read_total", "Access-log lines read.", self.lines_read),
            c("pullgate_ship_bytes_read_total", "Access-log bytes read.", self.bytes_read),
            c("pullgate_ship_events_shipped_total", "Events the sink acknowledged.", self.shipped),
            (
                "pullgate_ship_dead_lettered_total",
                "counter",
                "Lines and events written to the dead letters instead, by why.",
                "{reason=\"unparsed\"}".into(),
                self.dead_lettered_unparsed.to_string(),
            ),
            (
                "pullgate_ship_dead_lettered_total",
                "counter",
                "Lines and events written to the dead letters instead, by why.",
                "{reason=\"refused\"}".into(),
                self.dead_lettered_refused.to_string(),
            ),
            c("pullgate_ship_batches_total", "Requests the sink acknowledged.", self.batches),
            c("pullgate_ship_retries_total", "Requests to the sink that failed and were tried again.", self.retries),
            ("pullgate_ship_lag_bytes", "gauge", "Bytes of the log the sink does not have yet.", String::new(), self.lag_bytes.to_string()),
            (
                "pullgate_ship_lag_seconds",
                "gauge",
                "0 when the sink has every line, else the age of the newest event it has.",
                String::new(),
                format!("{:.3}", self.lag_seconds),
            ),
            ("pullgate_ship_up", "gauge", "1 while the shipper runs.", String::new(), u8::from(self.failed.is_none()).to_string()),
        ]
    }
}
