//! The embedded store: SQLite (bundled), one file under the state directory.
//!
//! - `seen`: the id (16 bytes) of every request ingested, the dedupe key end to end;
//! - `uas`: each user agent once;
//! - `hourly_requests`: requests by hour and route, all of them (pings,
//!   tokens, 404s included);
//! - `requests`: the counted ones (manifest, blob, file), with what their
//!   actions need; an origin-repository group is sessionised again from all
//!   of its requests whenever one arrives, so arrival order and batch
//!   boundaries never change the result (origins are per day, so a group
//!   spans one day at most);
//! - `actions`: pulls, version checks and file downloads with their
//!   dimensions, which reports group.
//!
//! Schema versions go in `PRAGMA user_version`; [`MIGRATIONS`] brings an
//! older file up to date when it is opened.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::query::{self, Query, Report};
use crate::request::{classify, Kind, Reference};
use crate::session::{sessionise, Req};
use crate::store::{Ingested, Settings, Store};

/// Each migration takes the schema from version N to N+1.
const MIGRATIONS: &[&str] = &[
    // 1: requests, actions, cursors.
    "CREATE TABLE seen (id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE hourly_requests (hour INTEGER NOT NULL, route TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (hour, route)) WITHOUT ROWID;
     CREATE TABLE requests (
        id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, origin TEXT, ip_origin TEXT, repository TEXT NOT NULL,
        kind TEXT NOT NULL, reference TEXT, route TEXT NOT NULL, ua TEXT NOT NULL,
        country TEXT, asn INTEGER, as_org TEXT, cloud TEXT) WITHOUT ROWID;
     CREATE INDEX requests_group ON requests (origin, repository);
     CREATE TABLE actions (
        origin TEXT NOT NULL, repository TEXT NOT NULL, first_ts_ms INTEGER NOT NULL, kind TEXT NOT NULL,
        download INTEGER NOT NULL, tag TEXT, requests INTEGER NOT NULL, ip_origin TEXT, route TEXT NOT NULL,
        client TEXT NOT NULL, client_version TEXT NOT NULL, os TEXT NOT NULL, arch TEXT NOT NULL,
        country TEXT, asn INTEGER, as_org TEXT, cloud TEXT);
     CREATE INDEX actions_group ON actions (origin, repository);
     CREATE INDEX actions_time ON actions (first_ts_ms);
     CREATE TABLE cursors (source TEXT PRIMARY KEY, position TEXT NOT NULL) WITHOUT ROWID;",
    // 2: each action's manifest digest, its origin's class, the poller flag
    // (actions are computed again from the requests after the upgrade).
    "ALTER TABLE actions ADD COLUMN digest TEXT;
     ALTER TABLE actions ADD COLUMN class TEXT NOT NULL DEFAULT 'unknown';
     ALTER TABLE actions ADD COLUMN poller INTEGER NOT NULL DEFAULT 0;",
    // 3: smaller rows, fewer random inserts: ids as 16 bytes, user agents
    // once each, no second index of ids on requests (`seen` dedupes).
    "CREATE TABLE seen3 (id BLOB PRIMARY KEY) WITHOUT ROWID;
     INSERT INTO seen3 SELECT unhex(id) FROM seen;
     DROP TABLE seen;
     ALTER TABLE seen3 RENAME TO seen;
     CREATE TABLE uas (id INTEGER PRIMARY KEY, ua TEXT NOT NULL UNIQUE);
     INSERT INTO uas (ua) SELECT DISTINCT ua FROM requests;
     CREATE TABLE requests3 (
        ts_ms INTEGER NOT NULL, id TEXT NOT NULL, origin TEXT, ip_origin TEXT, repository TEXT NOT NULL,
        kind TEXT NOT NULL, reference TEXT, route TEXT NOT NULL, ua INTEGER NOT NULL,
        country TEXT, asn INTEGER, as_org TEXT, cloud TEXT);
     INSERT INTO requests3 SELECT r.ts_ms, r.id, r.origin, r.ip_origin, r.repository, r.kind, r.reference, r.route, u.id,
        r.country, r.asn, r.as_org, r.cloud FROM requests r JOIN uas u ON u.ua = r.ua;
     DROP TABLE requests;
     ALTER TABLE requests3 RENAME TO requests;
     CREATE INDEX requests_group ON requests (origin, repository);",
];

