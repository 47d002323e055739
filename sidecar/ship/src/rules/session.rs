//! Sessionisation: the requests of one origin for one repository become
//! actions (DESIGN.md, "Analytics semantics", Docker Hub's published rules).
//!
//! At most one action is open. A manifest request by digest, or by the open
//! action's own tag, joins it; one by another tag, or any manifest request
//! once `window` has passed since the action's last request, closes it and
//! opens another. Blob GETs join (and keep open) an open action; with none
//! open they count as nothing. A closed action with a manifest GET is a
//! pull, with HEADs only a version check; a pull with a blob GET is also a
//! download. A file GET opens a download of its own; the same origin's GETs
//! of that version (or, for a file without one, of that file) join it
//! while they come within `window` of each other (uv fetches a wheel's
//! metadata by range, then the wheel, in one install).
//!
//! The requests are taken in (time, id) order whatever order they arrived
//! in, so the same set of requests always gives the same actions.

use super::request::{Kind, Reference};

/// One counted request of a group, as sessionisation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub ts_ms: i64,
    pub id: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Pull,
    VersionCheck,
    /// A file route's artifact.
    File,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Pull => "pull",
            ActionKind::VersionCheck => "check",
            ActionKind::File => "file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    /// A pull followed by a blob GET; every file action.
    pub download: bool,
    /// When its first request came (the action's hour and day).
    pub first_ts_ms: i64,
    /// The tag it was for, if it began with one; a file's version.
    pub tag: Option<String>,
    /// The first manifest digest it fetched, if any (by digest, or after a tag).
    pub digest: Option<String>,
    /// How many requests it took.
    pub requests: u32,
    /// Index (in the sorted requests) of its first request: where its
    /// dimensions (client, country...) come from.
    pub first: usize,
}

struct Open {
    /// A file download (not a manifest action).
    file: bool,
    first_ts: i64,
    last_ts: i64,
    tag: Option<String>,
    digest: Option<String>,
    gets: u32,
    blob: bool,
    requests: u32,
    first: usize,
}

impl Open {
    fn close(self) -> Action {
        let kind = match (self.file, self.gets > 0) {
            (true, _) => ActionKind::File,
            (false, true) => ActionKind::Pull,
            (false, false) => ActionKind::VersionCheck,
        };
        Action {
            kind,
            download: self.file || (self.gets > 0 && self.blob),
            first_ts_ms: self.first_ts,
            tag: self.tag,
            digest: self.digest,
            requests: self.requests,
            first: self.first,
        }
    }
}

/// What one request changed in the counts of its origin and repository
/// (each -1, 0 or +1): a GET that turns an open version check into a pull is
/// `pulls: 1, version_checks: -1`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub pulls: i8,
    pub version_checks: i8,
    pub downloads: i8,
}

impl Delta {
    pub fn is_zero(&self) -> bool {
        *self == Delta::default()
    }
}

/// The counts an open action stands for now.
fn counts(o: Option<&Open>) -> Delta {
    match o {
        Some(o) if o.file => Delta { pulls: 0, version_checks: 0, downloads: 1 },
        Some(o) if o.gets > 0 => Delta { pulls: 1, version_checks: 0, downloads: i8::from(o.blob) },
        Some(_) => Delta { pulls: 0, version_checks: 1, downloads: 0 },
        None => Delta::default(),
    }
}

fn minus(a: Delta, b: Delta) -> Delta {
    Delta { pulls: a.pulls - b.pulls, version_checks: a.version_checks - b.version_checks, downloads: a.downloads - b.downloads }
}

/// One origin's requests for one repository, taken one at a time in time
/// order: [`sessionise`] for a group at rest, the shipper for requests
/// that must be grouped on the box (DNT/GPC) before their address goes.
#[derive(Default)]
pub struct Session {
    open: Option<Open>,
}

