//! The index routes' upstream documents (PEP 503/691 pages, npm packuments,
//! Helm `index.yaml`): fetched with conditional requests (ETag,
//! Last-Modified), kept on disk so that a restart while the upstream is
//! down still serves, and refreshed on an interval. A failed fetch, or a
//! document that does not read, never replaces the last good one: the
//! route is marked stale and keeps serving what it had.
//!
//! [`Indexes`] does one pass; [`IndexFeed`] runs passes in a task of its
//! own, so that an upstream that is slow or does not answer never holds up
//! the daemon's loop (an edit of routes.yaml goes live meanwhile, and the
//! documents follow when they come).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use url::Url;

use pullgate_config::{Config, IndexKind, IndexRoute, Route, Target};
use pullgate_index::{helm, npm, pypi, IndexError, Served, Snapshot};

/// The largest document read (npm packuments of busy packages run to tens of MB).
const MAX_BODY: usize = 64 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// How often documents never fetched (their upstream did not answer) are asked for again.
const RETRY_MISSING: Duration = Duration::from_secs(10);
/// How long the first config waits for its documents before it goes live without them.
pub const FIRST_WAIT: Duration = Duration::from_secs(5);
/// Upstream requests in flight at once.
const FETCHES_AT_ONCE: usize = 8;

/// An upstream document as last fetched and read successfully.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cached {
    url: String,
    body: String,
    content_type: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at: f64,
}

/// One document an index route needs.
#[derive(Debug, Clone)]
struct Wanted {
    route: String,
    url: Url,
    accept: &'static str,
    /// The package the document is for (none: a Helm repository's index).
    package: Option<String>,
}

/// Which documents a pass asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Those not held and not asked for yet (a routes.yaml edit).
    New,
    /// Those not held (their upstream did not answer before).
    Missing,
    /// All of them, conditionally (the refresh).
    All,
}

enum Fetched {
    New(Cached),
    NotModified,
    Failed(String),
}

/// Counters for /metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexStats {
    pub fetches: u64,
    pub not_modified: u64,
    pub failures: u64,
    pub rejected: u64,
}

pub struct Indexes {
    /// Where documents are kept between runs (none: memory only).
    dir: Option<PathBuf>,
    client: reqwest::Client,
    docs: HashMap<String, Cached>,
    /// Documents asked for since start (fetched or not): an edit does not ask again.
    tried: BTreeSet<String>,
    snapshot: Snapshot,
    /// The index routes the snapshot's routes were read for (a route's
    /// path or host changes what its documents become).
    read_for: Vec<Route>,
    /// Bumped whenever the snapshot changes.
    pub generation: u64,
    pub stats: IndexStats,
}

