//! Requests with DNT or GPC leave the box with no origin, so nothing can
//! group them later; they are grouped here, while the address is at hand,
//! by the same rules as everyone's ([`crate::rules`]), and each such event
//! carries only what it changed in the counts (`dnt_counts`): a HEAD that
//! opens a version check is `version_checks: 1`; the GET that turns it into
//! a pull, `pulls: 1, version_checks: -1`. No identifier leaves: not the
//! address, not a hash of it, not a session number.
//!
//! A client is its address (IPv6 by /64) and agent, as for an origin; the
//! sessions live in memory only, keyed by a hash under a key drawn at start,
//! and each is forgotten once its window has passed. Requests are taken in
//! log order (the order nginx wrote them).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::anon::network_of;
use crate::rules::request::classify;
use crate::rules::session::Session;

/// The window of an action (DESIGN.md; analytics' default).
pub const WINDOW_MS: i64 = 60_000;

/// What one DNT/GPC request changed in the counts of its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DntCounts {
    /// The start of the hour its action began in (ms): where the counts go.
    pub hour_ms: i64,
    pub pulls: i8,
    pub version_checks: i8,
    pub downloads: i8,
}

pub struct DntSessions {
    hasher: std::collections::hash_map::RandomState,
    sessions: HashMap<u64, Session>,
    pruned_at: i64,
}

impl Default for DntSessions {
    fn default() -> DntSessions {
        DntSessions { hasher: std::collections::hash_map::RandomState::new(), sessions: HashMap::new(), pruned_at: 0 }
    }
}

impl DntSessions {
    /// The request's change to the counts (zero for a request that joins an
    /// action without changing what it counts); `None` for one that is part
    /// of no action (a ping, a 404, a blob with no action open).
    #[allow(clippy::too_many_arguments)]
    pub fn mark(
        &mut self,
        ts_ms: i64,
        ip: Option<IpAddr>,
        logged_ip: &str,
        ua: &str,
        method: &str,
        uri: &str,
        status: u16,
        route: &str,
        mode: &str,
    ) -> Option<DntCounts> {
        let counted = classify(method, uri, status, route, mode)?;
        if ts_ms - self.pruned_at > WINDOW_MS {
            self.sessions.retain(|_, s| s.last_request().is_some_and(|t| ts_ms - t <= WINDOW_MS));
            self.pruned_at = ts_ms;
        }
        let mut h = self.hasher.build_hasher();
        for part in [network_of(ip, logged_ip).as_bytes(), ua.as_bytes(), counted.repository.as_bytes()] {
            h.write(part);
            h.write_u8(0);
        }
        let session = self.sessions.entry(h.finish()).or_default();
        let mut closed = Vec::new();
        let d = session.push(0, ts_ms, &counted.kind, WINDOW_MS, &mut closed);
        // A blob with no action open is part of nothing.
        if d.is_zero() && session.last_request() != Some(ts_ms) {
            return None;
        }
        // The request belongs to the action open now (a file download's too).
        let began = session.open_since().unwrap_or(ts_ms);
        Some(DntCounts {
            hour_ms: began - began.rem_euclid(3_600_000),
            pulls: d.pulls,
            version_checks: d.version_checks,
            downloads: d.downloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_pull_and_a_re_pull_with_dnt() {
        let mut s = DntSessions::default();
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        let m = "/v2/acme/app/manifests";
        let mut mark = |ts: i64, method: &str, uri: &str| s.mark(ts, ip, "192.0.2.1", "docker/27", method, uri, 200, "acme", "redirect");
        let t = 1_700_000_000_000;
        let c = |p, v, d| Some(DntCounts { hour_ms: t - t % 3_600_000, pulls: p, version_checks: v, downloads: d });
        assert_eq!(mark(t, "GET", "/v2/"), None, "a ping counts as nothing");
        assert_eq!(mark(t + 1, "HEAD", &format!("{m}/1.0")), c(0, 1, 0));
        assert_eq!(mark(t + 2, "GET", &format!("{m}/sha256:i")), c(1, -1, 0));
        assert_eq!(mark(t + 3, "GET", &format!("{m}/sha256:p")), c(0, 0, 0), "part of the pull, changing nothing");
        assert_eq!(mark(t + 4, "GET", "/v2/acme/app/blobs/sha256:b"), c(0, 0, 1));
        assert_eq!(mark(t + 5, "GET", "/v2/acme/app/blobs/sha256:c"), c(0, 0, 0));
        assert_eq!(mark(t + 200_000, "GET", "/v2/acme/app/blobs/sha256:c"), None, "a blob after the window is part of nothing");
        // Ten minutes on (the session was forgotten): a re-pull that finds the image up to date.
        assert_eq!(mark(t + 600_000, "HEAD", &format!("{m}/1.0")), c(0, 1, 0));
        // Another client (another agent) is another session.
        assert_eq!(s.mark(t + 600_001, ip, "192.0.2.1", "podman/5", "GET", &format!("{m}/sha256:p"), 200, "acme", "proxy"), c(1, 0, 0));
    }
}
