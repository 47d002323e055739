//! Reports from the aggregates: whole days from the day rows, the hours of
//! a range's partial days (or every hour, for hourly reports and `--by
//! hour`) from the hour rows; unique sketches merged per day by the
//! `pg_uniq` aggregate, then summed over days (origins are keyed per day,
//! so no origin is in two days: the sum of the days' counts is the count
//! of the range).

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::error::AnalyticsError;
use crate::group::{DAY_MS, HOUR_MS};
use crate::query::{ceil_div, weekday_number, Concentration, Counters, Dim, Granularity, Query, Report, Row};
use crate::sketch::Union;

/// `pg_uniq(sketch)`: how many members the union of the sketches has.
struct Uniq;

impl Aggregate<Union, i64> for Uniq {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Union> {
        Ok(Union::default())
    }
    fn step(&self, ctx: &mut Context<'_>, acc: &mut Union) -> rusqlite::Result<()> {
        acc.add_encoded(ctx.get_raw(0).as_blob().unwrap_or(&[]));
        Ok(())
    }
    fn finalize(&self, _: &mut Context<'_>, acc: Option<Union>) -> rusqlite::Result<i64> {
        Ok(acc.map_or(0, |u| u.count() as i64))
    }
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_aggregate_function("pg_uniq", 1, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, Uniq)
}

/// The SQL expression for a dimension over `f` (the facet) and `t` (the
/// row's start, ms): fixed text, nothing from the user.
fn dim_sql(d: Dim) -> &'static str {
    match d {
        Dim::Route => "f.route",
        Dim::Repository => "f.repository",
        Dim::Tag => "f.tag",
        Dim::Client => "f.client",
        Dim::ClientVersion => "f.client_version",
        Dim::Os => "f.os",
        Dim::Arch => "f.arch",
        Dim::Country => "f.country",
        Dim::Asn => "f.asn",
        Dim::AsOrg => "f.as_org",
        Dim::Cloud => "f.cloud",
        Dim::Weekday => WEEKDAY_SQL,
        Dim::Hour => "CAST((t / 3600000) % 24 AS TEXT)",
        Dim::Digest => "f.digest",
        Dim::Class => "f.class",
        Dim::Poller => "f.poller",
    }
}

/// 1970-01-01 was a Thursday: Monday is 0 at (days + 3) % 7.
const WEEKDAY_SQL: &str = "CASE (t / 86400000 + 3) % 7 WHEN 0 THEN 'mon' WHEN 1 THEN 'tue' WHEN 2 THEN 'wed' \
     WHEN 3 THEN 'thu' WHEN 4 THEN 'fri' WHEN 5 THEN 'sat' ELSE 'sun' END";

fn period_sql(g: Granularity) -> Option<&'static str> {
    Some(match g {
        Granularity::Hour => "strftime('%Y-%m-%dT%H:00Z', t / 1000, 'unixepoch')",
        Granularity::Day => "strftime('%Y-%m-%d', t / 1000, 'unixepoch')",
        // The Monday the week begins on.
        Granularity::Week => "date(t / 1000, 'unixepoch', '-6 days', 'weekday 1')",
        Granularity::Month => "strftime('%Y-%m', t / 1000, 'unixepoch')",
        Granularity::Total => return None,
    })
}

/// The rows a query reads (`r`: day, start `t`, facet, counters,
/// sketches), the filter over them and the facet `f`, and their arguments.
struct Source {
    rows_sql: &'static str,
    filter: String,
    args: Vec<Value>,
    weekday: Option<i64>,
}

fn source(q: &Query) -> Result<Source, AnalyticsError> {
    let weekday = q.weekday.as_deref().map(weekday_number).transpose()?;
    // Hours whose start is in the range; whole days among them.
    let (h0, h1) = (ceil_div(q.since_ms, HOUR_MS), ceil_div(q.until_ms, HOUR_MS));
    let hourly = q.granularity == Granularity::Hour || q.by.contains(&Dim::Hour);
    let (d0, d1) = if hourly { (0, 0) } else { (ceil_div(q.since_ms, DAY_MS), q.until_ms.div_euclid(DAY_MS).max(0)) };
    let (d0, d1) = if d0 < d1 { (d0, d1) } else { (0, 0) };
    let mut args: Vec<Value> = [h0, h1, d0, d1].into_iter().map(Value::Integer).collect();
    let rows_sql = "WITH r AS (
        SELECT period / 24 AS day, period * 3600000 AS t, facet, pulls, checks, downloads, requests, origins, ips FROM agg
         WHERE span = 0 AND period >= ?1 AND period < ?2 AND (period < ?3 * 24 OR period >= ?4 * 24)
        UNION ALL
        SELECT period, period * 86400000, facet, pulls, checks, downloads, requests, origins, ips FROM agg
         WHERE span = 1 AND period >= ?3 AND period < ?4)";
    let mut filter = String::from("1");
    let filters = [("f.route", &q.route), ("f.repository", &q.repository), ("f.client", &q.client)];
    narrow(&mut filter, &mut args, &filters, weekday.map(|w| ("t / 86400000", w)));
    for (dim, value) in &q.filters {
        args.push(Value::Text(value.clone()));
        filter.push_str(&format!(" AND {} = ?{}", dim_sql(*dim), args.len()));
    }
    Ok(Source { rows_sql, filter, args, weekday })
}

