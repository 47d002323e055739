//! Health of the upstreams routes can fail over between: `GET /v2/` answered
//! with 200 or 401 within the timeout is healthy (401: a registry asking for
//! a token is up). Probed every interval; a change wakes the daemon, which
//! re-renders with each route on its first healthy upstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use pullgate_config::Origin;

#[derive(Debug, Clone, Copy)]
pub struct HealthArgs {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed checks before an upstream counts as down.
    pub fall: u32,
    /// Consecutive passed checks before a down upstream counts as up again.
    pub rise: u32,
}

/// Which origins are healthy; unknown origins count as healthy.
#[derive(Debug, Default, Clone)]
pub struct HealthMap(BTreeMap<String, bool>);

impl HealthMap {
    pub fn is_healthy(&self, origin: &Origin) -> bool {
        self.0.get(&origin.to_string()).copied().unwrap_or(true)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &bool)> {
        self.0.iter()
    }
}

/// Shared between the prober and the daemon.
#[derive(Clone, Default)]
pub struct Health {
    /// What to probe; the daemon updates it after each apply.
    pub watched: Arc<Mutex<Vec<Origin>>>,
    pub state: Arc<Mutex<HealthMap>>,
    pub changed: Arc<Notify>,
}

impl Health {
    /// Start probing `origins` (the daemon updates the list after each apply).
    pub fn start(origins: Vec<Origin>, args: HealthArgs) -> Health {
        let health = Health::default();
        health.watch(origins);
        tokio::spawn(health.clone().run(args));
        health
    }

    pub fn snapshot(&self) -> HealthMap {
        self.state.lock().expect("health lock").clone()
    }

    pub fn watch(&self, origins: Vec<Origin>) {
        *self.watched.lock().expect("health lock") = origins;
    }

    /// Probe forever.
    pub async fn run(self, args: HealthArgs) {
        let client = match reqwest::Client::builder().timeout(args.timeout).redirect(reqwest::redirect::Policy::none()).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for health checks; fallbacks are not switched");
                return;
            }
        };
        // Consecutive results per origin: (passes, failures), so that one
        // slow answer does not move a route back and forth.
        let mut streaks: std::collections::HashMap<String, (u32, u32)> = std::collections::HashMap::new();
        let mut tick = tokio::time::interval(args.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let origins = self.watched.lock().expect("health lock").clone();
            if origins.is_empty() {
                continue;
            }
            let probes = origins.iter().map(|o| probe(&client, o));
            let results: Vec<bool> = futures::future::join_all(probes).await;
            let mut changed = false;
            {
                let mut state = self.state.lock().expect("health lock");
                for (o, passed) in origins.iter().zip(results) {
                    let key = o.to_string();
                    let streak = streaks.entry(key.clone()).or_default();
                    *streak = if passed { (streak.0 + 1, 0) } else { (0, streak.1 + 1) };
                    let was_up = state.0.get(&key).copied().unwrap_or(true);
                    let up = if was_up { streak.1 < args.fall.max(1) } else { streak.0 >= args.rise.max(1) };
                    state.0.insert(key.clone(), up);
                    if up != was_up {
                        tracing::warn!(upstream = %key, healthy = up, "upstream health changed");
                        changed = true;
                    }
                }
            }
            if changed {
                self.changed.notify_one();
            }
        }
    }
}

async fn probe(client: &reqwest::Client, origin: &Origin) -> bool {
    match client.get(format!("{origin}/v2/")).send().await {
        Ok(r) => matches!(r.status().as_u16(), 200 | 401),
        Err(_) => false,
    }
}
