//! Settling: the raw window, and the aggregates of the hours that changed.
//!
//! Each dirty hour's `agg` rows (span 0) are rebuilt from its actions;
//! then each day of one of them (span 1) is merged from its hours. A
//! rebuild, not a delta, so that an action that moved (a late request made
//! two actions one) leaves nothing behind, sketches included.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{params, Transaction};

use crate::error::AnalyticsError;
use crate::group::{Group, DAY_MS};
use crate::sketch::Sketch;
use crate::store::Settings;

#[derive(Default)]
struct Row {
    pulls: i64,
    checks: i64,
    downloads: i64,
    requests: i64,
    origins: Sketch,
    ips: Sketch,
}

impl Row {
    fn add(&mut self, o: &Row) {
        self.pulls += o.pulls;
        self.checks += o.checks;
        self.downloads += o.downloads;
        self.requests += o.requests;
        self.origins.merge(&o.origins);
        self.ips.merge(&o.ips);
    }
}

/// Seal what is past the raw window, then rebuild.
pub fn settle(tx: &Transaction, settings: Settings, now_ms: i64) -> Result<(), AnalyticsError> {
    seal(tx, settings, now_ms)?;
    rebuild(tx)
}

/// Rebuild the aggregates of the dirty hours and their days.
pub fn rebuild(tx: &Transaction) -> Result<(), AnalyticsError> {
    let hours: Vec<i64> = tx.prepare("SELECT hour FROM dirty ORDER BY hour")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut days = BTreeSet::new();
    for &h in &hours {
        rebuild_hour(tx, h)?;
        days.insert(h.div_euclid(24));
    }
    for d in days {
        rebuild_day(tx, d)?;
    }
    tx.execute("DELETE FROM dirty", [])?;
    Ok(())
}

/// Drop the requests of groups whose day is past the raw window; what
/// their actions counted stays.
fn seal(tx: &Transaction, settings: Settings, now_ms: i64) -> Result<(), AnalyticsError> {
    let cutoff = now_ms.div_euclid(DAY_MS) + 1 - i64::from(settings.raw_days);
    let days: Vec<i64> = tx
        .prepare("SELECT DISTINCT day FROM groups WHERE raw = 1 AND day < ?1")?
        .query_map(params![cutoff], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut save = tx.prepare_cached("UPDATE groups SET raw = 0, data = ?4 WHERE day = ?1 AND origin = ?2 AND repository = ?3")?;
    // A page of groups at a time: memory stays that of a page (each update
    // takes its group out of the raw ones the query pages through).
    for day in days {
        loop {
            let old: Vec<(i64, String, Vec<u8>)> = tx
                .prepare_cached("SELECT origin, repository, data FROM groups WHERE raw = 1 AND day = ?1 LIMIT 1000")?
                .query_map(params![day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            if old.is_empty() {
                break;
            }
            for (origin, repository, data) in old {
                let Some(mut g) = Group::decode(&data) else {
                    // Unreadable (never written by this version): leave it be, out of the raw ones.
                    tx.prepare_cached("UPDATE groups SET raw = 0 WHERE day = ?1 AND origin = ?2 AND repository = ?3")?
                        .execute(params![day, origin, repository])?;
                    continue;
                };
                g.seal(settings.window_ms);
                save.execute(params![day, origin, repository, g.encode()])?;
            }
        }
    }
    Ok(())
}

fn rebuild_hour(tx: &Transaction, hour: i64) -> Result<(), AnalyticsError> {
    let mut rows: HashMap<i64, Row> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached("SELECT facet, kind, download, requests, origin, ip_origin FROM actions WHERE hour = ?1")?;
        let mut it = stmt.query(params![hour])?;
        while let Some(r) = it.next()? {
            let row = rows.entry(r.get(0)?).or_default();
            let kind: i64 = r.get(1)?;
            row.pulls += i64::from(kind == 0);
            row.checks += i64::from(kind == 1);
            row.downloads += r.get::<_, i64>(2)?;
            row.requests += r.get::<_, i64>(3)?;
            row.origins.insert(r.get::<_, i64>(4)? as u64);
            row.ips.insert(r.get::<_, i64>(5)? as u64);
        }
    }
    // Requests with DNT/GPC: counters only, never in the uniques.
    {
        let mut stmt = tx.prepare_cached("SELECT facet, pulls, checks, downloads, requests FROM dnt_counts WHERE hour = ?1")?;
        let mut it = stmt.query(params![hour])?;
        while let Some(r) = it.next()? {
            let row = rows.entry(r.get(0)?).or_default();
            row.pulls += r.get::<_, i64>(1)?;
            row.checks += r.get::<_, i64>(2)?;
            row.downloads += r.get::<_, i64>(3)?;
            row.requests += r.get::<_, i64>(4)?;
        }
    }
    tx.prepare_cached("DELETE FROM agg WHERE span = 0 AND period = ?1")?.execute(params![hour])?;
    write(tx, 0, hour, &rows)
}

fn rebuild_day(tx: &Transaction, day: i64) -> Result<(), AnalyticsError> {
    let mut rows: HashMap<i64, Row> = HashMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT facet, pulls, checks, downloads, requests, origins, ips FROM agg WHERE span = 0 AND period >= ?1 AND period < ?2",
        )?;
        let mut it = stmt.query(params![day * 24, day * 24 + 24])?;
        while let Some(r) = it.next()? {
            let hour = Row {
                pulls: r.get(1)?,
                checks: r.get(2)?,
                downloads: r.get(3)?,
                requests: r.get(4)?,
                origins: Sketch::decode(&r.get::<_, Vec<u8>>(5)?),
                ips: Sketch::decode(&r.get::<_, Vec<u8>>(6)?),
            };
            rows.entry(r.get(0)?).or_default().add(&hour);
        }
    }
    tx.prepare_cached("DELETE FROM agg WHERE span = 1 AND period = ?1")?.execute(params![day])?;
    write(tx, 1, day, &rows)
}

fn write(tx: &Transaction, span: i64, period: i64, rows: &HashMap<i64, Row>) -> Result<(), AnalyticsError> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO agg (span, period, facet, pulls, checks, downloads, requests, origins, ips) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (facet, r) in rows {
        ins.execute(params![span, period, facet, r.pulls, r.checks, r.downloads, r.requests, r.origins.encode(), r.ips.encode()])?;
    }
    Ok(())
}