impl Indexes {
    pub fn new(dir: Option<PathBuf>) -> Indexes {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("pullgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls");
        Indexes {
            dir,
            client,
            docs: HashMap::new(),
            tried: BTreeSet::new(),
            snapshot: Snapshot::default(),
            read_for: Vec::new(),
            generation: 0,
            stats: IndexStats::default(),
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Bring the snapshot in line with `config`, asking for the documents
    /// `pass` says. Whether the snapshot changed.
    pub async fn sync(&mut self, config: &Config, pass: Pass) -> bool {
        let wanted = wanted(config);
        let mut failed: BTreeSet<String> = BTreeSet::new();
        // Whether a document came, changed or went: only then are they read again.
        let mut docs_changed = false;
        let mut to_fetch = Vec::new();
        for w in &wanted {
            let key = w.url.as_str();
            if !self.docs.contains_key(key) {
                if let Some(c) = self.load(key) {
                    self.docs.insert(key.to_string(), c);
                    docs_changed = true;
                }
            }
            let held = self.docs.contains_key(key);
            let ask = match pass {
                Pass::New => !held && !self.tried.contains(key),
                Pass::Missing => !held,
                Pass::All => true,
            };
            if ask {
                to_fetch.push(w.clone());
            }
        }
        // One request per document, whichever routes share it.
        to_fetch.sort_by(|a, b| a.url.cmp(&b.url));
        to_fetch.dedup_by(|a, b| a.url == b.url);
        // A few at a time: a route may list hundreds of packages on one upstream.
        let jobs: Vec<_> = to_fetch
            .iter()
            .map(|w| {
                let (client, w) = (self.client.clone(), w.clone());
                let held =
                    self.docs.get(w.url.as_str()).map(|c| Validators { etag: c.etag.clone(), last_modified: c.last_modified.clone() });
                async move { fetch(&client, &w, held).await }
            })
            .collect();
        let results: Vec<Fetched> = futures::stream::iter(jobs).buffered(FETCHES_AT_ONCE).collect().await;
        for (w, result) in to_fetch.iter().zip(results) {
            self.stats.fetches += 1;
            self.tried.insert(w.url.to_string());
            let users = || wanted.iter().filter(|u| u.url == w.url).map(|u| u.route.clone());
            match result {
                Fetched::NotModified => self.stats.not_modified += 1,
                Fetched::Failed(why) => {
                    self.stats.failures += 1;
                    tracing::warn!(route = %w.route, url = %w.url, "index document not refreshed, the cached one keeps serving: {why}");
                    failed.extend(users());
                }
                Fetched::New(c) => {
                    // A document that does not read never replaces a good one.
                    let route = route_of(config, &w.route).expect("wanted from the config");
                    if let Err(e) = read_into(route, w, &c, &mut Served::default()) {
                        self.stats.rejected += 1;
                        tracing::warn!(route = %w.route, url = %w.url, "index document refused, the cached one keeps serving: {e}");
                        failed.extend(users());
                        continue;
                    }
                    self.store(&c);
                    self.docs.insert(w.url.to_string(), c);
                    docs_changed = true;
                }
            }
        }
        // A document no route wants any more is forgotten, on disk too.
        let keep: BTreeSet<&str> = wanted.iter().map(|w| w.url.as_str()).collect();
        let dropped: Vec<String> = self.docs.keys().filter(|k| !keep.contains(k.as_str())).cloned().collect();
        for url in dropped {
            docs_changed = true;
            self.docs.remove(&url);
            if let Some(path) = self.path_of(&url) {
                let _ = std::fs::remove_file(path);
            }
        }
        // A route that failed before and was not asked again stays stale.
        if pass != Pass::All {
            let index_route = |name: &String| config.routes.iter().any(|r| r.name == *name && matches!(r.target, Target::Index(_)));
            failed.extend(self.snapshot.stale.iter().filter(|s| index_route(s)).cloned());
        }
        let read_for = index_routes(config);
        if !docs_changed && read_for == self.read_for {
            // The same documents for the same routes: only staleness may have changed.
            if failed == self.snapshot.stale {
                return false;
            }
            self.snapshot.stale = failed;
            self.generation += 1;
            return true;
        }

        let mut routes: BTreeMap<String, Served> = BTreeMap::new();
        for r in &config.routes {
            let Target::Index(ix) = &r.target else { continue };
            let mut served = Served::default();
            let mut listed = Vec::new();
            for w in wanted.iter().filter(|w| w.route == r.name) {
                let Some(c) = self.docs.get(w.url.as_str()) else { continue };
                if read_into(ix, w, c, &mut served).is_ok() {
                    listed.extend(w.package.clone());
                }
            }
            if ix.kind == IndexKind::Pypi {
                pypi::Project::serve_root(&listed, &ix.path, &mut served);
            }
            routes.insert(r.name.clone(), served);
        }
        self.read_for = read_for;
        let next = Snapshot { routes, stale: failed };
        if next == self.snapshot {
            return false;
        }
        self.snapshot = next;
        self.generation += 1;
        true
    }

    fn path_of(&self, url: &str) -> Option<PathBuf> {
        use sha2::{Digest, Sha256};
        let name: String = Sha256::digest(url.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.dir.as_ref().map(|d| d.join(format!("{name}.json")))
    }

    fn load(&self, url: &str) -> Option<Cached> {
        let text = std::fs::read_to_string(self.path_of(url)?).ok()?;
        serde_json::from_str::<Cached>(&text).ok().filter(|c| c.url == url)
    }

    fn store(&self, c: &Cached) {
        let Some(path) = self.path_of(&c.url) else { return };
        let text = serde_json::to_vec(c).expect("serialisable");
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| pullgate_base::fs::write_atomic(&path, &text));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "index document not kept on disk: {e}");
        }
    }
}

