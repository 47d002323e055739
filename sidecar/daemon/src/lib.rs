//! The sidecar daemon: keep nginx serving the latest good routes.yaml.
//!
//! One loop: wait for a debounced batch of file-system events, then apply the
//! file as it is now. Applies never overlap (at most one reload in flight),
//! reloads start at least `min_interval` apart (a change that only publishes
//! the route table waits for none), and applies read the file when they
//! start, so the latest edit wins and a burst of edits costs one reload.

mod apply;
mod health;
pub mod http;
mod indexes;
mod publish;
pub mod resolver;
mod source;
pub mod status;
mod watch;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use apply::{render_into, serving_version, Applier, ApplyError, Change, Outcome, ReloadMethod};
pub use health::HealthArgs;
pub use indexes::{IndexFeed, IndexStats, Indexes};
pub use publish::{PublishError, RedisState};
pub use source::Source;
pub use status::Status;
pub use watch::{Debounce, Events};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("status endpoint {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("watching {path}: {source}")]
    Watch { path: std::path::PathBuf, source: notify::Error },
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

pub struct Daemon {
    pub applier: Applier,
    pub health: health::Health,
    pub status: status::Shared,
    pub debounce: Debounce,
    /// At least this long between the starts of two reloads.
    pub min_interval: Duration,
}

/// Serve /metrics and /status on `addr` (none: not at all).
pub async fn serve_status(addr: Option<std::net::SocketAddr>, report: std::sync::Arc<dyn http::Report>) -> Result<(), DaemonError> {
    let Some(addr) = addr else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| DaemonError::Listen { addr, source })?;
    tracing::info!(%addr, "status on http://{addr}/status and /metrics");
    tokio::spawn(http::serve(listener, report));
    Ok(())
}

impl Daemon {
    /// A daemon for `applier`'s config, with health checks of its fallbacks started.
    pub fn new(applier: Applier, status: status::Shared, debounce: Debounce, min_interval: Duration, health: health::HealthArgs) -> Daemon {
        let health = health::Health::start(applier.failover_origins(), health);
        Daemon { applier, health, status, debounce, min_interval }
    }

    /// Apply each batch of `events` until `stop` resolves. Start watching
    /// before the first read of routes.yaml, so that no edit falls between.
    pub async fn run(mut self, mut events: Events, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        self.publish(&self.health.snapshot());
        // When the last reload began: reloads, not table publishes, are spaced.
        let mut last_reload: Option<Instant> = None;
        // Redis may have missed a publish (down) or lost the table (restarted).
        let mut resync = tokio::time::interval(Duration::from_secs(1));
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Only cancellation-safe waits race here; a batch is gathered after.
            let n = tokio::select! {
                first = events.first() => Some(match first { Some(whole) => events.rest(self.debounce, whole).await, None => 0 }),
                _ = self.health.changed.notified() => None,
                _ = resync.tick() => {
                    self.applier.publisher.resync().await;
                    self.status.lock().expect("status lock").redis = self.applier.publisher.state.clone();
                    self.publish_indexes();
                    continue;
                }
                // New index documents: a change like any other.
                _ = self.applier.indexes.changed() => None,
                _ = &mut stop => return,
            };
            if n == Some(0) {
                tracing::error!("the file watcher stopped; changes to routes.yaml are no longer seen");
                return;
            }
            let batch_at = Instant::now();
            if let Some(n) = n {
                let mut s = self.status.lock().expect("status lock");
                s.watch_events += n as u64;
                s.watch_batches += 1;
            }
            if let Some(t) = last_reload {
                tokio::time::sleep_until(t + self.min_interval).await;
            }
            let started = Instant::now();
            let health = self.health.snapshot();
            let result = self.applier.apply(&health).await;
            let reloaded = match &result {
                Ok(outcome) => matches!(outcome, Outcome::Applied { .. }),
                Err(e) => matches!(e.stage(), "reload" | "verify"),
            };
            if reloaded {
                last_reload = Some(started);
            }
            self.health.watch(self.applier.failover_origins());
            self.record(result, batch_at);
            self.publish(&health);
        }
    }

    /// The fetch counters, and the stale routes of the config served.
    fn publish_indexes(&self) {
        let stats = self.applier.indexes.stats.lock().expect("index stats lock").clone();
        let mut s = self.status.lock().expect("status lock");
        s.indexes = stats;
        s.index_stale = self.applier.stale_indexes();
    }

    /// Health and the upstream each route is served from, for /status.
    fn publish(&self, health: &health::HealthMap) {
        self.publish_indexes();
        let mut s = self.status.lock().expect("status lock");
        s.redis = self.applier.publisher.state.clone();
        s.upstream_health = health.iter().map(|(k, v)| (k.clone(), *v)).collect();
        s.route_upstreams = self.applier.serving_upstreams().into_iter().collect();
    }

    fn record(&self, result: Result<Outcome, ApplyError>, since: Instant) {
        let mut s = self.status.lock().expect("status lock");
        match result {
            Ok(Outcome::Applied { version }) => {
                let took = since.elapsed().as_secs_f64();
                tracing::info!(%version, seconds = took, "new config is serving");
                s.reloads_ok += 1;
                s.serving_version = Some(version);
                s.last_reload_ok = Some(pullgate_base::clock::now_secs());
                s.last_reload_seconds = Some(took);
                s.last_error = None;
            }
            Ok(Outcome::Published { table }) => {
                tracing::info!(%table, "route targets published, no reload needed");
                s.tables_published += 1;
                s.last_error = None;
            }
            Ok(Outcome::Unchanged) => {
                s.skipped_unchanged += 1;
                // An edit reverted to what is serving: nothing is pending any more.
                s.last_error = None;
            }
            Err(e) => {
                tracing::error!(stage = e.stage(), "config not applied, the previous one keeps serving:\n{e}");
                s.reloads_failed += 1;
                *s.failures_by_stage.entry(e.stage().to_string()).or_default() += 1;
                s.last_error = Some(e.to_string());
                s.last_error_at = Some(pullgate_base::clock::now_secs());
            }
        }
    }
}
