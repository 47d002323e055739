//! The embedded store: SQLite (bundled), one file under the state directory.
//!
//! - `seen`: the id (16 bytes) of every request ingested, by hour: the
//!   dedupe key end to end (keyed by hour, so a time-ordered stream writes
//!   near the end of the index instead of all over it);
//! - `hourly_requests`: requests by hour and route, all of them (pings,
//!   tokens, 404s included);
//! - `groups`: per UTC day, origin and repository, one record of its counted
//!   requests ([`crate::group`]); a group is sessionised again from all of
//!   them whenever one arrives, so arrival order and batch boundaries never
//!   change the result. After the raw window (`Settings::raw_days`) the
//!   requests are dropped and the record sealed;
//! - `actions`: pulls, version checks and file downloads by hour, each
//!   pointing at its `facet` (the dimensions reports group by, interned);
//! - `agg`: per hour (span 0) and per day (span 1) and facet, the counters
//!   and the unique sketches ([`crate::sketch`]) of origins and IP origins.
//!   Hours whose actions changed are listed in `dirty` (in the batch's
//!   transaction) and rebuilt from their actions by [`Store::settle`];
//!   their days are merged from the hours;
//! - `pull_counts`: per day, route, repository and client, how many groups
//!   made N pulls: the concentration figure, kept exact by delta.
//!
//! Schema versions go in `PRAGMA user_version`; [`schema::MIGRATIONS`]
//! brings an older file up to date when it is opened.

mod aggregate;
mod report;
mod schema;

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::group::{self, Group, Header, Stored, DAY_MS, HOUR_MS};
use crate::query::{Query, Report};
use crate::request::{classify, Kind, Reference};
use crate::session::ActionKind;
use crate::store::{Ingested, Settings, Store};
use crate::ua::Client;

pub use schema::MIGRATIONS;

pub struct Sqlite {
    conn: Connection,
    settings: Settings,
    caches: Caches,
    /// A store upgraded from version 3 keeps its ids (without their time) here.
    legacy_seen: bool,
}

/// The dimensions of an action, as `facets` keeps them ('' for none), in
/// the column order of `facets`.
type Facet<'a> = [&'a str; 14];

#[allow(clippy::too_many_arguments)]
fn facet<'a>(
    route: &'a str,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    client: &'a Client,
    h: &'a Header,
    asn: &'a str,
    class: &'a str,
    poller: &'a str,
) -> Facet<'a> {
    [
        route,
        repository,
        tag.unwrap_or_default(),
        digest.unwrap_or_default(),
        &client.family,
        &client.version,
        &client.os,
        &client.arch,
        &h.country,
        asn,
        &h.as_org,
        &h.cloud,
        class,
        poller,
    ]
}

/// The class of a group's or a DNT request's client (`crate::class`).
fn class_of(client: &Client, h: &Header) -> &'static str {
    crate::class::class(client, Some(h.cloud.as_str()).filter(|c| !c.is_empty()))
}

/// The client a user agent (by its row in `uas`) names.
fn client_of(tx: &Transaction, cache: &mut HashMap<i64, Client>, ua: i64) -> rusqlite::Result<Client> {
    if let Some(c) = cache.get(&ua) {
        return Ok(c.clone());
    }
    let text: String =
        tx.prepare_cached("SELECT ua FROM uas WHERE id = ?1")?.query_row(params![ua], |r| r.get(0)).optional()?.unwrap_or_default();
    let c = crate::ua::parse(&text);
    cache.insert(ua, c.clone());
    Ok(c)
}

/// One new counted request on its way into its group.
struct Incoming {
    day: i64,
    origin: u64,
    repository: String,
    header: Header,
    req: Stored,
}