/// A snapshot as the feed publishes it.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub snapshot: Snapshot,
    /// Bumped whenever the snapshot changes.
    pub generation: u64,
}

/// [`Indexes`] in a task of its own: it fetches what the latest config
/// wants (new documents at once, missing ones every 10 s, all of them every
/// `refresh`), and publishes each snapshot that differs.
pub struct IndexFeed {
    wants: watch::Sender<(u64, Option<Arc<Config>>)>,
    published: watch::Receiver<Arc<Published>>,
    /// The last config sequence a pass finished for.
    caught_up: watch::Receiver<u64>,
    /// The index routes last sent, to send a config only when they change.
    sent: Vec<Route>,
    seq: u64,
    pub stats: Arc<Mutex<IndexStats>>,
}

impl IndexFeed {
    /// Start the task (in the current tokio runtime); documents are kept in `dir`.
    pub fn start(dir: Option<PathBuf>, refresh: Duration) -> IndexFeed {
        let (wants, mut wants_rx) = watch::channel((0u64, None::<Arc<Config>>));
        let (published_tx, published) = watch::channel(Arc::new(Published::default()));
        let (caught_up_tx, caught_up) = watch::channel(0u64);
        let stats = Arc::new(Mutex::new(IndexStats::default()));
        let task_stats = stats.clone();
        tokio::spawn(async move {
            let mut indexes = Indexes::new(dir);
            let mut refresh_tick = tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
            refresh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut retry_tick = tokio::time::interval(RETRY_MISSING);
            retry_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut seq, mut config) = (0u64, None::<Arc<Config>>);
            loop {
                let pass = tokio::select! {
                    sent = wants_rx.changed() => {
                        if sent.is_err() {
                            return; // the feed is gone
                        }
                        (seq, config) = wants_rx.borrow_and_update().clone();
                        Pass::New
                    }
                    _ = refresh_tick.tick() => Pass::All,
                    _ = retry_tick.tick() => Pass::Missing,
                };
                if let Some(c) = &config {
                    if indexes.sync(c, pass).await {
                        let next = Published { snapshot: indexes.snapshot().clone(), generation: indexes.generation };
                        let _ = published_tx.send(Arc::new(next));
                    }
                }
                *task_stats.lock().expect("index stats lock") = indexes.stats.clone();
                let _ = caught_up_tx.send(seq);
            }
        });
        IndexFeed { wants, published, caught_up, sent: Vec::new(), seq: 0, stats }
    }

    /// Fetch for `config` from now on (sent only when its index routes changed).
    pub fn want(&mut self, config: &Config) {
        let routes = index_routes(config);
        if routes == self.sent && self.seq > 0 {
            return;
        }
        self.seq += 1;
        self.sent = routes;
        let _ = self.wants.send((self.seq, Some(Arc::new(config.clone()))));
    }

    /// Wait, at most `limit`, until a pass has finished for the last config sent.
    pub async fn caught_up(&mut self, limit: Duration) {
        let want = self.seq;
        let _ = tokio::time::timeout(limit, self.caught_up.wait_for(|s| *s >= want)).await;
    }

    /// The latest snapshot, marked as seen.
    pub fn current(&mut self) -> Arc<Published> {
        self.published.borrow_and_update().clone()
    }

    /// Resolves when a snapshot not yet seen is published (cancel-safe).
    pub async fn changed(&mut self) {
        if self.published.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The index routes of `config`, as they are written.
fn index_routes(config: &Config) -> Vec<Route> {
    config.routes.iter().filter(|r| matches!(r.target, Target::Index(_))).cloned().collect()
}

fn route_of<'a>(config: &'a Config, name: &str) -> Option<&'a IndexRoute> {
    config.routes.iter().find(|r| r.name == name).and_then(|r| match &r.target {
        Target::Index(ix) => Some(ix),
        _ => None,
    })
}

