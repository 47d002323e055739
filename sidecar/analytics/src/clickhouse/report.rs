//! Reports from the sealed aggregates: each day at its highest build; rows
//! grouped by day (and hour, when the report is by hour) and the asked
//! dimensions in ClickHouse, unique states merged per day there; the days
//! summed into periods here, as the embedded store does (origins are keyed
//! per day, so the sum of the days' uniques is the range's).

use std::collections::HashMap;

use serde::Deserialize;

use super::http::{quote, Http};
use crate::error::AnalyticsError;
use crate::group::{DAY_MS, HOUR_MS};
use crate::query::{ceil_div, indexmap_like::Ordered, weekday_number, Concentration, Counters, Dim, Granularity, Query, Report, Row};

/// The SQL expression of a dimension over an aggregate row: fixed text.
fn dim_sql(d: Dim) -> &'static str {
    match d {
        Dim::Route => "route",
        Dim::Repository => "repository",
        Dim::Tag => "tag",
        Dim::Client => "client",
        Dim::ClientVersion => "client_version",
        Dim::Os => "os",
        Dim::Arch => "arch",
        Dim::Country => "country",
        Dim::Asn => "asn",
        Dim::AsOrg => "as_org",
        Dim::Cloud => "cloud",
        // 1970-01-01 was a Thursday: Monday is 0 at (days + 3) % 7.
        Dim::Weekday => "['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'][(day + 3) % 7 + 1]",
        Dim::Hour => "toString(hour % 24)",
        Dim::Digest => "digest",
        Dim::Class => "class",
        Dim::Poller => "poller",
    }
}

/// The range's hours, the days they touch, and the filter over aggregate rows.
struct Range {
    h0: i64,
    h1: i64,
    /// `(day, build) IN (...)`: each day at its highest build.
    sealed: String,
    filter: String,
}

fn range(q: &Query) -> Result<Range, AnalyticsError> {
    let (h0, h1) = (ceil_div(q.since_ms, HOUR_MS), ceil_div(q.until_ms, HOUR_MS).max(ceil_div(q.since_ms, HOUR_MS)));
    let mut filter = format!("hour >= {h0} AND hour < {h1}");
    narrow(&mut filter, &[("route", &q.route), ("repository", &q.repository), ("client", &q.client)], &q.weekday)?;
    for (dim, v) in &q.filters {
        filter.push_str(&format!(" AND {} = {}", dim_sql(*dim), quote(v)));
    }
    Ok(Range { h0, h1, sealed: sealed(h0.div_euclid(24), ceil_div(h1, 24)), filter })
}

/// `(day, build) IN (...)`: each day of `[d0, d1)` at its highest sealed build.
fn sealed(d0: i64, d1: i64) -> String {
    format!("(day, build) IN (SELECT day, max(build) FROM seals WHERE day >= {d0} AND day < {d1} GROUP BY day)")
}

