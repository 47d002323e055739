//! Reports: counters over a time range, by period and dimensions, as the
//! report command and (next) the dashboard ask for them. The JSON form is a
//! contract (docs/report.md).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
    Week,
    Month,
    Total,
}

impl Granularity {
    pub const ALL: [(&'static str, Granularity); 5] = [
        ("hour", Granularity::Hour),
        ("day", Granularity::Day),
        ("week", Granularity::Week),
        ("month", Granularity::Month),
        ("total", Granularity::Total),
    ];

    pub fn name(self) -> &'static str {
        Granularity::ALL.iter().find(|(_, g)| *g == self).map(|(n, _)| *n).expect("every granularity is named")
    }

    pub fn parse(s: &str) -> Option<Granularity> {
        Granularity::ALL.iter().find(|(n, _)| *n == s).map(|(_, g)| *g)
    }
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

/// A weekday's number, Monday 0 (what a store's `(days + 3) % 7` gives).
pub(crate) fn weekday_number(w: &str) -> Result<i64, crate::AnalyticsError> {
    WEEKDAYS
        .iter()
        .position(|d| *d == w)
        .map(|n| n as i64)
        .ok_or_else(|| crate::AnalyticsError::Query(format!("weekday {w:?}: expected one of {}", WEEKDAYS.join(", "))))
}

/// `a / b` rounded up (`b` > 0): the first whole period at or after `a`.
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

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

    /// A name of [`Dim::ALL`], or an alias for a package index's files:
    /// `package` (their repository) and `version` (their tag).
    pub fn parse(s: &str) -> Option<Dim> {
        match s {
            "package" => Some(Dim::Repository),
            "version" => Some(Dim::Tag),
            _ => Dim::ALL.iter().find(|(n, _)| *n == s).map(|(_, d)| *d),
        }
    }
}

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
    /// Only the N rows most used ([`Counters::usage`]: pulls, or a file's downloads).
    pub top: Option<usize>,
    /// Only what has these values (any dimension: a tag, a country, a
    /// class...), besides the named filters above. The concentration figure
    /// honours route, repository, client and weekday only.
    pub filters: Vec<(Dim, String)>,
}

impl Query {
    /// Everything in `[since_ms, until_ms)`, by `by`, with no filter.
    pub fn all(since_ms: i64, until_ms: i64, granularity: Granularity, by: Vec<Dim>) -> Query {
        Query {
            since_ms,
            until_ms,
            granularity,
            by,
            route: None,
            repository: None,
            client: None,
            weekday: None,
            top: None,
            filters: Vec::new(),
        }
    }
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

impl Counters {
    /// What rows are ranked by: pulls, or for files (which have none) downloads.
    pub fn usage(&self) -> u64 {
        self.pulls.max(self.downloads)
    }
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

/// The counters in the contract's order, and their names.
pub const COUNTERS: [&str; 6] = ["requests", "pulls", "version_checks", "downloads", "unique_origins", "unique_ips"];

impl Counters {
    pub fn values(&self) -> [u64; 6] {
        [self.requests, self.pulls, self.version_checks, self.downloads, self.unique_origins, self.unique_ips]
    }
}

impl Report {
    /// CSV with a header row: the rows' dimensions, then the counters.
    pub fn to_csv(&self) -> String {
        let dims: Vec<&str> = self.rows.first().map(|row| row.dims.0.iter().map(|(k, _)| k.as_str()).collect()).unwrap_or_default();
        let mut out = dims.iter().chain(COUNTERS.iter()).copied().collect::<Vec<_>>().join(",") + "\n";
        for row in &self.rows {
            let mut cells: Vec<String> = row.dims.0.iter().map(|(_, v)| csv_field(v)).collect();
            cells.extend(row.counters.values().iter().map(u64::to_string));
            out.push_str(&(cells.join(",") + "\n"));
        }
        out
    }
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so that a spreadsheet does not run it as a formula.
pub fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) { format!("'{v}") } else { v.to_string() };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
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

impl Concentration {
    /// From how many origins made how many pulls: `(pulls, origins)`, most pulls first.
    pub fn from_counts(counts: &[(u64, u64)]) -> Concentration {
        let origins: u64 = counts.iter().map(|(_, n)| n).sum();
        let all: u64 = counts.iter().map(|(p, n)| p * n).sum();
        // Pulls made by the busiest `top` origins.
        let top = |mut top: u64| -> f64 {
            let mut sum = 0;
            for (pulls, n) in counts {
                let take = top.min(*n);
                sum += pulls * take;
                top -= take;
            }
            if all == 0 {
                0.0
            } else {
                sum as f64 / all as f64
            }
        };
        Concentration { origins, top_1_percent: top(origins.div_ceil(100)), top_10: top(10), top_20: top(20) }
    }

    /// `of 4 origins that pulled, the top 1% made 33% of the pulls, the top
    /// 10 100%, the top 20 100%`, or `None` when no origin pulled.
    pub fn describe(&self) -> Option<String> {
        (self.origins > 0).then(|| {
            format!(
                "of {} origins that pulled, the top 1% made {:.0}% of the pulls, the top 10 {:.0}%, the top 20 {:.0}%",
                self.origins,
                self.top_1_percent * 100.0,
                self.top_10 * 100.0,
                self.top_20 * 100.0
            )
        })
    }
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