/// The documents every index route of `config` needs.
fn wanted(config: &Config) -> Vec<Wanted> {
    let mut out = Vec::new();
    for r in &config.routes {
        let Target::Index(ix) = &r.target else { continue };
        let base = Url::parse(&ix.upstream()).expect("validated upstream URL");
        let mut add = |path: &str, accept: &'static str, package: Option<&String>| {
            if let Ok(url) = base.join(path) {
                out.push(Wanted { route: r.name.clone(), url, accept, package: package.cloned() });
            }
        };
        match ix.kind {
            IndexKind::Pypi => {
                for p in &ix.packages {
                    add(
                        &format!("{p}/"),
                        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1",
                        Some(p),
                    );
                }
            }
            IndexKind::Npm => {
                for p in &ix.packages {
                    add(&npm::packument_path(p), "application/json", Some(p));
                }
            }
            IndexKind::Helm => add("index.yaml", "application/x-yaml, text/yaml;q=0.9, */*;q=0.1", None),
        }
    }
    out
}

/// Read a fetched document into what its route serves.
fn read_into(ix: &IndexRoute, w: &Wanted, c: &Cached, out: &mut Served) -> Result<(), IndexError> {
    match ix.kind {
        IndexKind::Pypi => {
            let want = w.package.as_deref().unwrap_or_default();
            let project = if c.content_type.contains("json") {
                pypi::Project::from_json(&c.body, &w.url, want)?
            } else {
                pypi::Project::from_html(&c.body, &w.url, want)?
            };
            project.serve(&ix.path, out);
        }
        IndexKind::Npm => {
            let public = ix.public_url.as_ref().map(|o| o.to_string()).unwrap_or_default();
            let want = w.package.as_deref().unwrap_or_default();
            npm::Packument::from_json(&c.body, &w.url, want, &public, &ix.path)?.serve(out);
        }
        IndexKind::Helm => helm::serve(&c.body, &w.url, &ix.path, &ix.packages, out)?,
    }
    Ok(())
}

/// What a conditional request sends back: the held document's validators.
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

async fn fetch(client: &reqwest::Client, w: &Wanted, held: Option<Validators>) -> Fetched {
    let mut req = client.get(w.url.clone()).header(reqwest::header::ACCEPT, w.accept);
    let conditional = held.is_some();
    if let Some(h) = held {
        if let Some(etag) = &h.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &h.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Fetched::Failed(format!("{e}")),
    };
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && conditional {
        return Fetched::NotModified;
    }
    if !status.is_success() {
        return Fetched::Failed(format!("the upstream answered {status}"));
    }
    let header = |name: reqwest::header::HeaderName| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (etag, last_modified) = (header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default().to_ascii_lowercase();
    if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
        return Fetched::Failed(format!("larger than {MAX_BODY} bytes"));
    }
    let mut resp = resp;
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Fetched::Failed(format!("larger than {MAX_BODY} bytes"));
                }
            }
            Ok(None) => break,
            Err(e) => return Fetched::Failed(format!("reading the body: {e}")),
        }
    }
    let Ok(body) = String::from_utf8(body) else { return Fetched::Failed("not UTF-8".into()) };
    Fetched::New(Cached { url: w.url.to_string(), body, content_type, etag, last_modified, fetched_at: pullgate_base::clock::now_secs() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_asks_for_its_documents_where_its_protocol_keeps_them() {
        let yaml = r#"version: 1
gateway:
  hosts: [{name: get.acme.dev, public_url: "https://get.acme.dev"}]
routes:
  - {name: py, kind: pypi, upstream: "https://pypi.org/simple", packages: [Acme_Client]}
  - {name: js, kind: npm, host: get.acme.dev, upstream: "https://registry.npmjs.org/", packages: ["@acme/cli", lib]}
  - {name: charts, kind: helm, upstream: "http://127.0.0.1:8081/charts"}
"#;
        let config = pullgate_config::parse(yaml, "t").unwrap();
        let urls: Vec<(String, String)> = wanted(&config).into_iter().map(|w| (w.route, w.url.to_string())).collect();
        let want = [
            ("py", "https://pypi.org/simple/acme-client/"),
            ("js", "https://registry.npmjs.org/@acme%2fcli"),
            ("js", "https://registry.npmjs.org/lib"),
            ("charts", "http://127.0.0.1:8081/charts/index.yaml"),
        ];
        assert_eq!(urls, want.map(|(r, u)| (r.to_string(), u.to_string())));
    }
}