impl Sqlite {
    /// Open (creating, or upgrading an older schema of) the store at `path`.
    pub fn open(path: &Path, settings: Settings) -> Result<Sqlite, AnalyticsError> {
        let err = |source| AnalyticsError::Store { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(err)?;
        // A reader (report, the dashboard) waits for a writer's batch rather than failing.
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(err)?;
        // WAL: readers (reports, the dashboard) never block the ingest. A
        // 64 MiB page cache, a fixed bound (no mmap: its pages would grow RSS
        // with the store). Checkpoints less often.
        // Switching a new file to WAL takes an exclusive lock that SQLite's
        // busy timeout does not wait for: another process opening it at the
        // same moment is answered SQLITE_BUSY, so try again for a while.
        let mut tries = 0;
        while let Err(e) = conn.execute_batch("PRAGMA journal_mode = WAL") {
            tries += 1;
            if tries > 100 || e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy) {
                return Err(err(e));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 8192;",
        )
        .map_err(err)?;
        conn.set_prepared_statement_cache_capacity(64);
        report::register(&conn).map_err(err)?;
        let mut store = Sqlite { conn, settings, caches: Caches::default(), legacy_seen: false };
        store.migrate(path)?;
        store.legacy_seen = store
            .conn
            .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seen_v3'", [], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(store)
    }

    /// Bring the schema up to date in one write transaction that reads the
    /// version under its lock: another process opening the store meanwhile
    /// (a report while the first import creates it) waits, then finds it
    /// done, instead of migrating the same steps again.
    fn migrate(&mut self, path: &Path) -> Result<(), AnalyticsError> {
        let known = MIGRATIONS.len() as i64;
        let peek: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if peek == known {
            return Ok(());
        }
        let settings = self.settings;
        let tx = write_tx(&mut self.conn)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(AnalyticsError::TooNew { path: path.display().to_string(), found: version, known });
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
        let mut caches = Caches::default();
        if version < 4 {
            upgrade_from_3(&tx, &mut caches, settings)?;
        }
        aggregate::settle(&tx, settings, pullgate_base::clock::now_ms() as i64)?;
        tx.commit()?;
        if version < known {
            tracing::info!(path = %path.display(), from = version, to = known, "analytics store schema upgraded");
        }
        Ok(())
    }
}

/// A transaction that writes takes the write lock when it begins. A
/// deferred one that reads first and writes later cannot wait for the lock
/// in WAL mode: if another process committed meanwhile, its snapshot is
/// stale and SQLite answers SQLITE_BUSY at once, busy timeout or not (a
/// report rebuilding hours while the ingester commits failed that way).
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

impl Sqlite {
    /// An ingest that stopped before settling (a crash, an import in
    /// progress) left hours to rebuild: do it before answering. (Only
    /// ingesting runs seal: an import in progress still needs its days' requests.)
    fn rebuild_pending(&mut self) -> Result<(), AnalyticsError> {
        let pending: i64 = self.conn.query_row("SELECT COUNT(*) FROM dirty", [], |r| r.get(0))?;
        if pending > 0 {
            // The ingester may have rebuilt them meanwhile: rebuild reads
            // `dirty` again under the write lock.
            let tx = write_tx(&mut self.conn)?;
            aggregate::rebuild(&tx)?;
            tx.commit()?;
        }
        Ok(())
    }
}

/// What a store remembers between batches, a field of its own so that a
/// transaction can borrow it beside the connection.
#[derive(Default)]
struct Caches {
    /// User agents already in `uas`, by text.
    uas: HashMap<String, i64>,
    /// Parsed user agents by row id.
    clients: HashMap<i64, Client>,
    /// Facets already in `facets`, by their fields length-prefixed.
    facets: HashMap<Vec<u8>, i64>,
}

/// Move version 3's counted requests into groups (their actions and
/// aggregates follow), then drop its tables. Ids stay in `seen_v3` (they
/// carry no time) when there are any.
fn upgrade_from_3(tx: &Transaction, caches: &mut Caches, settings: Settings) -> Result<(), AnalyticsError> {
    let mut incoming = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT r.id, r.ts_ms, r.origin, r.ip_origin, r.repository, r.kind, r.reference, r.route, r.ua,
                    r.country, r.asn, r.as_org, r.cloud
             FROM requests_v3 r WHERE r.origin IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let ts_ms: i64 = r.get(1)?;
            let origin: String = r.get(2)?;
            let ip_origin: Option<String> = r.get(3)?;
            let kind: String = r.get(5)?;
            let reference: Option<String> = r.get(6)?;
            let reference = match reference {
                Some(d) if d.contains(':') => Reference::Digest(d),
                Some(t) => Reference::Tag(t),
                None => Reference::Tag(String::new()),
            };
            let kind = match kind.as_str() {
                "head" => Kind::Manifest { head: true, reference },
                "get" => Kind::Manifest { head: false, reference },
                "blob" => Kind::Blob,
                _ => Kind::File { version: None },
            };
            incoming.push(Incoming {
                day: ts_ms.div_euclid(DAY_MS),
                origin: group::origin_u64(&origin),
                repository: r.get(4)?,
                header: Header {
                    ip_origin: group::origin_u64(ip_origin.as_deref().unwrap_or("")),
                    ua: r.get(8)?,
                    country: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                    asn: r.get(10)?,
                    as_org: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                    cloud: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
                },
                req: Stored { ts_ms, id: group::id_bytes(&id), kind, route: r.get(7)? },
            });
        }
    }
    apply_groups(tx, caches, settings, incoming)?;
    tx.execute_batch("DROP TABLE requests_v3; DROP TABLE actions_v3;")?;
    let ids: i64 = tx.query_row("SELECT COUNT(*) FROM seen_v3", [], |r| r.get(0))?;
    if ids == 0 {
        tx.execute_batch("DROP TABLE seen_v3")?;
    }
    Ok(())
}