/// Rows by each of `dims` alone, over the whole range (as `run` with
/// granularity total, `by` one dimension and `top` would give them), from
/// one pass over the rows instead of one query each.
pub fn breakdowns(conn: &Connection, q: &Query, dims: &[Dim], top: usize) -> Result<Vec<Vec<Row>>, AnalyticsError> {
    let mut q = q.clone();
    q.granularity = Granularity::Total;
    q.by = dims.to_vec();
    let Source { rows_sql, filter, args, .. } = source(&q)?;
    let columns: Vec<&str> = dims.iter().map(|d| dim_sql(*d)).collect();
    let sql = format!(
        "{rows_sql} SELECT day, {}, requests, pulls, checks, downloads, origins, ips FROM r JOIN facets f ON f.id = r.facet WHERE {filter}",
        columns.join(", ")
    );
    #[derive(Default)]
    struct Acc {
        c: [u64; 4],
        days: std::collections::HashMap<i64, (Union, Union)>,
    }
    let mut by: Vec<std::collections::HashMap<String, Acc>> = dims.iter().map(|_| Default::default()).collect();
    let mut stmt = conn.prepare(&sql)?;
    let mut it = stmt.query(params_from_iter(&args))?;
    let n = dims.len();
    while let Some(r) = it.next()? {
        let day: i64 = r.get(0)?;
        let c: [u64; 4] = [r.get::<_, i64>(n + 1)?, r.get(n + 2)?, r.get(n + 3)?, r.get(n + 4)?].map(|v| v.max(0) as u64);
        let origins = r.get_ref(n + 5)?.as_blob().unwrap_or(&[]);
        let ips = r.get_ref(n + 6)?.as_blob().unwrap_or(&[]);
        for (i, map) in by.iter_mut().enumerate() {
            let value: String = r.get(i + 1)?;
            let acc = map.entry(value).or_default();
            for (a, b) in acc.c.iter_mut().zip(c) {
                *a += b;
            }
            let (o, p) = acc.days.entry(day).or_default();
            o.add_encoded(origins);
            p.add_encoded(ips);
        }
    }
    Ok(dims
        .iter()
        .zip(by)
        .map(|(dim, map)| {
            let mut rows: Vec<Row> = map
                .into_iter()
                .map(|(value, acc)| Row {
                    dims: crate::query::indexmap_like::Ordered(vec![(dim.name().to_string(), value)]),
                    counters: Counters {
                        requests: acc.c[0],
                        pulls: acc.c[1],
                        version_checks: acc.c[2],
                        downloads: acc.c[3],
                        unique_origins: acc.days.values().map(|(o, _)| o.count()).sum(),
                        unique_ips: acc.days.values().map(|(_, p)| p.count()).sum(),
                    },
                })
                .collect();
            // As `run` orders them: most used first, then by value.
            rows.sort_by(|a, b| b.counters.usage().cmp(&a.counters.usage()).then_with(|| a.dims.0[0].1.cmp(&b.dims.0[0].1)));
            rows.truncate(top);
            rows
        })
        .collect())
}