/// Add ` AND column = 'value'` for each value given, and the weekday of the row's day.
fn narrow(filter: &mut String, equal: &[(&str, &Option<String>)], weekday: &Option<String>) -> Result<(), AnalyticsError> {
    for (column, value) in equal {
        if let Some(v) = value {
            filter.push_str(&format!(" AND {column} = {}", quote(v)));
        }
    }
    if let Some(w) = weekday {
        filter.push_str(&format!(" AND (day + 3) % 7 = {}", weekday_number(w)?));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Grouped {
    day: i64,
    #[serde(default)]
    hour: i64,
    #[serde(default)]
    k: Vec<String>,
    q: i64,
    p: i64,
    c: i64,
    d: i64,
    #[serde(default)]
    uo: u64,
    #[serde(default)]
    ui: u64,
}

/// Counters by day (and hour when `hourly`) and `dims`, from the
/// aggregates and the DNT counts.
fn grouped(http: &Http, r: &Range, dims: &[Dim], hourly: bool) -> Result<Vec<Grouped>, AnalyticsError> {
    let keys = if dims.is_empty() {
        String::new()
    } else {
        format!(", [{}] AS k", dims.iter().map(|d| dim_sql(*d)).collect::<Vec<_>>().join(", "))
    };
    let by = format!("day{}{}", if hourly { ", hour" } else { "" }, if dims.is_empty() { "" } else { ", k" });
    let hour = if hourly { ", hour" } else { "" };
    let Range { sealed, filter, .. } = r;
    let mut out: Vec<Grouped> = http.rows(
        &format!(
            "SELECT day{hour}{keys}, sum(requests) AS q, sum(pulls) AS p, sum(checks) AS c, sum(downloads) AS d,
                    uniqCombinedMerge(origins) AS uo, uniqCombinedMerge(ips) AS ui
             FROM agg FINAL WHERE {sealed} AND {filter} GROUP BY {by}"
        ),
        "reporting",
    )?;
    out.extend(http.rows::<Grouped>(
        &format!(
            "SELECT day{hour}{keys}, sum(requests) AS q, sum(pulls) AS p, sum(checks) AS c, sum(downloads) AS d
             FROM agg_dnt FINAL WHERE {sealed} AND {filter} GROUP BY {by}"
        ),
        "reporting",
    )?);
    Ok(out)
}

fn add(to: &mut Counters, g: &Grouped) {
    let n = |v: i64| v.max(0) as u64;
    to.requests += n(g.q);
    to.pulls += n(g.p);
    to.version_checks += n(g.c);
    to.downloads += n(g.d);
    to.unique_origins += g.uo;
    to.unique_ips += g.ui;
}

pub fn run(http: &Http, q: &Query) -> Result<Report, AnalyticsError> {
    let r = range(q)?;
    let mut totals = Counters::default();
    for g in grouped(http, &r, &[], false)? {
        add(&mut totals, &g);
    }
    // Every request, pings and 404s included, when nothing but the route narrows it.
    if q.repository.is_none() && q.client.is_none() && q.weekday.is_none() && q.filters.is_empty() {
        #[derive(Deserialize)]
        struct N {
            n: u64,
        }
        let route = q.route.as_ref().map(|v| format!(" AND route = {}", quote(v))).unwrap_or_default();
        let n: Vec<N> = http.rows(
            &format!("SELECT sum(n) AS n FROM agg_requests FINAL WHERE {} AND hour >= {} AND hour < {}{route}", r.sealed, r.h0, r.h1),
            "reporting",
        )?;
        totals.requests = n.first().map_or(0, |n| n.n);
    }

    let period = q.granularity != Granularity::Total;
    let mut rows = Vec::new();
    if period || !q.by.is_empty() {
        let hourly = q.granularity == Granularity::Hour;
        let mut by: HashMap<(Option<String>, Vec<String>), Counters> = HashMap::new();
        for g in grouped(http, &r, &q.by, hourly)? {
            let t = if hourly { g.hour * HOUR_MS } else { g.day * DAY_MS };
            let key = (crate::time::period(q.granularity, t), g.k.clone());
            add(by.entry(key).or_default(), &g);
        }
        rows = by
            .into_iter()
            .map(|((p, k), counters)| {
                let mut dims: Vec<(String, String)> = p.map(|p| ("period".to_string(), p)).into_iter().collect();
                dims.extend(q.by.iter().map(|d| d.name().to_string()).zip(k));
                Row { dims: Ordered(dims), counters }
            })
            .collect();
        let keys = |row: &Row| row.dims.0.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
        // As the embedded store orders them: most used first, then by the
        // keys; or by the keys alone for a series without --top.
        if q.top.is_some() || q.granularity == Granularity::Total {
            rows.sort_by(|a, b| b.counters.usage().cmp(&a.counters.usage()).then_with(|| keys(a).cmp(&keys(b))));
        } else {
            rows.sort_by_key(keys);
        }
        if let Some(n) = q.top {
            rows.truncate(n);
        }
    }
    let concentration = concentration(http, q)?;
    Ok(Report { totals, rows, concentration })
}

/// From the days' pulls-per-origin counts, over the days the range touches.
fn concentration(http: &Http, q: &Query) -> Result<Concentration, AnalyticsError> {
    let (d0, d1) = (q.since_ms.div_euclid(DAY_MS), ceil_div(q.until_ms, DAY_MS));
    let mut filter = format!("day >= {d0} AND day < {d1} AND repository = {}", quote(q.repository.as_deref().unwrap_or("")));
    narrow(&mut filter, &[("route", &q.route), ("client", &q.client)], &q.weekday)?;
    #[derive(Deserialize)]
    struct C {
        pulls: u64,
        n: u64,
    }
    let counts: Vec<C> = http.rows(
        &format!(
            "SELECT pulls, sum(origins) AS n FROM agg_pulls FINAL
             WHERE {} AND {filter}
             GROUP BY pulls ORDER BY pulls DESC",
            sealed(d0, d1)
        ),
        "reporting",
    )?;
    Ok(Concentration::from_counts(&counts.iter().map(|c| (c.pulls, c.n)).collect::<Vec<_>>()))
}
