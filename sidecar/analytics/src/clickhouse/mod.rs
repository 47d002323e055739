//! The store for projects that outgrow one machine: ClickHouse, over its
//! HTTP interface ([`http`]), written by any number of ingesters at once.
//!
//! How a batch goes in (`ingest`):
//! 1. every request id into `requests`, DNT/GPC requests into `dnt`, counted
//!    requests into `events`: ReplacingMergeTrees keyed by the id, so a
//!    retry or an overlapping ingester adds nothing;
//! 2. each group the batch touched (origin, repository, UTC day) is read
//!    back whole (`FINAL`), after the insert, and sessionised by the same
//!    rules as the embedded store (`ship::rules` through [`crate::group`]);
//!    its row goes into `groups`, versioned by how many requests it was
//!    computed from. Two ingesters that touch one group each read after
//!    their own insert, so the later read holds every request the earlier
//!    one did: the higher version wins, and equal versions were computed
//!    from the same requests, so they are the same row;
//! 3. the cursor moves.
//!
//! `settle` seals the days touched: it reads the day's *build* (the sum of
//! its group versions and its request and DNT counts, which grows with
//! every change), then rebuilds the day's hourly aggregates (`agg`, with
//! `uniqCombined` states of origins and addresses), DNT counts, request
//! counts and pulls per origin, all stamped with that build, and records
//! it in `seals`. Reports read each day at its highest build. A build read
//! after the last write is followed by a rebuild that sees every write, so
//! once ingesters settle the aggregates are exact whatever the interleaving.
//!
//! Reports ([`report`]) merge the states per day and sum the days: origins
//! are keyed per day, so no origin is in two days.

pub mod http;
mod report;
mod schema;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::AnalyticsError;
use crate::event::Shipped;
use crate::group::{self, Group, Stored, DAY_MS, HOUR_MS};
use crate::query::{Dim, Query, Report, Row};
use crate::request::{classify, Kind, Reference};
use crate::session::ActionKind;
use crate::store::{Ingested, Settings, Store};

use http::{quote, Http};
pub use http::{Account, Address};

pub struct ClickHouse {
    http: Http,
    settings: Settings,
    /// Days whose aggregates the batches since the last settle changed.
    touched: BTreeSet<i64>,
    /// When each day may be sealed again by `tidy`: a while after its
    /// last seal, in proportion to how long that took.
    next_seal: std::collections::HashMap<i64, std::time::Instant>,
    /// Whether the recent days were checked once (a crash between an
    /// ingest and its settle leaves a day to seal).
    recovered: bool,
    /// Groups this ingester computed, with every request they hold: a
    /// group that no other ingester wrote to since is extended here,
    /// without reading its requests back.
    cache: std::collections::HashMap<Key, Cached>,
}

/// A group: (day, repository, origin).
type Key = (i64, String, u64);

struct Cached {
    group: Group,
    actions: Vec<crate::session::Action>,
    pulls: u32,
    ids: std::collections::HashSet<[u8; 16]>,
    /// Its earliest request: where the client's agent and network come from.
    first: EventRow,
}

impl Cached {
    fn new(first: EventRow) -> Cached {
        Cached { group: Group::default(), actions: Vec::new(), pulls: 0, ids: Default::default(), first }
    }

    /// Add the requests it does not hold yet and sessionise what they change.
    fn extend(&mut self, events: Vec<EventRow>, window_ms: i64) {
        let stored: Vec<Stored> = events.iter().filter(|e| self.ids.insert(group::id_bytes(&e.id))).map(EventRow::stored).collect();
        if let Some(earliest) = events.into_iter().min_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id))) {
            if (earliest.ts_ms, &earliest.id) < (self.first.ts_ms, &self.first.id) {
                self.first = earliest;
            }
        }
        let redo = self.group.add(stored, window_ms);
        self.actions.truncate(redo.from_n as usize);
        self.actions.extend(redo.actions);
        self.pulls = redo.pulls;
    }
}

/// Groups an ingester remembers; past it, it forgets them all (they are
/// read back from the store when touched again).
const CACHE_GROUPS: usize = 200_000;

