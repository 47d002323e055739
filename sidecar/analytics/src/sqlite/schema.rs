//! The store's schema, one migration per version (`PRAGMA user_version`).

/// Each migration takes the schema from version N to N+1.
pub const MIGRATIONS: &[&str] = &[
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
    // 4: aggregates. Requests as one record per origin-repository-day
    // (`groups`), actions keyed by hour, counters and unique sketches by
    // hour and day per facet (`agg`), pulls per origin (`pull_counts`, by repository
    // and, under repository '', over all of them with `origin_pulls`). The
    // rows of version 3 are moved by `Sqlite::upgrade_from_3` then dropped.
    "ALTER TABLE requests RENAME TO requests_v3;
     ALTER TABLE actions RENAME TO actions_v3;
     DROP INDEX requests_group;
     DROP INDEX actions_group;
     DROP INDEX actions_time;
     ALTER TABLE seen RENAME TO seen_v3;
     CREATE TABLE seen (hour INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY (hour, id)) WITHOUT ROWID;
     CREATE TABLE groups (
        day INTEGER NOT NULL, origin INTEGER NOT NULL, repository TEXT NOT NULL, raw INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (day, origin, repository)) WITHOUT ROWID;
     CREATE INDEX groups_raw ON groups (day) WHERE raw = 1;
     CREATE TABLE facets (
        id INTEGER PRIMARY KEY, route TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL,
        client TEXT NOT NULL, client_version TEXT NOT NULL, os TEXT NOT NULL, arch TEXT NOT NULL, country TEXT NOT NULL,
        asn TEXT NOT NULL, as_org TEXT NOT NULL, cloud TEXT NOT NULL, class TEXT NOT NULL, poller TEXT NOT NULL,
        UNIQUE (route, repository, tag, digest, client, client_version, os, arch, country, asn, as_org, cloud, class, poller));
     CREATE TABLE actions (
        hour INTEGER NOT NULL, origin INTEGER NOT NULL, repository TEXT NOT NULL, n INTEGER NOT NULL, facet INTEGER NOT NULL,
        kind INTEGER NOT NULL, download INTEGER NOT NULL, requests INTEGER NOT NULL, ip_origin INTEGER NOT NULL,
        PRIMARY KEY (hour, origin, repository, n)) WITHOUT ROWID;
     CREATE TABLE agg (
        span INTEGER NOT NULL, period INTEGER NOT NULL, facet INTEGER NOT NULL,
        pulls INTEGER NOT NULL, checks INTEGER NOT NULL, downloads INTEGER NOT NULL, requests INTEGER NOT NULL,
        origins BLOB NOT NULL, ips BLOB NOT NULL,
        PRIMARY KEY (span, period, facet)) WITHOUT ROWID;
     CREATE TABLE pull_counts (
        day INTEGER NOT NULL, route TEXT NOT NULL, repository TEXT NOT NULL, client TEXT NOT NULL, pulls INTEGER NOT NULL,
        origins INTEGER NOT NULL, PRIMARY KEY (day, route, repository, client, pulls)) WITHOUT ROWID;
     CREATE TABLE origin_pulls (
        day INTEGER NOT NULL, origin INTEGER NOT NULL, route TEXT NOT NULL, client TEXT NOT NULL, pulls INTEGER NOT NULL,
        PRIMARY KEY (day, origin)) WITHOUT ROWID;
     CREATE TABLE dnt_counts (
        hour INTEGER NOT NULL, facet INTEGER NOT NULL, pulls INTEGER NOT NULL, checks INTEGER NOT NULL,
        downloads INTEGER NOT NULL, requests INTEGER NOT NULL, PRIMARY KEY (hour, facet)) WITHOUT ROWID;
     CREATE TABLE dirty (hour INTEGER PRIMARY KEY) WITHOUT ROWID;",
];
