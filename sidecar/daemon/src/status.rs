//! What the daemon knows about itself, for `pullgate status` and Prometheus.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pullgate_base::metrics::{Kind, Metrics};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub config_path: String,
    /// Version of the config nginx serves (hash of the rendered routes).
    pub serving_version: Option<String>,
    /// Seconds since the epoch when the daemon started serving its first config.
    #[serde(default)]
    pub started_at: Option<f64>,
    /// Config changes applied since start (for `run`, the first apply reloads the external nginx and counts).
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Failed applies by stage: validate, render, check, swap, reload, verify.
    pub failures_by_stage: BTreeMap<String, u64>,
    /// Seconds since the epoch of the last successful reload.
    pub last_reload_ok: Option<f64>,
    pub last_reload_seconds: Option<f64>,
    /// The last failure, with file:line:col or nginx's message; cleared by a success.
    pub last_error: Option<String>,
    pub last_error_at: Option<f64>,
    /// File-system events seen, and batches they were debounced into.
    pub watch_events: u64,
    pub watch_batches: u64,
    /// Batches that changed nothing that matters.
    pub skipped_unchanged: u64,
    /// Health of the upstreams routes fail over between (origin -> healthy).
    pub upstream_health: BTreeMap<String, bool>,
    /// For routes with fallbacks: the upstream each is served from.
    pub route_upstreams: BTreeMap<String, String>,
    /// Lua mode: route-target changes published without a reload.
    pub tables_published: u64,
    /// Lua mode: the Redis the route table goes to.
    pub redis: crate::publish::RedisState,
    /// Index routes: fetches of upstream documents, by result.
    #[serde(default)]
    pub indexes: crate::indexes::IndexStats,
    /// Index routes whose upstream failed the last refresh (served from the cache).
    #[serde(default)]
    pub index_stale: Vec<String>,
}

pub type Shared = Arc<Mutex<Status>>;

impl Status {
    /// Its families in the Prometheus text format.
    pub fn write_metrics(&self, m: &mut Metrics) {
        m.family("pullgate_reloads_total", Kind::Counter, "Config changes applied, by result.")
            .sample(&[("result", "ok")], self.reloads_ok)
            .sample(&[("result", "failed")], self.reloads_failed);
        let mut f = m.family("pullgate_reload_failures_total", Kind::Counter, "Failed config changes, by the stage that failed.");
        for (stage, n) in &self.failures_by_stage {
            f.sample(&[("stage", stage)], n);
        }
        m.single(
            "pullgate_last_reload_success_timestamp_seconds",
            Kind::Gauge,
            "When a config change last went live.",
            self.last_reload_ok.unwrap_or(0.0),
        );
        m.single(
            "pullgate_last_reload_duration_seconds",
            Kind::Gauge,
            "How long the last successful change took, from event to verified.",
            self.last_reload_seconds.unwrap_or(0.0),
        );
        m.single(
            "pullgate_config_error",
            Kind::Gauge,
            "1 while the latest routes.yaml is not live because of an error.",
            u8::from(self.last_error.is_some()),
        );
        m.family("pullgate_config_info", Kind::Gauge, "The config version nginx serves.")
            .sample(&[("version", self.serving_version.as_deref().unwrap_or(""))], 1);
        m.single("pullgate_watch_events_total", Kind::Counter, "File-system events seen in the config directory.", self.watch_events);
        m.single("pullgate_watch_batches_total", Kind::Counter, "Debounced batches of events.", self.watch_batches);
        m.single("pullgate_watch_skipped_total", Kind::Counter, "Batches that did not change the parsed routes.", self.skipped_unchanged);
        m.single(
            "pullgate_tables_published_total",
            Kind::Counter,
            "Route-target changes published without a reload (Lua mode).",
            self.tables_published,
        );
        m.single(
            "pullgate_redis_up",
            Kind::Gauge,
            "1 if the last exchange with Redis worked (Lua mode).",
            u8::from(self.redis.ok == Some(true)),
        );
        m.single("pullgate_redis_publishes_total", Kind::Counter, "Route tables written to Redis.", self.redis.publishes);
        m.single("pullgate_redis_failures_total", Kind::Counter, "Exchanges with Redis that failed.", self.redis.failures);
        m.family("pullgate_redis_table_info", Kind::Gauge, "The route table version last written to Redis.")
            .sample(&[("version", self.redis.published_version.as_deref().unwrap_or(""))], 1);
        let mut f =
            m.family("pullgate_upstream_healthy", Kind::Gauge, "1 if the upstream answered its last health check (GET /v2/: 200 or 401).");
        for (u, ok) in &self.upstream_health {
            f.sample(&[("upstream", u)], u8::from(*ok));
        }
        m.family("pullgate_index_fetches_total", Kind::Counter, "Upstream index documents asked for, by result.")
            .sample(&[("result", "new")], self.indexes.fetches.saturating_sub(self.indexes.not_modified + self.indexes.failures))
            .sample(&[("result", "not_modified")], self.indexes.not_modified)
            .sample(&[("result", "failed")], self.indexes.failures);
        m.single(
            "pullgate_index_refused_total",
            Kind::Counter,
            "Upstream index documents that did not read; the cached ones kept serving.",
            self.indexes.rejected,
        );
        let mut f =
            m.family("pullgate_index_stale", Kind::Gauge, "1 while an index route serves from its cache because its upstream failed.");
        for r in &self.index_stale {
            f.sample(&[("route", r)], 1);
        }
        let mut f = m.family("pullgate_route_upstream", Kind::Gauge, "The upstream a route with fallbacks is served from.");
        for (r, u) in &self.route_upstreams {
            f.sample(&[("route", r), ("upstream", u)], 1);
        }
    }