pub struct Sqlite {
    conn: Connection,
    settings: Settings,
    /// User agents already in `uas`, by text.
    uas: std::collections::HashMap<String, i64>,
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
        // with the store): with the default 2 MB, random inserts into the id
        // and group indexes spent most of an import in pread/pwrite of pages
        // (tests/bench/analytics.sh). Checkpoints less often.
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
        let mut store = Sqlite { conn, settings, uas: std::collections::HashMap::new() };
        store.migrate(path)?;
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
        let window_ms = self.settings.window_ms;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > known {
            return Err(AnalyticsError::TooNew { path: path.display().to_string(), found: version, known });
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {known}"))?;
        // A store with data from an older version: its actions again, with
        // what the new version records.
        if version > 0 && version < known {
            let groups: Vec<(String, String)> = tx
                .prepare("SELECT DISTINCT origin, repository FROM requests WHERE origin IS NOT NULL")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (origin, repository) in &groups {
                Sqlite::recompute(&tx, origin, repository, window_ms)?;
            }
        }
        tx.commit()?;
        if version < known {
            tracing::info!(path = %path.display(), from = version, to = known, "analytics store schema upgraded");
        }
        Ok(())
    }

    /// Sessionise the group again from all of its requests.
    fn recompute(tx: &rusqlite::Transaction, origin: &str, repository: &str, window_ms: i64) -> Result<(), AnalyticsError> {
        struct Row {
            ip_origin: Option<String>,
            route: String,
            ua: String,
            country: Option<String>,
            asn: Option<u32>,
            as_org: Option<String>,
            cloud: Option<String>,
        }
        let mut stmt = tx.prepare_cached(
            "SELECT r.id, r.ts_ms, r.kind, r.reference, r.ip_origin, r.route, u.ua, r.country, r.asn, r.as_org, r.cloud
             FROM requests r JOIN uas u ON u.id = r.ua WHERE r.origin = ?1 AND r.repository = ?2",
        )?;
        let mut reqs = Vec::new();
        let mut rows = std::collections::HashMap::new();
        let mut q = stmt.query(params![origin, repository])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            let kind: String = r.get(2)?;
            let reference: Option<String> = r.get(3)?;
            let reference = || match reference.clone() {
                Some(d) if d.contains(':') => Reference::Digest(d),
                Some(t) => Reference::Tag(t),
                None => Reference::Tag(String::new()),
            };
            let kind = match kind.as_str() {
                "head" => Kind::Manifest { head: true, reference: reference() },
                "get" => Kind::Manifest { head: false, reference: reference() },
                "blob" => Kind::Blob,
                _ => Kind::File,
            };
            rows.insert(
                id.clone(),
                Row {
                    ip_origin: r.get(4)?,
                    route: r.get(5)?,
                    ua: r.get(6)?,
                    country: r.get(7)?,
                    asn: r.get(8)?,
                    as_org: r.get(9)?,
                    cloud: r.get(10)?,
                },
            );
            reqs.push(Req { ts_ms: r.get(1)?, id, kind });
        }
        let actions = sessionise(&mut reqs, window_ms);
        let checks: Vec<i64> =
            actions.iter().filter(|a| a.kind == crate::session::ActionKind::VersionCheck).map(|a| a.first_ts_ms).collect();
        let poller = crate::class::polls(&checks);
        tx.execute("DELETE FROM actions WHERE origin = ?1 AND repository = ?2", params![origin, repository])?;
        let mut ins = tx.prepare_cached(
            "INSERT INTO actions (origin, repository, first_ts_ms, kind, download, tag, requests, ip_origin, route,
                                  client, client_version, os, arch, country, asn, as_org, cloud, digest, class, poller)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        for a in actions {
            let first = &rows[&reqs[a.first].id];
            let client = crate::ua::parse(&first.ua);
            let class = crate::class::class(&client, first.cloud.as_deref());
            ins.execute(params![
                origin,
                repository,
                a.first_ts_ms,
                a.kind.as_str(),
                a.download,
                a.tag,
                a.requests,
                first.ip_origin,
                first.route,
                client.family,
                client.version,
                client.os,
                client.arch,
                first.country,
                first.asn,
                first.as_org,
                first.cloud,
                a.digest,
                class,
                poller
            ])?;
        }
        Ok(())
    }
}

