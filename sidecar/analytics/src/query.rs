//! Reports: counters over a time range, by period and dimensions, as the
//! report command and (next) the dashboard ask for them. The JSON form is a
//! contract (docs/report.md).

use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use crate::error::AnalyticsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
    Total,
}

/// What rows are grouped by, besides the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Route,
    Repository,
    Tag,
    Client,
    ClientVersion,
    Os,
    Arch,
    Country,
    Asn,
    AsOrg,
    Cloud,
    /// `mon` .. `sun` (UTC) of the action's first request.
    Weekday,
    /// Hour of day (UTC), 0 .. 23.
    Hour,
    /// The manifest digest an action fetched first.
    Digest,
    /// `ci`, `laptop`, `server`, `unknown` (see `class`).
    Class,
    /// `yes` for the actions of an origin that polls a repository.
    Poller,
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Dim {
    pub const ALL: [(&'static str, Dim); 16] = [
        ("route", Dim::Route),
        ("repository", Dim::Repository),
        ("tag", Dim::Tag),
        ("client", Dim::Client),
        ("client_version", Dim::ClientVersion),
        ("os", Dim::Os),
        ("arch", Dim::Arch),
        ("country", Dim::Country),
        ("asn", Dim::Asn),
        ("as_org", Dim::AsOrg),
        ("cloud", Dim::Cloud),
        ("weekday", Dim::Weekday),
        ("hour", Dim::Hour),
        ("digest", Dim::Digest),
        ("class", Dim::Class),
        ("poller", Dim::Poller),
    ];

    pub fn name(self) -> &'static str {
        Dim::ALL.iter().find(|(_, d)| *d == self).map(|(n, _)| *n).expect("every dimension is named")
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.iter().find(|(n, _)| *n == s).map(|(_, d)| *d)
    }

    /// The SQL expression over `actions` (fixed text: nothing from the user).
    fn sql(self) -> &'static str {
        match self {
            Dim::Route => "route",
            Dim::Repository => "repository",
            Dim::Tag => "COALESCE(tag, '')",
            Dim::Client => "client",
            Dim::ClientVersion => "client_version",
            Dim::Os => "os",
            Dim::Arch => "arch",
            Dim::Country => "COALESCE(country, '')",
            Dim::Asn => "COALESCE(CAST(asn AS TEXT), '')",
            Dim::AsOrg => "COALESCE(as_org, '')",
            Dim::Cloud => "COALESCE(cloud, '')",
            Dim::Weekday => WEEKDAY_SQL,
            Dim::Hour => "CAST((first_ts_ms / 3600000) % 24 AS TEXT)",
            Dim::Digest => "COALESCE(digest, '')",
            Dim::Class => "class",
            Dim::Poller => "CASE poller WHEN 1 THEN 'yes' ELSE 'no' END",
        }
    }
}

/// 1970-01-01 was a Thursday: Monday is 0 at (days + 3) % 7.
const WEEKDAY_SQL: &str = "CASE (first_ts_ms / 86400000 + 3) % 7 WHEN 0 THEN 'mon' WHEN 1 THEN 'tue' WHEN 2 THEN 'wed' \
     WHEN 3 THEN 'thu' WHEN 4 THEN 'fri' WHEN 5 THEN 'sat' ELSE 'sun' END";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Milliseconds since the epoch, inclusive.
    pub since_ms: i64,
    /// Exclusive.
    pub until_ms: i64,
    pub granularity: Granularity,
    pub by: Vec<Dim>,
    pub route: Option<String>,
    pub repository: Option<String>,
    pub client: Option<String>,
    /// `mon` .. `sun`.
    pub weekday: Option<String>,
    /// Only the N rows with the most pulls.
    pub top: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub pulls: u64,
    pub version_checks: u64,
    pub downloads: u64,
    pub unique_origins: u64,
    pub unique_ips: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Dimension name to value; `period` first when the granularity is not `total`.
    #[serde(flatten)]
    pub dims: indexmap_like::Ordered,
    #[serde(flatten)]
    pub counters: Counters,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub totals: Counters,
    pub rows: Vec<Row>,
    /// How much of the pulls a few origins make: inflated counts show here.
    pub concentration: Concentration,
}

/// The share of the period's pulls made by its busiest origins.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Concentration {
    /// Origins with at least one pull.
    pub origins: u64,
    /// By the top 1% of them (at least one origin).
    pub top_1_percent: f64,
    pub top_10: f64,
    pub top_20: f64,
}

/// Dimension values in the order asked for, serialised as JSON object keys.
pub mod indexmap_like {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Ordered(pub Vec<(String, String)>);

    impl Serialize for Ordered {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }
}

const COUNTERS_SQL: &str = "COALESCE(SUM(requests), 0), COALESCE(SUM(kind = 'pull'), 0), COALESCE(SUM(kind = 'check'), 0), \
     COALESCE(SUM(download), 0), COUNT(DISTINCT origin), COUNT(DISTINCT ip_origin)";

