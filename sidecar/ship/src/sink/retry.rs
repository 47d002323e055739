//! Exponential backoff with jitter, for a sink that is down or throttling:
//! the n-th wait is uniform in [c/2, c] with c = min(max, base * 2^n), so
//! shippers that failed together do not retry together.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::stats::Stats;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        let seed = pullgate_base::clock::now_nanos() as u64;
        Backoff { base, max: max.max(base), attempt: 0, rng: seed ^ (u64::from(std::process::id()) << 32) | 1 }
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.base.saturating_mul(1 << self.attempt.min(20)).min(self.max);
        self.attempt += 1;
        // xorshift64: jitter needs no cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = cap / 2;
        half + Duration::from_nanos(self.rng % (half.as_nanos() as u64 + 1))
    }

    /// Failures so far in this run of them.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A sink's retries: counted, waited out with [`Backoff`], and said in the
/// log at most once per 30 s while they last, and once when they end.
#[derive(Debug)]
pub struct Retries {
    backoff: Backoff,
    /// The sink, as the log names it.
    sink: &'static str,
    last_warned: Option<Instant>,
}

impl Retries {
    pub fn new(sink: &'static str, max: Duration) -> Retries {
        Retries { backoff: Backoff::new(Duration::from_millis(100), max), sink, last_warned: None }
    }

    /// A request failed: count it and wait before the next.
    pub async fn wait(&mut self, stats: &Stats, error: &str) {
        stats.retries.fetch_add(1, Relaxed);
        let delay = self.backoff.next_delay();
        if self.last_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            tracing::warn!(sink = self.sink, %error, failures = self.backoff.failures(), retry_in = ?delay, "the sink did not take events; retrying (the access log holds them meanwhile)");
            self.last_warned = Some(Instant::now());
        }
        tokio::time::sleep(delay).await;
    }

    /// A request succeeded.
    pub fn succeeded(&mut self) {
        if self.backoff.failures() > 0 {
            tracing::info!(sink = self.sink, failures = self.backoff.failures(), "the sink takes events again");
            self.last_warned = None;
        }
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut b = Backoff::new(base, max);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let cap = (base * (1 << n)).min(max);
            assert!(*d >= cap / 2 && *d <= cap, "attempt {n}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
        assert!(delays[11..].iter().all(|d| *d >= max / 2), "capped waits stay long");
        let distinct: std::collections::BTreeSet<_> = delays[6..].iter().collect();
        assert!(distinct.len() > 1, "capped waits are jittered: {delays:?}");
        b.reset();
        assert!(b.next_delay() <= base);
    }
}