/// A request id (32 hex digits, checked when parsed) as its 16 bytes.
fn id_bytes(id: &str) -> Vec<u8> {
    (0..id.len() / 2).filter_map(|i| u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

impl Store for Sqlite {
    fn ingest(&mut self, batch: &[Shipped], source: &str, position: &str) -> Result<Ingested, AnalyticsError> {
        let window_ms = self.settings.window_ms;
        let tx = self.conn.transaction()?;
        let mut done = Ingested { events: batch.len() as u64, ..Ingested::default() };
        let mut dirty: BTreeSet<(String, String)> = BTreeSet::new();
        let mut hours: std::collections::HashMap<(i64, &str), i64> = std::collections::HashMap::new();
        {
            let mut seen = tx.prepare_cached("INSERT OR IGNORE INTO seen (id) VALUES (?1)")?;
            let mut new_ua = tx.prepare_cached("INSERT INTO uas (ua) VALUES (?1) ON CONFLICT (ua) DO UPDATE SET ua = ua RETURNING id")?;
            let mut req = tx.prepare_cached(
                "INSERT INTO requests (id, ts_ms, origin, ip_origin, repository, kind, reference, route, ua, country, asn, as_org, cloud)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for e in batch {
                if seen.execute(params![id_bytes(&e.id)])? == 0 {
                    continue;
                }
                done.new += 1;
                *hours.entry((e.ts_ms.div_euclid(3_600_000), e.route.as_str())).or_default() += 1;
                let Some(c) = classify(&e.method, &e.uri, e.status, &e.route) else { continue };
                let (kind, reference) = match &c.kind {
                    Kind::Manifest { head, reference } => (
                        if *head { "head" } else { "get" },
                        Some(match reference {
                            Reference::Tag(t) | Reference::Digest(t) => t.clone(),
                        }),
                    ),
                    Kind::Blob => ("blob", None),
                    Kind::File => ("file", None),
                };
                let ua = match self.uas.get(&e.ua) {
                    Some(id) => *id,
                    None => {
                        let id: i64 = new_ua.query_row(params![e.ua], |r| r.get(0))?;
                        self.uas.insert(e.ua.clone(), id);
                        id
                    }
                };
                req.execute(params![
                    e.id,
                    e.ts_ms,
                    e.origin,
                    e.ip_origin,
                    c.repository,
                    kind,
                    reference,
                    e.route,
                    ua,
                    e.country,
                    e.asn,
                    e.as_org,
                    e.cloud
                ])?;
                // Requests with DNT/GPC carry no origin: requests only (docs/analytics.md).
                if let Some(o) = &e.origin {
                    dirty.insert((o.clone(), c.repository));
                }
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
        for (origin, repository) in &dirty {
            Sqlite::recompute(&tx, origin, repository, window_ms)?;
        }
        done.groups = dirty.len() as u64;
        tx.execute(
            "INSERT INTO cursors (source, position) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET position = ?2",
            params![source, position],
        )?;
        tx.commit()?;
        Ok(done)
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, AnalyticsError> {
        Ok(self.conn.query_row("SELECT position FROM cursors WHERE source = ?1", params![source], |r| r.get(0)).optional()?)
    }

    fn report(&self, q: &Query) -> Result<Report, AnalyticsError> {
        query::run(&self.conn, q)
    }
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
            origin: (!dnt).then(|| origin.to_string()),
            ip_origin: (!dnt).then(|| format!("ip-{origin}")),
            country: Some("NL".into()),
            asn: None,
            as_org: None,
            cloud: None,
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
        Query {
            since_ms: 0,
            until_ms: i64::MAX / 2,
            granularity: Granularity::Total,
            by,
            route: None,
            repository: None,
            client: None,
            weekday: None,
            top: None,
        }
    }

    #[test]
    fn counts_by_the_rules_once_whatever_the_batches() {
        let mut s = scratch("sqlite-counts");
        let events = traffic();
        s.ingest(&events, "t", "1").unwrap();
        let r = s.report(&query(vec![Dim::Client])).unwrap();
        let t = &r.totals;
        assert_eq!((t.requests, t.pulls, t.version_checks, t.downloads, t.unique_origins, t.unique_ips), (12, 3, 1, 2, 3, 3), "{r:?}");
        let by: Vec<(String, u64, u64)> =
            r.rows.iter().map(|row| (row.dims.0[0].1.clone(), row.counters.pulls, row.counters.version_checks)).collect();
        assert_eq!(by, [("podman".to_string(), 2, 0), ("docker".to_string(), 1, 1)]);

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
        let s = Sqlite::open(&path, Settings::default()).unwrap();
        let (digest, class, n): (Option<String>, String, i64) = s
            .conn
            .query_row("SELECT digest, class, (SELECT COUNT(*) FROM actions) FROM actions", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        assert_eq!((digest.as_deref(), class.as_str(), n), (Some("sha256:beef"), "server", 1));
        let seen: Vec<u8> = s.conn.query_row("SELECT id FROM seen", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, (0u8..16).collect::<Vec<_>>(), "ids are kept as their 16 bytes");
        let r = s.report(&query(vec![Dim::Class])).unwrap();
        assert_eq!((r.totals.pulls, r.totals.downloads, r.rows[0].dims.0[0].1.as_str()), (1, 1, "server"));
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
