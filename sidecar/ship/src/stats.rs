//! The shipper's counters, shared between its threads and the status
//! endpoint, and their snapshot for /status and /metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use pullgate_base::metrics::{Kind, Metrics};
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
    /// Proxied requests an upstream answered 429, by route.
    pub throttled: Mutex<std::collections::BTreeMap<String, u64>>,
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
    /// Proxied requests an upstream answered 429 (its rate limit), by route.
    #[serde(default)]
    pub upstream_throttled: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    pub fn snapshot(&self) -> Snapshot {
        let in_flight = self.bytes_read.load(Relaxed).saturating_sub(self.bytes_acked.load(Relaxed));
        let lag_bytes = self.unread.load(Relaxed) + in_flight;
        let lag_seconds = if lag_bytes == 0 {
            0.0
        } else {
            let since = self.newest_acked_ms.load(Relaxed).max(self.started_ms.load(Relaxed));
            (pullgate_base::clock::now_ms() as f64 - since as f64).max(0.0) / 1000.0
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
            upstream_throttled: self.throttled.lock().expect("stats lock").clone(),
        }
    }
}

impl Snapshot {
    /// Its families in the Prometheus text format.
    pub fn write_metrics(&self, m: &mut Metrics) {
        m.single("pullgate_ship_lines_read_total", Kind::Counter, "Access-log lines read.", self.lines_read);
        m.single("pullgate_ship_bytes_read_total", Kind::Counter, "Access-log bytes read.", self.bytes_read);
        m.single("pullgate_ship_events_shipped_total", Kind::Counter, "Events the sink acknowledged.", self.shipped);
        m.family("pullgate_ship_dead_lettered_total", Kind::Counter, "Lines and events written to the dead letters instead, by why.")
            .sample(&[("reason", "unparsed")], self.dead_lettered_unparsed)
            .sample(&[("reason", "refused")], self.dead_lettered_refused);
        m.single("pullgate_ship_batches_total", Kind::Counter, "Requests the sink acknowledged.", self.batches);
        m.single("pullgate_ship_retries_total", Kind::Counter, "Requests to the sink that failed and were tried again.", self.retries);
        let mut f = m.family(
            "pullgate_upstream_throttled_total",
            Kind::Counter,
            "Proxied requests the upstream answered 429 (over its rate limit), by route, as the access log has them.",
        );
        for (route, n) in &self.upstream_throttled {
            f.sample(&[("route", route)], n);
        }
        m.single("pullgate_ship_lag_bytes", Kind::Gauge, "Bytes of the log the sink does not have yet.", self.lag_bytes);
        m.single(
            "pullgate_ship_lag_seconds",
            Kind::Gauge,
            "0 when the sink has every line, else the age of the newest event it has.",
            format!("{:.3}", self.lag_seconds),
        );
        m.single("pullgate_ship_up", Kind::Gauge, "1 while the shipper runs.", u8::from(self.failed.is_none()));
    }

    /// One line for a person.
    pub fn summary(&self) -> String {
        format!(
            "{} lines read, {} shipped, {} dead-lettered, {} retries; lag {} bytes, {:.1}s{}",
            self.lines_read,
            self.shipped,
            self.dead_lettered_unparsed + self.dead_lettered_refused,
            self.retries,
            self.lag_bytes,
            self.lag_seconds,
            self.failed.as_ref().map(|f| format!("; STOPPED: {f}")).unwrap_or_default()
        )
    }
}