fn period_sql(g: Granularity) -> Option<&'static str> {
    Some(match g {
        Granularity::Hour => "strftime('%Y-%m-%dT%H:00Z', first_ts_ms / 1000, 'unixepoch')",
        Granularity::Day => "strftime('%Y-%m-%d', first_ts_ms / 1000, 'unixepoch')",
        // The Monday the week begins on.
        Granularity::Week => "date(first_ts_ms / 1000, 'unixepoch', '-6 days', 'weekday 1')",
        Granularity::Month => "strftime('%Y-%m', first_ts_ms / 1000, 'unixepoch')",
        Granularity::Total => return None,
    })
}

pub fn run(conn: &Connection, q: &Query) -> Result<Report, AnalyticsError> {
    let mut filter = String::from("first_ts_ms >= ?1 AND first_ts_ms < ?2");
    let mut args: Vec<String> = vec![q.since_ms.to_string(), q.until_ms.to_string()];
    for (column, value) in [("route", &q.route), ("repository", &q.repository), ("client", &q.client)] {
        if let Some(v) = value {
            args.push(v.clone());
            filter.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    if let Some(w) = &q.weekday {
        if !WEEKDAYS.contains(&w.as_str()) {
            return Err(AnalyticsError::Query(format!("weekday {w:?}: expected one of {}", WEEKDAYS.join(", "))));
        }
        args.push(w.clone());
        filter.push_str(&format!(" AND ({WEEKDAY_SQL}) = ?{}", args.len()));
    }
    // The range's values go in as text; SQLite compares them as numbers with the casts below.
    let filter = filter.replacen("?1", "CAST(?1 AS INTEGER)", 1).replacen("?2", "CAST(?2 AS INTEGER)", 1);
    let counters = |r: &rusqlite::Row, at: usize| -> rusqlite::Result<Counters> {
        let n = |i: usize| r.get::<_, i64>(at + i).map(|v| v.max(0) as u64);
        Ok(Counters { requests: n(0)?, pulls: n(1)?, version_checks: n(2)?, downloads: n(3)?, unique_origins: n(4)?, unique_ips: n(5)? })
    };

    let mut totals =
        conn.query_row(&format!("SELECT {COUNTERS_SQL} FROM actions WHERE {filter}"), params_from_iter(&args), |r| counters(r, 0))?;
    // Every request, pings and 404s included, when nothing but the route narrows it.
    if q.repository.is_none() && q.client.is_none() && q.weekday.is_none() {
        let (sql, a): (String, Vec<String>) = match &q.route {
            Some(r) => (
                "SELECT COALESCE(SUM(n), 0) FROM hourly_requests WHERE hour >= ?1 / 3600000 AND hour * 3600000 < ?2 AND route = ?3".into(),
                vec![q.since_ms.to_string(), q.until_ms.to_string(), r.clone()],
            ),
            None => (
                "SELECT COALESCE(SUM(n), 0) FROM hourly_requests WHERE hour >= ?1 / 3600000 AND hour * 3600000 < ?2".into(),
                vec![q.since_ms.to_string(), q.until_ms.to_string()],
            ),
        };
        let sql = sql.replace("?1", "CAST(?1 AS INTEGER)").replace("?2", "CAST(?2 AS INTEGER)");
        totals.requests = conn.query_row(&sql, params_from_iter(&a), |r| r.get::<_, i64>(0))?.max(0) as u64;
    }

    let mut keys: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = period_sql(q.granularity) {
        keys.push(("period", p));
    }
    keys.extend(q.by.iter().map(|d| (d.name(), d.sql())));
    let mut rows = Vec::new();
    if !keys.is_empty() {
        let select: Vec<&str> = keys.iter().map(|(_, sql)| *sql).collect();
        let group_by = (1..=keys.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        // Columns: the keys, then requests, then pulls.
        let order =
            if q.top.is_some() || q.granularity == Granularity::Total { format!("{} DESC", keys.len() + 2) } else { group_by.clone() };
        let limit = q.top.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql =
            format!("SELECT {}, {COUNTERS_SQL} FROM actions WHERE {filter} GROUP BY {group_by} ORDER BY {order}{limit}", select.join(", "));
        let mut stmt = conn.prepare(&sql)?;
        let mut it = stmt.query(params_from_iter(&args))?;
        while let Some(r) = it.next()? {
            let mut dims = Vec::new();
            for (i, (name, _)) in keys.iter().enumerate() {
                dims.push((name.to_string(), r.get::<_, String>(i)?));
            }
            rows.push(Row { dims: indexmap_like::Ordered(dims), counters: counters(r, keys.len())? });
        }
    }
    let mut per_origin: Vec<u64> = conn
        .prepare(&format!("SELECT COUNT(*) FROM actions WHERE {filter} AND kind = 'pull' GROUP BY origin"))?
        .query_map(params_from_iter(&args), |r| r.get::<_, i64>(0).map(|n| n.max(0) as u64))?
        .collect::<Result<_, _>>()?;
    per_origin.sort_unstable_by(|a, b| b.cmp(a));
    let all: u64 = per_origin.iter().sum();
    let share = |n: usize| if all == 0 { 0.0 } else { per_origin.iter().take(n).sum::<u64>() as f64 / all as f64 };
    let concentration = Concentration {
        origins: per_origin.len() as u64,
        top_1_percent: share(per_origin.len().div_ceil(100)),
        top_10: share(10),
        top_20: share(20),
    };
    Ok(Report { totals, rows, concentration })
}