/// Groups read back per query (their keys are in the query's text).
const GROUPS_PER_READ: usize = 5_000;

#[derive(Serialize)]
struct RequestRow<'a> {
    day: i64,
    hour: i64,
    route: &'a str,
    id: &'a str,
}

/// An action's dimensions, in [`schema::FACET_COLUMNS`] order.
#[derive(Serialize, Default, Clone)]
struct Facet {
    route: String,
    repository: String,
    tag: String,
    digest: String,
    #[serde(flatten)]
    who: Who,
}

/// What is known of the client: the same for every request of a group.
#[derive(Serialize, Default, Clone)]
struct Who {
    client: String,
    client_version: String,
    os: String,
    arch: String,
    country: String,
    asn: String,
    as_org: String,
    cloud: String,
    class: String,
    poller: String,
}

impl Who {
    fn of(ua: &str, country: String, asn: String, as_org: String, cloud: String, poller: bool) -> Who {
        let client = crate::ua::parse(ua);
        let class = crate::class::class(&client, Some(cloud.as_str()).filter(|c| !c.is_empty())).to_string();
        Who {
            client: client.family,
            client_version: client.version,
            os: client.os,
            arch: client.arch,
            country,
            asn,
            as_org,
            cloud,
            class,
            poller: if poller { "yes" } else { "no" }.to_string(),
        }
    }
}

#[derive(Serialize)]
struct DntRow<'a> {
    day: i64,
    hour: i64,
    id: &'a str,
    #[serde(flatten)]
    facet: Facet,
    pulls: i8,
    checks: i8,
    downloads: i8,
}

#[derive(Serialize, Deserialize, Clone)]
struct EventRow {
    day: i64,
    repository: String,
    origin: u64,
    id: String,
    ts_ms: i64,
    route: String,
    /// 0 a manifest, 1 a blob, 2 a file.
    kind: u8,
    head: u8,
    /// A manifest's: 1 a tag, 2 a digest; a file's: 1 with a version, 0 without.
    ref_kind: u8,
    reference: String,
    ua: String,
    ip_origin: u64,
    country: String,
    asn: String,
    as_org: String,
    cloud: String,
}

impl EventRow {
    fn stored(&self) -> Stored {
        Stored { ts_ms: self.ts_ms, id: group::id_bytes(&self.id), kind: self.kind(), route: self.route.clone() }
    }

    fn kind(&self) -> Kind {
        match (self.kind, self.ref_kind) {
            (0, 2) => Kind::Manifest { head: self.head == 1, reference: Reference::Digest(self.reference.clone()) },
            (0, _) => Kind::Manifest { head: self.head == 1, reference: Reference::Tag(self.reference.clone()) },
            (1, _) => Kind::Blob,
            (_, 1) => Kind::File { version: Some(self.reference.clone()) },
            _ => Kind::File { version: None },
        }
    }
}

fn kind_columns(kind: &Kind) -> (u8, u8, u8, String) {
    match kind {
        Kind::Manifest { head, reference: Reference::Tag(t) } => (0, u8::from(*head), 1, t.clone()),
        Kind::Manifest { head, reference: Reference::Digest(d) } => (0, u8::from(*head), 2, d.clone()),
        Kind::Blob => (1, 0, 0, String::new()),
        Kind::File { version: Some(v) } => (2, 0, 1, v.clone()),
        Kind::File { version: None } => (2, 0, 0, String::new()),
    }
}

#[derive(Serialize)]
struct GroupRow {
    day: i64,
    repository: String,
    origin: u64,
    version: u64,
    ip_origin: u64,
    first_route: String,
    pulls: u32,
    #[serde(flatten)]
    who: Who,
    a_hour: Vec<i64>,
    a_kind: Vec<u8>,
    a_download: Vec<u8>,
    a_requests: Vec<u32>,
    a_route: Vec<String>,
    a_tag: Vec<String>,
    a_digest: Vec<String>,
}

