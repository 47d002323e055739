//! What the daemon knows about itself, for `pullgate status` and Prometheus.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub config_path: String,
    /// Version of the config nginx serves (hash of the rendered routes).
    pub serving_version: Option<String>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Failed applies by stage: validate, render, check, swap, reload, verify.
    pub failures_by_stage: std::collections::BTreeMap<String, u64>,
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
    pub upstream_health: std::collections::BTreeMap<String, bool>,
    /// For routes with fallbacks: the upstream each is served from.
    pub route_upstreams: std::collections::BTreeMap<String, String>,
    /// Lua mode: route-target changes published without a reload.
    pub tables_published: u64,
    /// Lua mode: the Redis the route table goes to.
    pub redis: super::publish::RedisState,
    /// The access-log shipper, when it runs here.
    pub shipping: Option<crate::ship::stats::Snapshot>,
    /// Where `shipping` is read from.
    #[serde(skip)]
    pub ship_stats: Option<Arc<crate::ship::Stats>>,
}

pub type Shared = Arc<Mutex<Status>>;

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Status {
    /// Bring what other threads count up to date.
    pub fn refresh(&mut self) {
        if let Some(stats) = &self.ship_stats {
            self.shipping = Some(stats.snapshot());
        }
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "pullgate_reloads_total",
            "counter",
            "Config changes applied, by result.",
            vec![("{result=\"ok\"}".into(), self.reloads_ok.to_string()), ("{result=\"failed\"}".into(), self.reloads_failed.to_string())],
        );
        metric(
            "pullgate_reload_failures_total",
            "counter",
            "Failed config changes, by the stage that failed.",
            self.failures_by_stage.iter().map(|(stage, n)| (format!("{{stage=\"{stage}\"}}"), n.to_string())).collect(),
        );
        metric(
            "pullgate_last_reload_success_timestamp_seconds",
            "gauge",
            "When a config change last went live.",
            vec![(String::new(), self.last_reload_ok.unwrap_or(0.0).to_string())],
        );
        metric(
            "pullgate_last_reload_duration_seconds",
            "gauge",
            "How long the last successful change took, from event to verified.",
            vec![(String::new(), self.last_reload_seconds.unwrap_or(0.0).to_string())],
        );
        metric(
            "pullgate_config_error",
            "gauge",
            "1 while the latest routes.yaml is not live because of an error.",
            vec![(String::new(), u8::from(self.last_error.is_some()).to_string())],
        );
        metric(
            "pullgate_config_info",
            "gauge",
            "The config version nginx serves.",
            vec![(format!("{{version=\"{}\"}}", self.serving_version.as_deref().unwrap_or("")), "1".into())],
        );
        metric(
            "pullgate_watch_events_total",
            "counter",
            "File-system events seen in the config directory.",
            vec![(String::new(), self.watch_events.to_string())],
        );
        metric(
            "pullgate_watch_batches_total",
            "counter",
            "Debounced batches of events.",
            vec![(String::new(), self.watch_batches.to_string())],
        );
        metric(
            "pullgate_watch_skipped_total",
            "counter",
            "Batches that did not change the parsed routes.",
            vec![(String::new(), self.skipped_unchanged.to_string())],
        );
        metric(
            "pullgate_tables_published_total",
            "counter",
            "Route-target changes published without a reload (Lua mode).",
            vec![(String::new(), self.tables_published.to_string())],
        );
        metric(
            "pullgate_redis_up",
            "gauge",
            "1 if the last exchange with Redis worked (Lua mode).",
            vec![(String::new(), u8::from(self.redis.ok == Some(true)).to_string())],
        );
        metric(
            "pullgate_redis_publishes_total",
            "counter",
            "Route tables written to Redis.",
            vec![(String::new(), self.redis.publishes.to_string())],
        );
        metric(
            "pullgate_redis_failures_total",
            "counter",
            "Exchanges with Redis that failed.",
            vec![(String::new(), self.redis.failures.to_string())],
        );
        metric(
            "pullgate_redis_table_info",
            "gauge",
            "The route table version last written to Redis.",
            vec![(format!("{{version=\"{}\"}}", self.redis.published_version.as_deref().unwrap_or("")), "1".to_string())],
        );
        metric(
            "pullgate_upstream_healthy",
            "gauge",
            "1 if the upstream answered its last health check (GET /v2/: 200 or 401).",
            self.upstream_health.iter().map(|(u, ok)| (format!("{{upstream=\"{u}\"}}"), u8::from(*ok).to_string())).collect(),
        );
        metric(
            "pullgate_route_upstream",
            "gauge",
            "The upstream a route with fallbacks is served from.",
            self.route_upstreams.iter().map(|(r, u)| (format!("{{route=\"{r}\",upstream=\"{u}\"}}"), "1".to_string())).collect(),
        );
        if let Some(ship) = &self.shipping {
            let mut last = "";
            for (name, kind, help, labels, value) in ship.metrics() {
                if name != last {
                    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
                    last = name;
                }
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        }
        out
    }

    /// A few lines for a person.
    pub fn human(&self) -> String {
        let ago = |t: Option<f64>| t.map(|t| format!("{:.0}s ago", (now() - t).max(0.0))).unwrap_or_else(|| "never".into());
        let mut s = format!(
            "config:   {}\nserving:  {}\nreloads:  {} ok, {} failed (last ok {})\nwatch:    {} events in {} batches, {} unchanged\n",
            self.config_path,
            self.serving_version.as_deref().unwrap_or("nothing yet"),
            self.reloads_ok,
            self.reloads_failed,
            ago(self.last_reload_ok),
            self.watch_events,
            self.watch_batches,
            self.skipped_unchanged
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
        for (upstream, ok) in &self.upstream_health {
            s.push_str(&format!("upstream {upstream}: {}\n", if *ok { "healthy" } else { "DOWN" }));
        }
        if let Some(ship) = &self.shipping {
            s.push_str(&format!(
                "shipping: {} lines read, {} shipped, {} dead-lettered, {} retries; lag {} bytes, {:.1}s{}\n",
                ship.lines_read,
                ship.shipped,
                ship.dead_lettered_unparsed + ship.dead_lettered_refused,
                ship.retries,
                ship.lag_bytes,
                ship.lag_seconds,
                ship.failed.as_ref().map(|f| format!("; STOPPED: {f}")).unwrap_or_default()
            ));
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