impl Session {
    /// Take the next request; `i` is its index, for [`Action::first`]. The
    /// actions it closes (the one open before, a file download) go to
    /// `closed`; what it changed in the counts is returned.
    pub fn push(&mut self, i: usize, ts_ms: i64, kind: &Kind, window_ms: i64, closed: &mut Vec<Action>) -> Delta {
        let live = self.open.as_ref().is_some_and(|o| ts_ms - o.last_ts <= window_ms);
        match kind {
            Kind::File { version } => {
                if let Some(o) = self.open.as_mut().filter(|o| live && o.file && o.tag == *version) {
                    o.last_ts = ts_ms;
                    o.requests += 1;
                    return Delta::default();
                }
                closed.extend(self.open.take().map(Open::close));
                self.open = Some(Open {
                    file: true,
                    first_ts: ts_ms,
                    last_ts: ts_ms,
                    tag: version.clone(),
                    digest: None,
                    gets: 1,
                    blob: false,
                    requests: 1,
                    first: i,
                });
                Delta { downloads: 1, ..Delta::default() }
            }
            Kind::Blob => match self.open.as_mut().filter(|o| live && !o.file) {
                Some(o) => {
                    let before = counts(Some(o));
                    o.blob = true;
                    o.last_ts = ts_ms;
                    o.requests += 1;
                    minus(counts(Some(o)), before)
                }
                None => Delta::default(),
            },
            Kind::Manifest { head, reference } => {
                let joins = live
                    && self.open.as_ref().is_some_and(|o| !o.file)
                    && match reference {
                        Reference::Digest(_) => true,
                        Reference::Tag(t) => self.open.as_ref().is_some_and(|o| o.tag.as_deref() == Some(t.as_str())),
                    };
                let before = if joins {
                    counts(self.open.as_ref())
                } else {
                    closed.extend(self.open.take().map(Open::close));
                    let tag = match reference {
                        Reference::Tag(t) => Some(t.clone()),
                        Reference::Digest(_) => None,
                    };
                    self.open = Some(Open {
                        file: false,
                        first_ts: ts_ms,
                        last_ts: ts_ms,
                        tag,
                        digest: None,
                        gets: 0,
                        blob: false,
                        requests: 0,
                        first: i,
                    });
                    Delta::default()
                };
                let o = self.open.as_mut().expect("opened above");
                if let (None, Reference::Digest(d)) = (&o.digest, reference) {
                    o.digest = Some(d.clone());
                }
                o.last_ts = ts_ms;
                o.requests += 1;
                o.gets += u32::from(!head);
                minus(counts(Some(o)), before)
            }
        }
    }

    /// When the open action began, if one is open.
    pub fn open_since(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.first_ts)
    }

    /// When the open action last took a request, if one is open.
    pub fn last_request(&self) -> Option<i64> {
        self.open.as_ref().map(|o| o.last_ts)
    }

    /// Close what is open.
    pub fn finish(self) -> Option<Action> {
        self.open.map(Open::close)
    }
}