impl ClickHouse {
    /// Connect, and create the database and tables that are missing.
    pub fn open(address: Address, account: Option<Account>, settings: Settings) -> Result<ClickHouse, AnalyticsError> {
        let http = Http::new(address, account);
        // Only what is missing is created: a reader's account (`readonly = 2`)
        // opens a store that exists without the right to create anything.
        #[derive(Deserialize)]
        struct Table {
            name: String,
        }
        let present: Vec<Table> =
            http.rows("SELECT name FROM system.tables WHERE database = currentDatabase()", "listing the tables").unwrap_or_default();
        if schema::NAMES.iter().any(|n| !present.iter().any(|t| t.name == *n)) {
            http.create_database()?;
            for sql in schema::tables() {
                http.execute(&sql, "creating the tables")?;
            }
        }
        Ok(ClickHouse {
            http,
            settings,
            touched: BTreeSet::new(),
            next_seal: Default::default(),
            recovered: false,
            cache: Default::default(),
        })
    }

    /// Sessionise the groups a batch touched and write their rows. When
    /// the store holds exactly what this ingester knows of a group (what it
    /// cached, if anything, plus this batch's requests: no other ingester
    /// wrote to it meanwhile), from what it knows; else from all the
    /// group's requests, read back.
    fn regroup(&mut self, mut new: std::collections::BTreeMap<Key, Vec<EventRow>>) -> Result<(), AnalyticsError> {
        let touched: Vec<Key> = new.keys().cloned().collect();
        if self.cache.len() + touched.len() > CACHE_GROUPS {
            // Forgotten groups are read back when touched again.
            self.cache.clear();
        }
        let mut rows = Vec::with_capacity(new.len());
        for chunk in touched.chunks(GROUPS_PER_READ) {
            #[derive(Deserialize)]
            struct Count {
                day: i64,
                repository: String,
                origin: u64,
                n: u64,
            }
            // Distinct ids rather than FINAL: the same number, without merging the parts.
            let counts: Vec<Count> = self.http.rows_with(
                "SELECT day, repository, origin, uniqExact(id) AS n FROM events WHERE (day, repository, origin) IN keys
                 GROUP BY day, repository, origin",
                KEYS,
                &key_tsv(chunk),
                "counting groups",
            )?;
            for c in counts {
                let key = (c.day, c.repository, c.origin);
                let Some(events) = new.get(&key) else { continue };
                let known = self.cache.get(&key).map(|e| &e.ids);
                let fresh: std::collections::HashSet<[u8; 16]> =
                    events.iter().map(|e| group::id_bytes(&e.id)).filter(|id| known.is_none_or(|k| !k.contains(id))).collect();
                if c.n != (known.map_or(0, |k| k.len()) + fresh.len()) as u64 {
                    continue;
                }
                let events = new.remove(&key).unwrap_or_default();
                let Some(first) = events.first().cloned() else { continue };
                let entry = self.cache.entry(key).or_insert_with(|| Cached::new(first));
                entry.extend(events, self.settings.window_ms);
                rows.push(group_row(entry, c.n));
            }
        }
        tracing::debug!(touched = touched.len(), read_back = new.len(), "groups sessionised again");
        self.regroup_rest(new, rows)
    }

    /// The groups `regroup` could not extend: read back whole, then every
    /// row written.
    fn regroup_rest(&mut self, new: std::collections::BTreeMap<Key, Vec<EventRow>>, mut rows: Vec<GroupRow>) -> Result<(), AnalyticsError> {
        let keys: Vec<Key> = new.into_keys().collect();
        for chunk in keys.chunks(GROUPS_PER_READ) {
            let mut events: Vec<EventRow> = self.http.rows_with(
                "SELECT day, repository, origin, id, ts_ms, route, kind, head, ref_kind, reference, ua, ip_origin,
                        country, asn, as_org, cloud
                 FROM events WHERE (day, repository, origin) IN keys
                 ORDER BY day, repository, origin, ts_ms, id",
                KEYS,
                &key_tsv(chunk),
                "reading groups back",
            )?;
            // A request written twice (a retry, another ingester) is one.
            events.dedup_by(|a, b| (a.day, &a.repository, a.origin, &a.id) == (b.day, &b.repository, b.origin, &b.id));
            let mut it = events.into_iter().peekable();
            while let Some(first) = it.next() {
                let key = (first.day, first.repository.clone(), first.origin);
                let mut members = vec![first];
                while let Some(next) = it.next_if(|n| (n.day, &n.repository, n.origin) == (key.0, &key.1, key.2)) {
                    members.push(next);
                }
                let mut entry = Cached::new(members[0].clone());
                entry.extend(members, self.settings.window_ms);
                rows.push(group_row(&entry, entry.ids.len() as u64));
                // `regroup` made room for every group of the batch.
                self.cache.insert(key, entry);
            }
        }
        self.http.insert("groups", &rows, "writing groups")
    }