/// Add new requests to their groups, sessionise each touched group again,
/// replace its actions and its pulls-per-origin count, and list the hours
/// whose aggregates must be rebuilt.
fn apply_groups(tx: &Transaction, caches: &mut Caches, settings: Settings, mut incoming: Vec<Incoming>) -> Result<u64, AnalyticsError> {
    incoming.sort_by(|a, b| (a.day, a.origin, &a.repository).cmp(&(b.day, b.origin, &b.repository)));
    let mut load = tx.prepare_cached("SELECT data FROM groups WHERE day = ?1 AND origin = ?2 AND repository = ?3")?;
    let mut save = tx.prepare_cached("INSERT OR REPLACE INTO groups (day, origin, repository, raw, data) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    let mut drop_actions = tx.prepare_cached("DELETE FROM actions WHERE hour = ?1 AND origin = ?2 AND repository = ?3 AND n >= ?4")?;
    let mut add_action = tx.prepare_cached(
        "INSERT OR REPLACE INTO actions (hour, origin, repository, n, facet, kind, download, requests, ip_origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut dirty = std::collections::BTreeSet::new();
    let mut groups = 0u64;
    let mut it = incoming.into_iter().peekable();
    while let Some(first) = it.next() {
        let (day, origin, repository) = (first.day, first.origin as i64, first.repository);
        let mut g = match load.query_row(params![day, origin, repository], |r| r.get::<_, Vec<u8>>(0)).optional()? {
            Some(b) => Group::decode(&b).unwrap_or_default(),
            None => Group::default(),
        };
        if g.reqs.is_empty() && g.base == 0 {
            g.header = first.header;
        }
        let mut new = vec![first.req];
        while let Some(next) = it.next_if(|n| n.day == day && n.origin as i64 == origin && n.repository == repository) {
            new.push(next.req);
        }
        groups += 1;
        let redo = g.add(new, settings.window_ms);
        // The actions it replaces go; the new ones take their place.
        let from_hour = redo.from_ts.map(|t| t.div_euclid(HOUR_MS));
        for h in g.hours.iter().filter(|h| from_hour.is_none_or(|f| **h >= f)) {
            drop_actions.execute(params![h, origin, repository, g.base + redo.from_n])?;
            dirty.insert(*h);
        }
        let client = client_of(tx, &mut caches.clients, g.header.ua)?;
        let poller = if g.poller { "yes" } else { "no" };
        let class = class_of(&client, &g.header);
        let asn = g.header.asn.map(|n| n.to_string()).unwrap_or_default();
        for (i, a) in redo.actions.iter().enumerate() {
            let route = &g.reqs[a.first].route;
            let fields = facet(route, &repository, a.tag.as_deref(), a.digest.as_deref(), &client, &g.header, &asn, class, poller);
            let facet = intern_facet(tx, &mut caches.facets, fields)?;
            let hour = a.first_ts_ms.div_euclid(HOUR_MS);
            let kind = match a.kind {
                ActionKind::Pull => 0,
                ActionKind::VersionCheck => 1,
                ActionKind::File => 2,
            };
            add_action.execute(params![
                hour,
                origin,
                repository,
                i64::from(g.base + redo.from_n) + i as i64,
                facet,
                kind,
                a.download,
                a.requests,
                g.header.ip_origin as i64
            ])?;
            dirty.insert(hour);
        }
        // Pulls per origin: this group's old count out, its new one in.
        let route = g.counted.as_ref().map(|(r, _)| r.clone()).or_else(|| redo.actions.first().map(|a| g.reqs[a.first].route.clone()));
        let counted = route.map(|r| (r, redo.pulls)).filter(|(_, n)| *n > 0);
        if counted != g.counted {
            let client_family = client.family.as_str();
            if let Some((route, n)) = &g.counted {
                add_pull_count(tx, day, route, &repository, client_family, *n, -1)?;
            }
            if let Some((route, n)) = &counted {
                add_pull_count(tx, day, route, &repository, client_family, *n, 1)?;
            }
            let change = i64::from(counted.as_ref().map_or(0, |c| c.1)) - i64::from(g.counted.as_ref().map_or(0, |c| c.1));
            let route = counted.as_ref().or(g.counted.as_ref()).map(|c| c.0.as_str()).unwrap_or_default();
            origin_pulls(tx, day, origin, route, client_family, change)?;
            g.counted = counted;
        }
        let mut hours = group::hours_of(&redo.actions);
        if redo.from_ts.is_some() {
            hours.extend_from_slice(&g.hours);
            hours.sort_unstable();
            hours.dedup();
        }
        g.hours = hours;
        save.execute(params![day, origin, repository, !g.sealed, g.encode()])?;
    }
    let mut mark = tx.prepare_cached("INSERT OR IGNORE INTO dirty (hour) VALUES (?1)")?;
    for h in dirty {
        mark.execute(params![h])?;
    }
    Ok(groups)
}

fn add_pull_count(tx: &Transaction, day: i64, route: &str, repository: &str, client: &str, pulls: u32, by: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO pull_counts (day, route, repository, client, pulls, origins) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (day, route, repository, client, pulls) DO UPDATE SET origins = origins + ?6",
    )?
    .execute(params![day, route, repository, client, pulls, by])?;
    tx.prepare_cached(
        "DELETE FROM pull_counts WHERE day = ?1 AND route = ?2 AND repository = ?3 AND client = ?4 AND pulls = ?5 AND origins <= 0",
    )?
    .execute(params![day, route, repository, client, pulls])?;
    Ok(())
}

/// The origin's pulls over all repositories of the day moved by `change`:
/// its count under repository '' moves with them.
fn origin_pulls(tx: &Transaction, day: i64, origin: i64, route: &str, client: &str, change: i64) -> rusqlite::Result<()> {
    let old: Option<(String, String, i64)> = tx
        .prepare_cached("SELECT route, client, pulls FROM origin_pulls WHERE day = ?1 AND origin = ?2")?
        .query_row(params![day, origin], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (route, client, before) = old.unwrap_or((route.to_string(), client.to_string(), 0));
    let after = before + change;
    if before > 0 {
        add_pull_count(tx, day, &route, "", &client, before as u32, -1)?;
    }
    if after > 0 {
        add_pull_count(tx, day, &route, "", &client, after as u32, 1)?;
        tx.prepare_cached("INSERT OR REPLACE INTO origin_pulls (day, origin, route, client, pulls) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![day, origin, route, client, after])?;
    } else {
        tx.prepare_cached("DELETE FROM origin_pulls WHERE day = ?1 AND origin = ?2")?.execute(params![day, origin])?;
    }
    Ok(())
}

fn intern_facet(tx: &Transaction, cache: &mut HashMap<Vec<u8>, i64>, facet: Facet) -> rusqlite::Result<i64> {
    let mut key = Vec::with_capacity(facet.iter().map(|f| f.len() + 2).sum());
    for f in facet {
        key.extend_from_slice(&(f.len() as u32).to_le_bytes());
        key.extend_from_slice(f.as_bytes());
    }
    if let Some(id) = cache.get(&key) {
        return Ok(*id);
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO facets (route, repository, tag, digest, client, client_version, os, arch, country, asn, as_org, cloud, class, poller)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT DO UPDATE SET route = route RETURNING id",
        )?
        .query_row(rusqlite::params_from_iter(facet.iter()), |r| r.get(0))?;
    cache.insert(key, id);
    Ok(id)
}

impl Store for Sqlite {
    fn ingest(&mut self, batch: &[Shipped], source: &str, position: &str) -> Result<Ingested, AnalyticsError> {
        let tx = write_tx(&mut self.conn)?;
        let done = ingest_in(&tx, &mut self.caches, self.settings, self.legacy_seen, batch, source, position)
            .and_then(|done| Ok(tx.commit().map(|()| done)?));
        // The caches may now name rows that a rolled-back transaction wrote:
        // forget them all on failure.
        if done.is_err() {
            self.caches = Caches::default();
        }
        done
    }

    fn settle(&mut self) -> Result<(), AnalyticsError> {
        let settings = self.settings;
        let tx = write_tx(&mut self.conn)?;
        aggregate::settle(&tx, settings, pullgate_base::clock::now_ms() as i64)?;
        tx.commit()?;
        Ok(())
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, AnalyticsError> {
        Ok(self.conn.query_row("SELECT position FROM cursors WHERE source = ?1", params![source], |r| r.get(0)).optional()?)
    }

    fn report(&mut self, q: &Query) -> Result<Report, AnalyticsError> {
        self.rebuild_pending()?;
        report::run(&self.conn, q)
    }

    fn breakdowns(&mut self, q: &Query, dims: &[crate::query::Dim], top: usize) -> Result<Vec<Vec<crate::query::Row>>, AnalyticsError> {
        self.rebuild_pending()?;
        report::breakdowns(&self.conn, q, dims, top)
    }
}

fn ingest_in(
    tx: &Transaction,
    caches: &mut Caches,
    settings: Settings,
    legacy_seen: bool,
    batch: &[Shipped],
    source: &str,
    position: &str,
) -> Result<Ingested, AnalyticsError> {
    let mut done = Ingested { events: batch.len() as u64, ..Ingested::default() };
    let mut hours: HashMap<(i64, &str), i64> = HashMap::new();
    // Ids in (hour, id) order: the index is written in order, not at random.
    let mut order: Vec<(i64, [u8; 16], usize)> =
        batch.iter().enumerate().map(|(i, e)| (e.ts_ms.div_euclid(HOUR_MS), group::id_bytes(&e.id), i)).collect();
    order.sort_unstable();
    order.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut incoming = Vec::new();
    // DNT/GPC counts by hour and facet: pulls, checks, downloads, requests.
    let mut dnt: HashMap<(i64, i64), [i64; 4]> = HashMap::new();
    {
        let mut seen = tx.prepare_cached("INSERT OR IGNORE INTO seen (hour, id) VALUES (?1, ?2)")?;
        let mut seen_before = tx.prepare_cached(if legacy_seen { "SELECT 1 FROM seen_v3 WHERE id = ?1" } else { "SELECT 1" })?;
        let mut new_ua = tx.prepare_cached("INSERT INTO uas (ua) VALUES (?1) ON CONFLICT (ua) DO UPDATE SET ua = ua RETURNING id")?;
        for (hour, id, i) in order {
            if seen.execute(params![hour, &id[..]])? == 0 {
                continue;
            }
            if legacy_seen && seen_before.query_row(params![&id[..]], |_| Ok(())).optional()?.is_some() {
                continue;
            }
            let e = &batch[i];
            done.new += 1;
            *hours.entry((hour, e.route.as_str())).or_default() += 1;
            let Some(c) = classify(&e.method, &e.uri, e.status, &e.route, &e.mode) else { continue };
            let ua = match caches.uas.get(&e.ua) {
                Some(id) => *id,
                None => {
                    let id: i64 = new_ua.query_row(params![e.ua], |r| r.get(0))?;
                    caches.uas.insert(e.ua.clone(), id);
                    id
                }
            };
            let header = Header {
                ip_origin: group::origin_u64(e.ip_origin.as_deref().unwrap_or("")),
                ua,
                country: e.country.clone().unwrap_or_default(),
                asn: e.asn,
                as_org: e.as_org.clone().unwrap_or_default(),
                cloud: e.cloud.clone().unwrap_or_default(),
            };
            // Requests with DNT/GPC carry no origin: the shipper grouped them
            // and says what each changed in the counts (docs/analytics.md).
            let Some(origin) = &e.origin else {
                if let Some(d) = e.dnt_counts {
                    let client = client_of(tx, &mut caches.clients, ua)?;
                    let class = class_of(&client, &header);
                    let facet = intern_facet(
                        tx,
                        &mut caches.facets,
                        facet(
                            &e.route,
                            &c.repository,
                            None,
                            None,
                            &client,
                            &header,
                            &e.asn.map(|n| n.to_string()).unwrap_or_default(),
                            class,
                            "no",
                        ),
                    )?;
                    let sum = dnt.entry((d.hour_ms.div_euclid(HOUR_MS), facet)).or_default();
                    for (s, v) in sum.iter_mut().zip([d.pulls, d.version_checks, d.downloads, 1]) {
                        *s += i64::from(v);
                    }
                }
                continue;
            };
            incoming.push(Incoming {
                day: e.ts_ms.div_euclid(DAY_MS),
                origin: group::origin_u64(origin),
                repository: c.repository,
                header,
                req: Stored { ts_ms: e.ts_ms, id, kind: c.kind, route: e.route.clone() },
            });
        }
    }
    {
        let mut hourly = tx.prepare_cached(
            "INSERT INTO hourly_requests (hour, route, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (hour, route) DO UPDATE SET n = n + ?3",
        )?;
        for ((hour, route), n) in &hours {
            hourly.execute(params![hour, route, n])?;
        }
    }
    {
        let mut add = tx.prepare_cached(
            "INSERT INTO dnt_counts (hour, facet, pulls, checks, downloads, requests) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (hour, facet) DO UPDATE SET pulls = pulls + ?3, checks = checks + ?4, downloads = downloads + ?5,
                requests = requests + ?6",
        )?;
        let mut dirty = tx.prepare_cached("INSERT OR IGNORE INTO dirty (hour) VALUES (?1)")?;
        for ((hour, facet), [p, c, d, n]) in &dnt {
            add.execute(params![hour, facet, p, c, d, n])?;
            dirty.execute(params![hour])?;
        }
    }
    done.groups = apply_groups(tx, caches, settings, incoming)?;
    tx.execute(
        "INSERT INTO cursors (source, position) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET position = ?2",
        params![source, position],
    )?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Dim, Granularity};

    fn event(ts_ms: i64, n: u32, origin: &str, method: &str, uri: &str, status: u16, ua: &str) -> Shipped {
        let dnt = origin.is_empty();
        Shipped {
            ts_ms,
            id: format!("{n:032x}"),
            method: method.into(),
            uri: uri.into(),
            status,
            ua: ua.into(),
            dnt,
            route: "acme".into(),
            mode: "redirect".into(),
            origin: (!dnt).then(|| origin.to_string()),
            ip_origin: (!dnt).then(|| format!("ip-{origin}")),
            country: Some("NL".into()),
            asn: None,
            as_org: None,
            cloud: None,
            // A DNT request: what the shipper said it changed (here, a pull).
            dnt_counts: dnt.then_some(pullgate_ship::DntCounts {
                hour_ms: ts_ms - ts_ms % 3_600_000,
                pulls: 1,
                version_checks: 0,
                downloads: 0,
            }),
        }
    }

    /// Two docker pulls, a docker re-pull (HEAD only), a podman pull by two
    /// origins, a 404, a ping and a DNT pull.
    fn traffic() -> Vec<Shipped> {
        let d = "docker/27.3.1 go/go1.22.7 git-commit/x kernel/6.1 os/linux arch/amd64";
        let p = "containers/5.23.1 (github.com/containers/image)";
        let m = "/v2/acme/app/manifests";
        let b = "/v2/acme/app/blobs/sha256:aa";
        let mut n = 0;
        let mut e = |ts: i64, o: &str, method: &str, uri: String, status, ua| {
            n += 1;
            event(1_700_000_000_000 + ts, n, o, method, &uri, status, ua)
        };
        vec![
            e(0, "o1", "GET", "/v2/".into(), 401, d),
            e(1, "o1", "HEAD", format!("{m}/1.0"), 200, d),
            e(2, "o1", "GET", format!("{m}/sha256:idx"), 200, d),
            e(3, "o1", "GET", format!("{m}/sha256:amd"), 200, d),
            e(4, "o1", "GET", b.into(), 307, d),
            e(600_000, "o1", "HEAD", format!("{m}/1.0"), 200, d),
            e(5, "o2", "GET", format!("{m}/1.0"), 200, p),
            e(6, "o2", "GET", format!("{m}/sha256:amd"), 200, p),
            e(7, "o2", "GET", b.into(), 200, p),
            e(8, "o3", "GET", format!("{m}/1.0"), 200, p),
            e(9, "o3", "GET", "/v2/acme/typo/manifests/1.0".into(), 404, p),
            e(10, "", "GET", format!("{m}/1.0"), 200, d),
        ]
    }

    fn scratch(name: &str) -> Sqlite {
        let dir = pullgate_base::fs::scratch_dir(name);
        Sqlite::open(&dir.join("analytics.db"), Settings::default()).unwrap()
    }

    fn query(by: Vec<Dim>) -> Query {
        Query::all(0, i64::MAX / 2, Granularity::Total, by)
    }

    #[test]
    fn counts_by_the_rules_once_whatever_the_batches() {
        let mut s = scratch("sqlite-counts");
        let events = traffic();
        s.ingest(&events, "t", "1").unwrap();
        let r = s.report(&query(vec![Dim::Client])).unwrap();
        let t = &r.totals;
        // The DNT pull counts (from what the shipper marked), never in the uniques.
        assert_eq!((t.requests, t.pulls, t.version_checks, t.downloads, t.unique_origins, t.unique_ips), (12, 4, 1, 2, 3, 3), "{r:?}");
        let by: Vec<(String, u64, u64)> =
            r.rows.iter().map(|row| (row.dims.0[0].1.clone(), row.counters.pulls, row.counters.version_checks)).collect();
        assert_eq!(by, [("docker".to_string(), 2, 1), ("podman".to_string(), 2, 0)]);

        // Shuffled, in batches of three, with every event twice: the same report.
        let mut other = scratch("sqlite-shuffled");
        let mut twice: Vec<Shipped> = events.iter().chain(events.iter()).cloned().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in (1..twice.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            twice.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (i, chunk) in twice.chunks(3).enumerate() {
            other.ingest(chunk, "t", &i.to_string()).unwrap();
        }
        assert_eq!(
            other.report(&query(vec![Dim::Client, Dim::Weekday])).unwrap(),
            s.report(&query(vec![Dim::Client, Dim::Weekday])).unwrap()
        );
        assert_eq!(other.cursor("t").unwrap().as_deref(), Some("7"));
    }

    #[test]
    fn breakdowns_in_one_pass_equal_a_report_per_dimension() {
        let mut s = scratch("sqlite-breakdowns");
        s.ingest(&traffic(), "t", "1").unwrap();
        let dims = [Dim::Repository, Dim::Client, Dim::Tag, Dim::Country, Dim::Class];
        for top in [1, 10] {
            let all = s.breakdowns(&query(vec![]), &dims, top).unwrap();
            for (dim, rows) in dims.iter().zip(all) {
                let mut q = query(vec![*dim]);
                q.top = Some(top);
                assert_eq!(rows, s.report(&q).unwrap().rows, "{dim:?}, top {top}");
            }
        }
    }

    #[test]
    fn packages_rank_by_their_downloads_beside_images_by_their_pulls() {
        let mut s = scratch("sqlite-usage");
        let mut events = traffic();
        // Five origins' pip downloads of one version: five downloads, no pulls.
        let pip = "pip/24.0 {\"installer\":{\"name\":\"pip\"}}";
        for n in 0..5u32 {
            let o = format!("pip{n}");
            events.push(event(
                1_700_000_000_000 + 100 + i64::from(n),
                100 + n,
                &o,
                "GET",
                "/simple/acme-client/acme_client-1.0-py3-none-any.whl",
                307,
                pip,
            ));
        }
        s.ingest(&events, "t", "1").unwrap();
        let mut q = query(vec![Dim::Repository, Dim::Tag]);
        q.top = Some(1);
        let top = s.report(&q).unwrap().rows;
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].dims.0, [("repository".to_string(), "acme-client".to_string()), ("tag".to_string(), "1.0".to_string())]);
        assert_eq!((top[0].counters.pulls, top[0].counters.downloads), (0, 5));
        let all = s.breakdowns(&query(vec![]), &[Dim::Repository], 1).unwrap();
        assert_eq!(all[0][0].dims.0[0].1, "acme-client", "the dashboard's tables rank the same way");
    }

    #[test]
    fn requests_past_the_raw_window_are_dropped_and_what_they_counted_stays() {
        let d = "docker/27.3.1 go/go1.22.7 git-commit/x kernel/6.1 os/linux arch/amd64";
        let head = event(1_700_000_000_000, 1, "o1", "HEAD", "/v2/acme/app/manifests/1.0", 200, d);
        let get = event(1_700_000_000_500, 2, "o1", "GET", "/v2/acme/app/manifests/sha256:aa", 200, d);
        let counts = |s: &mut Sqlite| {
            let t = s.report(&query(vec![])).unwrap().totals;
            (t.pulls, t.version_checks, t.unique_origins)
        };
        // Kept: the GET that comes after a settle joins the HEAD's action.
        let mut kept = Sqlite::open(
            &pullgate_base::fs::scratch_dir("sqlite-keep").join("a.db"),
            Settings { raw_days: 100_000, ..Settings::default() },
        )
        .unwrap();
        kept.ingest(std::slice::from_ref(&head), "t", "1").unwrap();
        kept.settle().unwrap();
        kept.ingest(std::slice::from_ref(&get), "t", "2").unwrap();
        kept.settle().unwrap();
        assert_eq!(counts(&mut kept), (1, 0, 1));
        // Dropped (0 days): the HEAD's group is sealed as a version check; the late GET is a pull of its own.
        let mut none =
            Sqlite::open(&pullgate_base::fs::scratch_dir("sqlite-none").join("a.db"), Settings { raw_days: 0, ..Settings::default() })
                .unwrap();
        none.ingest(&[head], "t", "1").unwrap();
        none.settle().unwrap();
        let raw: i64 = none.conn.query_row("SELECT COUNT(*) FROM groups WHERE raw = 1", [], |r| r.get(0)).unwrap();
        let data: Vec<u8> = none.conn.query_row("SELECT data FROM groups", [], |r| r.get(0)).unwrap();
        let g = Group::decode(&data).unwrap();
        assert_eq!((raw, g.reqs.len(), g.base, g.sealed), (0, 0, 1, true), "sealed: no request kept");
        assert_eq!(counts(&mut none), (0, 1, 1));
        none.ingest(&[get], "t", "2").unwrap();
        none.settle().unwrap();
        assert_eq!(counts(&mut none), (1, 1, 1), "what the sealed requests counted stays");
    }

    #[test]
    fn a_version_1_store_with_data_is_upgraded_and_recounted() {
        let dir = pullgate_base::fs::scratch_dir("sqlite-v1");
        let path = dir.join("analytics.db");
        {
            // A store as version 1 wrote it: its schema, a pull's requests, its action.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            let req = |id: &str, ts: i64, kind: &str, reference: Option<&str>| {
                conn.execute(
                    "INSERT INTO requests (id, ts_ms, origin, ip_origin, repository, kind, reference, route, ua) VALUES (?1, ?2, 'o', 'i', 'acme/app', ?3, ?4, 'acme', 'cri-o/1.30.4 go/go1.22.5 os/linux arch/amd64')",
                    params![id, ts, kind, reference],
                )
                .unwrap();
            };
            conn.execute("INSERT INTO seen (id, ts_ms) VALUES ('000102030405060708090a0b0c0d0e0f', 1000)", []).unwrap();
            req("a", 1_000, "get", Some("1.0"));
            req("b", 1_100, "get", Some("sha256:beef"));
            req("c", 1_200, "blob", None);
            conn.execute(
                "INSERT INTO actions (origin, repository, first_ts_ms, kind, download, tag, requests, route, client, client_version, os, arch) VALUES ('o', 'acme/app', 1000, 'pull', 1, '1.0', 3, 'acme', 'cri-o', '1.30.4', 'linux', 'amd64')",
                [],
            )
            .unwrap();
        }
        let mut s = Sqlite::open(&path, Settings { raw_days: 100_000, ..Settings::default() }).unwrap();
        let seen: Vec<u8> = s.conn.query_row("SELECT id FROM seen_v3", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, (0u8..16).collect::<Vec<_>>(), "ids are kept as their 16 bytes");
        let r = s.report(&query(vec![Dim::Class, Dim::Digest])).unwrap();
        assert_eq!((r.totals.pulls, r.totals.downloads, r.rows.len()), (1, 1, 1));
        assert_eq!(r.rows[0].dims.0, [("class".to_string(), "server".to_string()), ("digest".to_string(), "sha256:beef".to_string())]);
        // An id from before the upgrade is still a duplicate.
        let mut again = event(1_000, 0, "o", "GET", "/v2/acme/app/manifests/2.0", 200, "curl/8");
        again.id = "000102030405060708090a0b0c0d0e0f".into();
        assert_eq!(s.ingest(&[again], "t", "1").unwrap().new, 0);
    }

    #[test]
    fn reports_while_another_process_ingests_wait_for_it_rather_than_fail() {
        let dir = pullgate_base::fs::scratch_dir("sqlite-concurrent");
        let path = dir.join("analytics.db");
        drop(Sqlite::open(&path, Settings::default()).unwrap());
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = Sqlite::open(&path, Settings::default()).unwrap();
                let d = "docker/27.3.1 go/go1.22.7 os/linux arch/amd64";
                for n in 0..300u32 {
                    // A new hour each time, so that each batch leaves hours to rebuild.
                    let e = event(1_700_000_000_000 + i64::from(n) * 3_600_000, n, "o1", "GET", "/v2/acme/app/manifests/1.0", 200, d);
                    s.ingest(&[e], "t", &n.to_string()).unwrap();
                }
                s.settle().unwrap();
            })
        };
        let mut reader = Sqlite::open(&path, Settings::default()).unwrap();
        let mut reports = 0;
        while !writer.is_finished() {
            reader.report(&query(vec![])).expect("a report waits for the ingest's lock");
            reports += 1;
        }
        writer.join().unwrap();
        assert_eq!(reader.report(&query(vec![])).unwrap().totals.pulls, 300, "after {reports} reports meanwhile");
    }

    #[test]
    fn processes_opening_a_new_store_at_once_migrate_it_once() {
        for round in 0..10 {
            let dir = pullgate_base::fs::scratch_dir(&format!("sqlite-race-{round}"));
            let path = dir.join("analytics.db");
            let openers: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || Sqlite::open(&path, Settings::default()).map(|_| ()))
                })
                .collect();
            for o in openers {
                o.join().unwrap().unwrap();
            }
            let v: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
            assert_eq!(v, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn a_store_of_another_version_is_upgraded_or_refused() {
        let dir = pullgate_base::fs::scratch_dir("sqlite-versions");
        let path = dir.join("analytics.db");
        // Version 0: an empty file (as any store before the first migration).
        drop(Connection::open(&path).unwrap());
        let s = Sqlite::open(&path, Settings::default()).unwrap();
        let v: i64 = s.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        drop(s);
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        assert!(matches!(Sqlite::open(&path, Settings::default()), Err(AnalyticsError::TooNew { found: 99, .. })));
    }
}
