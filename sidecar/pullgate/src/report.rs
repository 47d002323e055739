//! What the status endpoint says: the daemon's status and, where the access
//! log is shipped in the same process, the shipper's counters. The daemon
//! knows nothing of shipping; this is where the two meet.

use std::sync::Arc;

use pullgate_base::metrics::Metrics;
use pullgate_daemon::{http, status::Shared, Status};
use pullgate_ship::{Snapshot, Stats};
use serde::{Deserialize, Serialize};

/// `/status` as JSON: the daemon's fields, and `shipping`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    #[serde(flatten)]
    pub daemon: Status,
    pub shipping: Option<Snapshot>,
}

impl Report {
    /// A few lines for a person (`pullgate status`).
    pub fn human(&self) -> String {
        let mut s = self.daemon.human();
        if let Some(ship) = &self.shipping {
            // Before the error, which ends the text.
            let at = s.find("\nerror (").map_or(s.len(), |i| i + 1);
            s.insert_str(at, &format!("shipping: {}\n", ship.summary()));
        }
        s
    }
}

/// The live sources of a report.
pub struct Live {
    pub status: Shared,
    pub ship: Option<Arc<Stats>>,
}

impl Live {
    fn report(&self) -> Report {
        Report { daemon: self.status.lock().expect("status lock").clone(), shipping: self.ship.as_ref().map(|s| s.snapshot()) }
    }
}

impl http::Report for Live {
    fn metrics(&self) -> String {
        let r = self.report();
        let mut m = Metrics::new();
        r.daemon.write_metrics(&mut m);
        if let Some(ship) = &r.shipping {
            ship.write_metrics(&mut m);
        }
        m.into_text()
    }

    fn status_json(&self) -> String {
        serde_json::to_string_pretty(&self.report()).unwrap_or_default()
    }
}