    /// Rebuild day `day`'s aggregates at its current build, unless they
    /// are at it already.
    fn seal(&self, day: i64) -> Result<(), AnalyticsError> {
        #[derive(Deserialize)]
        struct Build {
            build: u64,
            sealed: u64,
        }
        let b: Vec<Build> = self.http.rows(
            &format!(
                "SELECT (SELECT sum(version) FROM groups FINAL WHERE day = {day})
                      + (SELECT count() FROM dnt FINAL WHERE day = {day})
                      + (SELECT count() FROM requests FINAL WHERE day = {day}) AS build,
                        (SELECT max(build) FROM seals WHERE day = {day}) AS sealed"
            ),
            "reading a day's build",
        )?;
        let Some(Build { build, sealed }) = b.into_iter().next() else { return Ok(()) };
        if build == 0 || sealed >= build {
            return Ok(());
        }
        let f = schema::FACET_COLUMNS;
        let what = "sealing a day";
        self.http.execute(
            &format!(
                "INSERT INTO agg (day, hour, {f}, build, pulls, checks, downloads, requests, origins, ips)
                 SELECT day, hour, route, repository, tag, digest, client, client_version, os, arch, country, asn, as_org, cloud,
                        class, poller, toUInt64({build}), countIf(kind = 0), countIf(kind = 1), sum(download), sum(reqs),
                        uniqCombinedState(origin), uniqCombinedState(ip_origin)
                 FROM (SELECT day, origin, ip_origin, repository, client, client_version, os, arch, country, asn, as_org, cloud,
                              class, poller, a_hour AS hour, a_kind AS kind, a_download AS download, a_requests AS reqs,
                              a_route AS route, a_tag AS tag, a_digest AS digest
                       FROM (SELECT * FROM groups FINAL WHERE day = {day})
                       ARRAY JOIN a_hour, a_kind, a_download, a_requests, a_route, a_tag, a_digest)
                 GROUP BY day, hour, {f}"
            ),
            what,
        )?;
        self.http.execute(
            &format!(
                "INSERT INTO agg_dnt (day, hour, {f}, build, pulls, checks, downloads, requests)
                 SELECT day, hour, {f}, toUInt64({build}), sum(pulls), sum(checks), sum(downloads), count()
                 FROM dnt FINAL WHERE day = {day} GROUP BY day, hour, {f}"
            ),
            what,
        )?;
        self.http.execute(
            &format!(
                "INSERT INTO agg_requests (day, hour, route, build, n)
                 SELECT day, hour, route, toUInt64({build}), count() FROM requests FINAL WHERE day = {day} GROUP BY day, hour, route"
            ),
            what,
        )?;
        self.http.execute(
            &format!(
                "INSERT INTO agg_pulls (day, route, repository, client, pulls, build, origins)
                 SELECT day, first_route, repository, client, pulls, toUInt64({build}), count()
                 FROM groups FINAL WHERE day = {day} AND pulls > 0 GROUP BY day, first_route, repository, client, pulls"
            ),
            what,
        )?;
        // Over all repositories: each origin's pulls of the day.
        self.http.execute(
            &format!(
                "INSERT INTO agg_pulls (day, route, repository, client, pulls, build, origins)
                 SELECT day, r, '', c, p, toUInt64({build}), count()
                 FROM (SELECT day, origin, min(first_route) AS r, any(client) AS c, toUInt32(sum(pulls)) AS p
                       FROM groups FINAL WHERE day = {day} AND pulls > 0 GROUP BY day, origin)
                 GROUP BY day, r, c, p"
            ),
            what,
        )?;
        self.http.insert("seals", &[serde_json::json!({ "day": day, "build": build })], what)
    }

