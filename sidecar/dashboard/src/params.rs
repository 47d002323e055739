//! What the page and the API are asked for, from the URL's query string:
//! the range (`range=24h|7d|30d|12m`, or `since`/`until`), the granularity,
//! and filters by dimension (`repository=acme/app&country=NL`). Links keep
//! them, so a view can be shared and a click narrows it.

use pullgate_analytics::{time, Dim, Granularity, Query};

pub const RANGES: [(&str, i64); 4] = [("24h", HOUR_MS * 24), ("7d", DAY_MS * 7), ("30d", DAY_MS * 30), ("12m", DAY_MS * 365)];
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The dimensions a view may be filtered by.
pub const FILTERS: [Dim; 11] = [
    Dim::Route,
    Dim::Repository,
    Dim::Tag,
    Dim::Client,
    Dim::ClientVersion,
    Dim::Os,
    Dim::Arch,
    Dim::Country,
    Dim::AsOrg,
    Dim::Cloud,
    Dim::Class,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// `24h` .. `12m`, or `custom`.
    pub range: String,
    pub since_ms: i64,
    pub until_ms: i64,
    pub granularity: Granularity,
    pub filters: Vec<(Dim, String)>,
}

impl View {
    /// Parse the query string's pairs; `now_ms` anchors relative ranges.
    pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<View, String> {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // The end of the current hour: hourly rows are whole.
        let end = now_ms - now_ms.rem_euclid(HOUR_MS) + HOUR_MS;
        let (range, since_ms, until_ms) = match (get("since"), get("range").unwrap_or("30d")) {
            (Some(since), _) => {
                let t = |s: &str| pullgate_analytics::time::parse(s, now_ms);
                ("custom".to_string(), t(since)?, get("until").map(t).transpose()?.unwrap_or(end))
            }
            (None, r) => {
                let (name, span) =
                    RANGES.iter().find(|(n, _)| *n == r).ok_or_else(|| format!("range {r:?}: expected 24h, 7d, 30d or 12m"))?;
                (name.to_string(), end - span, end)
            }
        };
        if since_ms >= until_ms {
            return Err("since must come before until".into());
        }
        let span = until_ms - since_ms;
        let default = if span <= 2 * DAY_MS {
            Granularity::Hour
        } else if span <= 92 * DAY_MS {
            Granularity::Day
        } else {
            Granularity::Week
        };
        let granularity = match get("granularity") {
            Some(g) => Granularity::parse(g).ok_or_else(|| format!("granularity {g:?}: expected hour, day, week or month"))?,
            None => default,
        };
        let mut filters = Vec::new();
        for (k, v) in pairs {
            if let Some(d) = Dim::parse(k).filter(|d| FILTERS.contains(d)) {
                if v.len() > 512 {
                    return Err(format!("{k}: a value of {} bytes is too long", v.len()));
                }
                filters.retain(|(f, _)| f != &d);
                filters.push((d, v.clone()));
            }
        }
        Ok(View { range, since_ms, until_ms, granularity, filters })
    }

    /// The analytics query for this view, by these dimensions.
    pub fn query(&self, granularity: Granularity, by: Vec<Dim>, top: Option<usize>) -> Query {
        let take = |d: Dim| self.filters.iter().find(|(f, _)| *f == d).map(|(_, v)| v.clone());
        Query {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            granularity,
            by,
            route: take(Dim::Route),
            repository: take(Dim::Repository),
            client: take(Dim::Client),
            weekday: None,
            top,
            filters: self.filters.iter().filter(|(d, _)| !matches!(d, Dim::Route | Dim::Repository | Dim::Client)).cloned().collect(),
        }
    }

    /// The same length of time just before.
    pub fn previous(&self) -> View {
        let span = self.until_ms - self.since_ms;
        View { since_ms: self.since_ms - span, until_ms: self.since_ms, ..self.clone() }
    }

    /// The query string of this view with `set` applied (`None` removes).
    pub fn href(&self, set: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if self.range == "custom" {
            pairs.push(("since".into(), time::format(self.since_ms)));
            pairs.push(("until".into(), time::format(self.until_ms)));
        } else {
            pairs.push(("range".into(), self.range.clone()));
        }
        pairs.push(("granularity".into(), self.granularity.name().into()));
        for (d, v) in &self.filters {
            pairs.push((d.name().into(), v.clone()));
        }
        for (k, v) in set {
            if *k == "range" {
                pairs.retain(|(n, _)| n != "since" && n != "until");
            }
            pairs.retain(|(n, _)| n != k);
            if let Some(v) = v {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        format!("?{}", q.join("&"))
    }
}

/// Percent-encoding for a query component: all but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn ranges_granularities_and_filters() {
        let now = 1_780_000_000_000;
        let v = View::parse(&pairs(&[("range", "7d"), ("country", "NL"), ("repository", "acme/app"), ("weekday", "x")]), now).unwrap();
        assert_eq!((v.until_ms - v.since_ms, v.granularity), (7 * DAY_MS, Granularity::Day));
        assert_eq!(
            v.filters,
            [(Dim::Country, "NL".to_string()), (Dim::Repository, "acme/app".to_string())],
            "weekday is not a filter here"
        );
        let q = v.query(Granularity::Total, vec![Dim::Client], Some(5));
        assert_eq!((q.repository.as_deref(), q.filters.clone()), (Some("acme/app"), vec![(Dim::Country, "NL".to_string())]));
        assert_eq!(v.previous().until_ms, v.since_ms);
        assert_eq!(
            v.href(&[("tag", Some("1.0 & <2>"))]),
            "?range=7d&granularity=day&country=NL&repository=acme/app&tag=1.0%20%26%20%3C2%3E"
        );
        assert_eq!(v.href(&[("country", None), ("range", Some("24h"))]), "?granularity=day&repository=acme/app&range=24h");
        assert_eq!(View::parse(&pairs(&[("range", "24h")]), now).unwrap().granularity, Granularity::Hour);
        let c = View::parse(&pairs(&[("since", "2026-01-01"), ("until", "2026-02-01"), ("granularity", "week")]), now).unwrap();
        assert_eq!((c.range.as_str(), time::format(c.since_ms).as_str(), c.granularity), ("custom", "2026-01-01T00:00", Granularity::Week));
        assert!(c.href(&[]).starts_with("?since=2026-01-01T00:00&until=2026-02-01T00:00&"));
        for bad in [[("range", "5y")], [("granularity", "year")], [("since", "soon")]] {
            assert!(View::parse(&pairs(&bad), now).is_err(), "{bad:?}");
        }
    }
}
