//! The overview page's content, from the store through the analytics
//! query library (the same reports `pullgate report` prints).

use pullgate_analytics::{AnalyticsError, Dim, Granularity, Report, Store};

use crate::chart::{self, Series};
use crate::params::{View, RANGES};

pub struct Link {
    pub text: String,
    pub href: String,
    pub active: bool,
}

pub struct Bar {
    pub label: String,
    pub count: u64,
    pub share: String,
    pub width: f64,
    pub href: String,
    /// Every counter, for the hover text.
    pub detail: String,
}

pub struct Breakdown {
    pub title: &'static str,
    pub dim: &'static str,
    pub bars: Vec<Bar>,
    pub csv: String,
}

pub struct Cell {
    pub x: u32,
    pub y: u32,
    pub opacity: f64,
    pub text: String,
}

pub struct Overview {
    pub ranges: Vec<Link>,
    pub granularities: Vec<Link>,
    /// Filters in force, each with the link that drops it.
    pub filters: Vec<Link>,
    pub empty: bool,
    pub requests: u64,
    pub series: Vec<Series>,
    pub breakdowns: Vec<Breakdown>,
    pub heat: Vec<Cell>,
    pub weekdays: [&'static str; 7],
    pub concentration: String,
    /// What share of the version checks pollers made.
    pub pollers: String,
    pub api: String,
    pub width: f64,
    pub height: f64,
}

const BREAKDOWNS: [(&str, Dim); 10] = [
    ("Repositories and packages", Dim::Repository),
    ("Tags and versions", Dim::Tag),
    ("Clients", Dim::Client),
    ("Client versions", Dim::ClientVersion),
    ("Operating systems", Dim::Os),
    ("Architectures", Dim::Arch),
    ("Countries", Dim::Country),
    ("Networks", Dim::AsOrg),
    ("Clouds", Dim::Cloud),
    ("Where clients run", Dim::Class),
];

pub fn overview(store: &mut dyn Store, view: &View) -> Result<Overview, AnalyticsError> {
    let g = view.granularity;
    let now = store.report(&view.query(g, vec![], None))?;
    let before = store.report(&view.previous().query(g, vec![], None))?;
    let periods = crate::periods::list(view.since_ms, view.until_ms, g);
    let previous_periods = crate::periods::list(view.previous().since_ms, view.previous().until_ms, g);
    let by_period = |r: &Report, names: &[String], pick: fn(&pullgate_analytics::Counters) -> u64| -> Vec<u64> {
        names
            .iter()
            .map(|p| r.rows.iter().find(|row| row.dims.0.first().is_some_and(|(_, v)| v == p)).map_or(0, |row| pick(&row.counters)))
            .collect()
    };
    type Pick = fn(&pullgate_analytics::Counters) -> u64;
    let counters: [(&str, Pick); 4] = [
        ("pulls", |c| c.pulls),
        ("version checks", |c| c.version_checks),
        ("downloads", |c| c.downloads),
        ("unique origins", |c| c.unique_origins),
    ];
    let series = counters
        .iter()
        .map(|(title, pick)| {
            let mut previous = by_period(&before, &previous_periods, *pick);
            previous.resize(periods.len(), 0);
            chart::series(title, &periods, &by_period(&now, &periods, *pick), &previous, pick(&now.totals), pick(&before.totals))
        })
        .collect();

    let mut breakdowns = Vec::new();
    let mut dims: Vec<Dim> = BREAKDOWNS.iter().map(|(_, d)| *d).collect();
    dims.push(Dim::Poller);
    // All of them, and the pollers, from one pass over the range's rows.
    let mut all_rows = store.breakdowns(&view.query(Granularity::Total, vec![], None), &dims, 10)?;
    let poller_rows = all_rows.pop().unwrap_or_default();
    for ((title, dim), rows) in BREAKDOWNS.into_iter().zip(all_rows) {
        let all = now.totals.pulls.max(1);
        let max = rows.iter().map(|row| row.counters.pulls).max().unwrap_or(0).max(1);
        let bars = rows
            .iter()
            .map(|row| {
                let value = row.dims.0.first().map(|(_, v)| v.clone()).unwrap_or_default();
                let c = &row.counters;
                Bar {
                    label: label(dim, &value),
                    count: c.pulls,
                    share: format!("{:.0}%", c.pulls as f64 * 100.0 / all as f64),
                    width: c.pulls as f64 * 100.0 / max as f64,
                    href: view.href(&[(dim.name(), Some(&value))]),
                    detail: format!(
                        "{} pulls, {} version checks, {} downloads, {} unique origins, {} requests",
                        c.pulls, c.version_checks, c.downloads, c.unique_origins, c.requests
                    ),
                }
            })
            .collect();
        let csv = format!("/api/report.csv{}&by={}", view.href(&[("granularity", Some("total"))]), dim.name());
        breakdowns.push(Breakdown { title, dim: dim.name(), bars, csv });
    }

    let heat_report = store.report(&view.query(Granularity::Total, vec![Dim::Weekday, Dim::Hour], None))?;
    let top = heat_report.rows.iter().map(|r| r.counters.pulls).max().unwrap_or(0).max(1);
    let heat = heat_report
        .rows
        .iter()
        .filter_map(|row| {
            let day = pullgate_analytics::query::WEEKDAYS.iter().position(|w| row.dims.0.first().is_some_and(|(_, v)| v == w))?;
            let hour: u32 = row.dims.0.get(1)?.1.parse().ok()?;
            Some(Cell {
                x: 40 + hour * 20,
                y: day as u32 * 18,
                opacity: 0.08 + 0.92 * row.counters.pulls as f64 / top as f64,
                text: format!("{} {:02}:00 UTC: {} pulls", row.dims.0[0].1, hour, row.counters.pulls),
            })
        })
        .collect();

    // Pollers: regular version checks (watchtower, diun, cron) say little about use.
    let polled = poller_rows.iter().find(|r| r.dims.0.first().is_some_and(|(_, v)| v == "yes")).map(|r| &r.counters);
    let pollers = match polled {
        Some(p) if now.totals.version_checks > 0 => format!(
            "Pollers ({} origins checking at regular intervals, such as watchtower or diun) made {:.0}% of the version checks.",
            p.unique_origins,
            p.version_checks as f64 * 100.0 / now.totals.version_checks as f64
        ),
        _ => "No origin polled in this range.".to_string(),
    };
    let concentration = match now.concentration.describe() {
        None => "No origin pulled in this range.".to_string(),
        Some(mut d) => {
            d[..1].make_ascii_uppercase();
            format!(
                "{d}. The higher these are, the more the pull count says about a few busy machines (CI runners, mirrors) \
                 and the less about how many use the software: read unique origins beside it."
            )
        }
    };

    let ranges = RANGES
        .iter()
        .map(|(name, _)| Link { text: name.to_string(), href: view.href(&[("range", Some(name))]), active: view.range == *name })
        .collect();
    let granularities = [Granularity::Hour, Granularity::Day, Granularity::Week, Granularity::Month]
        .iter()
        .map(|g| {
            let name = g.name();
            Link { text: name.to_string(), href: view.href(&[("granularity", Some(name))]), active: view.granularity == *g }
        })
        .collect();
    let filters = view
        .filters
        .iter()
        .map(|(d, v)| Link { text: format!("{} = {}", d.name(), label(*d, v)), href: view.href(&[(d.name(), None)]), active: true })
        .collect();
    Ok(Overview {
        ranges,
        granularities,
        filters,
        empty: now.totals.requests == 0,
        requests: now.totals.requests,
        series,
        breakdowns,
        heat,
        weekdays: pullgate_analytics::query::WEEKDAYS,
        concentration,
        pollers,
        api: format!("/api/report{}", view.href(&[])),
        width: chart::WIDTH,
        height: chart::HEIGHT,
    })
}

/// How a value reads on the page: countries with their flag and name, an
/// empty value as `unknown`.
pub fn label(dim: Dim, value: &str) -> String {
    if value.is_empty() {
        return "unknown".into();
    }
    if dim == Dim::Country && value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        let flag: String = value.bytes().filter_map(|b| char::from_u32(0x1F1E6 + u32::from(b - b'A'))).collect();
        let name = crate::countries::name(value).unwrap_or(value);
        return format!("{flag} {name}");
    }
    value.to_string()
}