    /// Seal the days touched since their last seal: all of them, or only
    /// those whose last seal was long enough ago (at least 5 s, and four
    /// times what it took: a big day's rebuild takes at most a fifth of
    /// the time).
    fn seal_due(&mut self, all: bool) -> Result<(), AnalyticsError> {
        if !self.recovered {
            let recent = self.recent_days()?;
            self.touched.extend(recent);
            self.recovered = true;
        }
        let now = std::time::Instant::now();
        let due: Vec<i64> = self.touched.iter().copied().filter(|d| all || self.next_seal.get(d).is_none_or(|t| *t <= now)).collect();
        for day in due {
            let started = std::time::Instant::now();
            self.seal(day)?;
            self.touched.remove(&day);
            let pause = (started.elapsed() * 4).max(std::time::Duration::from_secs(5));
            self.next_seal.insert(day, std::time::Instant::now() + pause);
        }
        // Days long gone are not touched again.
        if self.next_seal.len() > 64 {
            self.next_seal.retain(|_, t| *t > now);
        }
        Ok(())
    }

    /// Days with requests in the raw window (at least today and
    /// yesterday): sealed once when a store is first settled, for a run
    /// that stopped between an ingest and its settle.
    fn recent_days(&self) -> Result<Vec<i64>, AnalyticsError> {
        #[derive(Deserialize)]
        struct D {
            day: i64,
        }
        let today = (pullgate_base::clock::now_ms() as i64).div_euclid(DAY_MS);
        let from = today + 1 - i64::from(self.settings.raw_days.max(2));
        let days: Vec<D> =
            self.http.rows(&format!("SELECT DISTINCT day FROM requests WHERE day >= {from} ORDER BY day"), "listing recent days")?;
        Ok(days.into_iter().map(|d| d.day).collect())
    }
}

/// The external table of group keys that `regroup`'s queries read.
const KEYS: &str = "day Int64, repository String, origin UInt64";

/// Group keys as the rows of [`KEYS`] (TSV).
fn key_tsv(keys: &[Key]) -> String {
    keys.iter().map(|(d, r, o)| format!("{d}\t{}\t{o}\n", http::tsv(r))).collect()
}

/// A group's row, computed from `version` requests.
fn group_row(c: &Cached, version: u64) -> GroupRow {
    let (g, first) = (&c.group, &c.first);
    let mut row = GroupRow {
        day: first.day,
        repository: first.repository.clone(),
        origin: first.origin,
        version,
        ip_origin: first.ip_origin,
        first_route: c.actions.first().map(|a| g.reqs[a.first].route.clone()).unwrap_or_default(),
        pulls: c.pulls,
        who: Who::of(&first.ua, first.country.clone(), first.asn.clone(), first.as_org.clone(), first.cloud.clone(), g.poller),
        a_hour: Vec::new(),
        a_kind: Vec::new(),
        a_download: Vec::new(),
        a_requests: Vec::new(),
        a_route: Vec::new(),
        a_tag: Vec::new(),
        a_digest: Vec::new(),
    };
    for a in &c.actions {
        row.a_hour.push(a.first_ts_ms.div_euclid(HOUR_MS));
        row.a_kind.push(match a.kind {
            ActionKind::Pull => 0,
            ActionKind::VersionCheck => 1,
            ActionKind::File => 2,
        });
        row.a_download.push(u8::from(a.download));
        row.a_requests.push(a.requests);
        row.a_route.push(g.reqs[a.first].route.clone());
        row.a_tag.push(a.tag.clone().unwrap_or_default());
        row.a_digest.push(a.digest.clone().unwrap_or_default());
    }
    row
}