/// Sort `reqs` into (time, id) order and turn them into actions.
pub fn sessionise(reqs: &mut [Req], window_ms: i64) -> Vec<Action> {
    reqs.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
    let mut actions = Vec::new();
    let mut session = Session::default();
    for (i, r) in reqs.iter().enumerate() {
        session.push(i, r.ts_ms, &r.kind, window_ms, &mut actions);
    }
    actions.extend(session.finish());
    actions.sort_by_key(|a| (a.first_ts_ms, a.first));
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 60_000;

    fn head(ts: i64, t: &str) -> Req {
        Req { ts_ms: ts, id: format!("{ts:08}h{t}"), kind: Kind::Manifest { head: true, reference: Reference::Tag(t.into()) } }
    }
    fn get_tag(ts: i64, t: &str) -> Req {
        Req { ts_ms: ts, id: format!("{ts:08}g{t}"), kind: Kind::Manifest { head: false, reference: Reference::Tag(t.into()) } }
    }
    fn get_digest(ts: i64, d: &str) -> Req {
        Req {
            ts_ms: ts,
            id: format!("{ts:08}d{d}"),
            kind: Kind::Manifest { head: false, reference: Reference::Digest(format!("sha256:{d}")) },
        }
    }
    fn blob(ts: i64) -> Req {
        Req { ts_ms: ts, id: format!("{ts:08}b"), kind: Kind::Blob }
    }
    fn kinds(reqs: &mut [Req]) -> Vec<(ActionKind, bool)> {
        sessionise(reqs, W).into_iter().map(|a| (a.kind, a.download)).collect()
    }

    #[test]
    fn real_client_sequences() {
        use ActionKind::*;
        // docker pull: HEAD tag, GET index, GET platform manifest, blobs.
        assert_eq!(kinds(&mut [head(0, "1"), get_digest(10, "idx"), get_digest(20, "amd64"), blob(30), blob(40)]), [(Pull, true)]);
        // docker re-pull when up to date: HEAD tag only.
        assert_eq!(kinds(&mut [head(0, "1")]), [(VersionCheck, false)]);
        // podman / skopeo: GET tag, GET platform digest, blobs; a podman re-pull: GET tag + config blob.
        assert_eq!(kinds(&mut [get_tag(0, "1"), get_digest(5, "amd64"), blob(9)]), [(Pull, true)]);
        // cri-o fetches the same manifest twice: one pull.
        assert_eq!(kinds(&mut [get_tag(0, "1"), get_tag(3, "1"), blob(9)]), [(Pull, true)]);
        // HEAD then GET of the same digest: one pull, no blob: not a download.
        assert_eq!(kinds(&mut [get_digest(0, "x"), get_digest(1, "x")]), [(Pull, false)]);
        // A poller: a HEAD every 5 minutes: a version check each.
        assert_eq!(kinds(&mut [head(0, "1"), head(300_000, "1"), head(600_000, "1")]), [(VersionCheck, false); 3]);
        // Another tag closes the action; blobs after the window count as nothing.
        assert_eq!(kinds(&mut [get_tag(0, "1"), get_tag(5, "2"), blob(10)]), [(Pull, false), (Pull, true)]);
        assert_eq!(kinds(&mut [head(0, "1"), blob(W + 1)]), [(VersionCheck, false)]);
        // Blobs keep an action open: a slow pull stays one.
        assert_eq!(kinds(&mut [head(0, "1"), get_digest(1, "m"), blob(W), blob(2 * W), get_digest(2 * W + 5, "m")]), [(Pull, true)]);
        // A blob with no action open is nothing.
        assert!(kinds(&mut [blob(0)]).is_empty());
        // uv installing a wheel: its metadata by range, then the wheel, twice: one download.
        let file = |ts: i64, v: &str| Req { ts_ms: ts, id: format!("{ts:08}f{v}"), kind: Kind::File { version: Some(v.into()) } };
        assert_eq!(kinds(&mut [file(0, "1.0"), file(5, "1.0"), file(9, "1.0")]), [(File, true)]);
        // Another version, or the same one after the window: another download.
        assert_eq!(kinds(&mut [file(0, "1.0"), file(5, "2.0"), file(W + 6, "2.0")]), [(File, true); 3]);
    }

    #[test]
    fn deltas_add_up_to_the_actions_counts() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..300 {
            let mut t = 0;
            let mut reqs = Vec::new();
            for n in 0..12 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t += (x % 90_000) as i64;
                let kind = match x % 7 {
                    0 | 1 => Kind::Manifest { head: true, reference: Reference::Tag(["1", "2"][(x >> 8) as usize % 2].into()) },
                    2 => Kind::Manifest { head: false, reference: Reference::Tag("1".into()) },
                    3 => Kind::Manifest { head: x.is_multiple_of(2), reference: Reference::Digest("sha256:d".into()) },
                    4 | 5 => Kind::Blob,
                    _ => Kind::File { version: Some(["1", "2"][(x >> 9) as usize % 2].into()) },
                };
                reqs.push(Req { ts_ms: t, id: format!("{n:04}"), kind });
            }
            let actions = sessionise(&mut reqs.clone(), W);
            let mut session = Session::default();
            let (mut sum, mut closed) = (Delta::default(), Vec::new());
            for (i, r) in reqs.iter().enumerate() {
                let d = session.push(i, r.ts_ms, &r.kind, W, &mut closed);
                (sum.pulls, sum.version_checks, sum.downloads) =
                    (sum.pulls + d.pulls, sum.version_checks + d.version_checks, sum.downloads + d.downloads);
            }
            let count = |k: ActionKind| actions.iter().filter(|a| a.kind == k).count() as i8;
            let downloads = actions.iter().filter(|a| a.download).count() as i8;
            assert_eq!(
                (sum.pulls, sum.version_checks, sum.downloads),
                (count(ActionKind::Pull), count(ActionKind::VersionCheck), downloads)
            );
        }
    }

    #[test]
    fn the_same_requests_in_any_order_give_the_same_actions() {
        let mut reqs = vec![
            head(0, "1"),
            get_digest(10, "idx"),
            get_digest(20, "amd64"),
            blob(30),
            head(400_000, "1"),
            get_tag(900_000, "2"),
            blob(900_010),
            get_tag(900_020, "3"),
            head(2_000_000, "3"),
            get_digest(2_000_000, "same-ms"),
        ];
        let want = sessionise(&mut reqs.clone(), W);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200 {
            for i in (1..reqs.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                reqs.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let got = sessionise(&mut reqs.clone(), W);
            assert_eq!(
                got.iter().map(|a| (a.kind, a.download, a.first_ts_ms, a.requests)).collect::<Vec<_>>(),
                want.iter().map(|a| (a.kind, a.download, a.first_ts_ms, a.requests)).collect::<Vec<_>>()
            );
        }
        // pull+download, check, pull of 2 (+download), pull of 3, pull by digest, check of 3.
        assert_eq!(want.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["pull", "check", "pull", "pull", "pull", "check"]);
    }
}