    /// A few lines for a person.
    pub fn human(&self) -> String {
        let now = pullgate_base::clock::now_secs();
        let ago = |t: Option<f64>| t.map(|t| format!("{:.0}s ago", (now - t).max(0.0))).unwrap_or_else(|| "never".into());
        let serving = match (&self.serving_version, self.started_at) {
            (None, _) => "nothing yet".to_string(),
            (Some(v), started) if self.reloads_ok == 0 => format!("{v}, the config loaded at start ({})", ago(started)),
            (Some(v), _) => format!("{v}, live since {}", ago(self.last_reload_ok)),
        };
        let reloads = match (self.reloads_ok, self.reloads_failed) {
            (0, 0) => "none since start: routes.yaml has not changed".to_string(),
            (ok, failed) => format!("{ok} applied, {failed} refused since start (last applied {})", ago(self.last_reload_ok)),
        };
        let mut s = format!(
            "config:   {}\nserving:  {serving}\nreloads:  {reloads}\nwatch:    {} events in {} batches, {} unchanged\n",
            self.config_path, self.watch_events, self.watch_batches, self.skipped_unchanged
        );
        if !self.redis.url.is_empty() {
            let state = match self.redis.ok {
                Some(true) => "ok".to_string(),
                Some(false) => format!("UNREACHABLE ({})", self.redis.last_error.as_deref().unwrap_or("")),
                None => "not contacted yet".to_string(),
            };
            s.push_str(&format!(
                "redis:    {} {state}; table {} ({} target changes without reload)\n",
                self.redis.url,
                self.redis.published_version.as_deref().unwrap_or("none"),
                self.tables_published
            ));
        }
        for (route, upstream) in &self.route_upstreams {
            s.push_str(&format!("route {route}: served from {upstream}\n"));
        }
        for route in &self.index_stale {
            s.push_str(&format!("index {route}: STALE, its upstream failed the last refresh; served from the cache\n"));
        }
        for (upstream, ok) in &self.upstream_health {
            s.push_str(&format!("upstream {upstream}: {}\n", if *ok { "healthy" } else { "DOWN" }));
        }
        if let Some(e) = &self.last_error {
            s.push_str(&format!("error ({}), the previous config keeps serving:\n", ago(self.last_error_at)));
            for line in e.lines() {
                s.push_str(&format!("  {line}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_after_start_it_says_nothing_changed_yet() {
        let now = pullgate_base::clock::now_secs();
        let s = Status { serving_version: Some("abc".into()), started_at: Some(now), ..Status::default() };
        let text = s.human();
        assert!(text.contains("serving:  abc, the config loaded at start (0s ago)"), "{text}");
        assert!(text.contains("reloads:  none since start"), "{text}");
        let s = Status { reloads_ok: 2, reloads_failed: 1, last_reload_ok: Some(now), ..s };
        assert!(s.human().contains("reloads:  2 applied, 1 refused since start (last applied 0s ago)"), "{}", s.human());
    }
}