impl Store for ClickHouse {
    fn ingest(&mut self, batch: &[Shipped], source: &str, position: &str) -> Result<Ingested, AnalyticsError> {
        let mut done = Ingested { events: batch.len() as u64, ..Ingested::default() };
        let mut ids = std::collections::HashSet::with_capacity(batch.len());
        let mut requests = Vec::with_capacity(batch.len());
        let mut dnt = Vec::new();
        let mut events = Vec::new();
        let mut days = BTreeSet::new();
        for e in batch {
            if !ids.insert(e.id.as_str()) {
                continue;
            }
            done.new += 1;
            let (day, hour) = (e.ts_ms.div_euclid(DAY_MS), e.ts_ms.div_euclid(HOUR_MS));
            requests.push(RequestRow { day, hour, route: &e.route, id: &e.id });
            days.insert(day);
            let Some(c) = classify(&e.method, &e.uri, e.status, &e.route, &e.mode) else { continue };
            let asn = e.asn.map(|n| n.to_string()).unwrap_or_default();
            let Some(origin) = &e.origin else {
                // DNT/GPC: counted as the shipper says, never in the uniques.
                if let Some(d) = e.dnt_counts {
                    let hour = d.hour_ms.div_euclid(HOUR_MS);
                    days.insert(hour.div_euclid(24));
                    let (country, as_org) = (e.country.clone().unwrap_or_default(), e.as_org.clone().unwrap_or_default());
                    let who = Who::of(&e.ua, country, asn, as_org, e.cloud.clone().unwrap_or_default(), false);
                    dnt.push(DntRow {
                        day: hour.div_euclid(24),
                        hour,
                        id: &e.id,
                        facet: Facet { route: e.route.clone(), repository: c.repository, who, ..Facet::default() },
                        pulls: d.pulls,
                        checks: d.version_checks,
                        downloads: d.downloads,
                    });
                }
                continue;
            };
            let (kind, head, ref_kind, reference) = kind_columns(&c.kind);
            events.push(EventRow {
                day,
                repository: c.repository,
                origin: group::origin_u64(origin),
                id: e.id.clone(),
                ts_ms: e.ts_ms,
                route: e.route.clone(),
                kind,
                head,
                ref_kind,
                reference,
                ua: e.ua.clone(),
                ip_origin: group::origin_u64(e.ip_origin.as_deref().unwrap_or("")),
                country: e.country.clone().unwrap_or_default(),
                asn,
                as_org: e.as_org.clone().unwrap_or_default(),
                cloud: e.cloud.clone().unwrap_or_default(),
            });
        }
        self.http.insert("requests", &requests, "writing requests")?;
        self.http.insert("dnt", &dnt, "writing DNT counts")?;
        self.http.insert("events", &events, "writing counted requests")?;
        let mut by_group: std::collections::BTreeMap<Key, Vec<EventRow>> = std::collections::BTreeMap::new();
        for e in events {
            by_group.entry((e.day, e.repository.clone(), e.origin)).or_default().push(e);
        }
        done.groups = by_group.len() as u64;
        self.regroup(by_group)?;
        self.touched.extend(days);
        let at = pullgate_base::clock::now_nanos() as u64;
        self.http.insert("cursors", &[serde_json::json!({ "source": source, "position": position, "at": at })], "moving the cursor")?;
        Ok(done)
    }

    fn settle(&mut self) -> Result<(), AnalyticsError> {
        self.seal_due(true)
    }

    fn tidy(&mut self) -> Result<(), AnalyticsError> {
        self.seal_due(false)
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, AnalyticsError> {
        #[derive(Deserialize)]
        struct C {
            position: String,
        }
        let rows: Vec<C> = self
            .http
            .rows(&format!("SELECT position FROM cursors WHERE source = {} ORDER BY at DESC LIMIT 1", quote(source)), "reading a cursor")?;
        Ok(rows.into_iter().next().map(|c| c.position))
    }

    fn report(&mut self, q: &Query) -> Result<Report, AnalyticsError> {
        report::run(&self.http, q)
    }

    fn breakdowns(&mut self, q: &Query, dims: &[Dim], top: usize) -> Result<Vec<Vec<Row>>, AnalyticsError> {
        dims.iter()
            .map(|d| {
                let mut one = q.clone();
                one.granularity = crate::query::Granularity::Total;
                one.by = vec![*d];
                one.top = Some(top);
                Ok(report::run(&self.http, &one)?.rows)
            })
            .collect()
    }
}