pub fn run(conn: &Connection, q: &Query) -> Result<Report, AnalyticsError> {
    let Source { rows_sql, filter, args, weekday } = source(q)?;
    let counters = |r: &rusqlite::Row, at: usize| -> rusqlite::Result<Counters> {
        let n = |i: usize| r.get::<_, Option<i64>>(at + i).map(|v| v.unwrap_or(0).max(0) as u64);
        Ok(Counters { requests: n(0)?, pulls: n(1)?, version_checks: n(2)?, downloads: n(3)?, unique_origins: n(4)?, unique_ips: n(5)? })
    };
    // Per day and keys, then over the days.
    let grouped = |keys: &[&str]| -> String {
        let inner_keys: String = keys.iter().enumerate().map(|(i, k)| format!(", {k} AS k{i}")).collect();
        let by: String = (0..keys.len()).map(|i| format!(", k{i}")).collect();
        format!(
            "{rows_sql} SELECT {outer} SUM(q), SUM(p), SUM(c), SUM(d), SUM(uo), SUM(ui) FROM (
               SELECT day{inner_keys}, SUM(requests) q, SUM(pulls) p, SUM(checks) c, SUM(downloads) d,
                      pg_uniq(origins) uo, pg_uniq(ips) ui
               FROM r JOIN facets f ON f.id = r.facet WHERE {filter} GROUP BY day{by})",
            outer = (0..keys.len()).map(|i| format!("k{i}, ")).collect::<String>(),
        )
    };

    let mut totals = conn.query_row(&grouped(&[]), params_from_iter(&args), |r| counters(r, 0))?;
    // Every request, pings and 404s included, when nothing but the route narrows it.
    if q.repository.is_none() && q.client.is_none() && q.weekday.is_none() && q.filters.is_empty() {
        let mut a = vec![Value::Integer(ceil_div(q.since_ms, HOUR_MS)), Value::Integer(ceil_div(q.until_ms, HOUR_MS))];
        let mut sql = String::from("SELECT COALESCE(SUM(n), 0) FROM hourly_requests WHERE hour >= ?1 AND hour < ?2");
        if let Some(r) = &q.route {
            a.push(Value::Text(r.clone()));
            sql.push_str(" AND route = ?3");
        }
        totals.requests = conn.query_row(&sql, params_from_iter(&a), |r| r.get::<_, i64>(0))?.max(0) as u64;
    }

    let mut keys: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = period_sql(q.granularity) {
        keys.push(("period", p));
    }
    keys.extend(q.by.iter().map(|d| (d.name(), dim_sql(*d))));
    let mut rows = Vec::new();
    if !keys.is_empty() {
        let sql_keys: Vec<&str> = keys.iter().map(|(_, sql)| *sql).collect();
        let group_by = (0..keys.len()).map(|i| format!("k{i}")).collect::<Vec<_>>().join(", ");
        // Most used first ([`Counters::usage`]).
        let order = if q.top.is_some() || q.granularity == Granularity::Total {
            format!("MAX(SUM(p), SUM(d)) DESC, {group_by}")
        } else {
            group_by.clone()
        };
        let limit = q.top.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!("{} GROUP BY {group_by} ORDER BY {order}{limit}", grouped(&sql_keys));
        let mut stmt = conn.prepare(&sql)?;
        let mut it = stmt.query(params_from_iter(&args))?;
        while let Some(r) = it.next()? {
            let mut dims = Vec::new();
            for (i, (name, _)) in keys.iter().enumerate() {
                dims.push((name.to_string(), r.get::<_, String>(i)?));
            }
            rows.push(Row { dims: crate::query::indexmap_like::Ordered(dims), counters: counters(r, keys.len())? });
        }
    }
    let concentration = concentration(conn, q, weekday)?;
    Ok(Report { totals, rows, concentration })
}

/// Add ` AND column = ?N` for each value given, and the weekday of a day
/// number expression (Monday 0), with their arguments.
fn narrow(sql: &mut String, args: &mut Vec<Value>, equal: &[(&str, &Option<String>)], weekday: Option<(&str, i64)>) {
    for (column, value) in equal {
        if let Some(v) = value {
            args.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    if let Some((day, w)) = weekday {
        args.push(Value::Integer(w));
        sql.push_str(&format!(" AND ({day} + 3) % 7 = ?{}", args.len()));
    }
}

/// From the days' pulls-per-origin counts: the days the range touches
/// (whole days: an origin is one day's).
fn concentration(conn: &Connection, q: &Query, weekday: Option<i64>) -> Result<Concentration, AnalyticsError> {
    let mut args = vec![Value::Integer(q.since_ms.div_euclid(DAY_MS)), Value::Integer(ceil_div(q.until_ms, DAY_MS))];
    // Repository '': each origin's pulls over all repositories.
    args.push(Value::Text(q.repository.clone().unwrap_or_default()));
    let mut sql = String::from("SELECT pulls, SUM(origins) FROM pull_counts WHERE day >= ?1 AND day < ?2 AND repository = ?3");
    narrow(&mut sql, &mut args, &[("route", &q.route), ("client", &q.client)], weekday.map(|w| ("day", w)));
    sql.push_str(" GROUP BY pulls ORDER BY pulls DESC");
    let counts: Vec<(u64, u64)> = conn
        .prepare(&sql)?
        .query_map(params_from_iter(&args), |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<Result<_, _>>()?;
    Ok(Concentration::from_counts(&counts))
}
