//! Sessionisation: the requests of one origin for one repository become
//! actions (DESIGN.md, "Analytics semantics", Docker Hub's published rules).
//!
//! At most one action is open. A manifest request by digest, or by the open
//! action's own tag, joins it; one by another tag, or any manifest request
//! once `window` has passed since the action's last request, closes it and
//! opens another. Blob GETs join (and keep open) an open action; with none
//! open they count as nothing. A closed action with a manifest GET is a
//! pull, with HEADs only a version check; a pull with a blob GET is also a
//! download. Each file GET is a download of its own.
//!
//! The requests are taken in (time, id) order whatever order they arrived
//! in, so the same set of requests always gives the same actions.

use crate::request::{Kind, Reference};

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
    /// The tag it was for, if it began with one.
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
        let kind = if self.gets > 0 { ActionKind::Pull } else { ActionKind::VersionCheck };
        Action {
            kind,
            download: self.gets > 0 && self.blob,
            first_ts_ms: self.first_ts,
            tag: self.tag,
            digest: self.digest,
            requests: self.requests,
            first: self.first,
        }
    }
}

/// Sort `reqs` into (time, id) order and turn them into actions.
pub fn sessionise(reqs: &mut [Req], window_ms: i64) -> Vec<Action> {
    reqs.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
    let mut actions = Vec::new();
    let mut open: Option<Open> = None;
    for (i, r) in reqs.iter().enumerate() {
        let live = open.as_ref().is_some_and(|o| r.ts_ms - o.last_ts <= window_ms);
        match &r.kind {
            Kind::File => actions.push(Action {
                kind: ActionKind::File,
                download: true,
                first_ts_ms: r.ts_ms,
                tag: None,
                digest: None,
                requests: 1,
                first: i,
            }),
            Kind::Blob => {
                if let (true, Some(o)) = (live, open.as_mut()) {
                    o.blob = true;
                    o.last_ts = r.ts_ms;
                    o.requests += 1;
                }
            }
            Kind::Manifest { head, reference } => {
                let joins = live
                    && match reference {
                        Reference::Digest(_) => true,
                        Reference::Tag(t) => open.as_ref().is_some_and(|o| o.tag.as_deref() == Some(t.as_str())),
                    };
                if !joins {
                    actions.extend(open.take().map(Open::close));
                    let tag = match reference {
                        Reference::Tag(t) => Some(t.clone()),
                        Reference::Digest(_) => None,
                    };
                    open =
                        Some(Open { first_ts: r.ts_ms, last_ts: r.ts_ms, tag, digest: None, gets: 0, blob: false, requests: 0, first: i });
                }
                let o = open.as_mut().expect("opened above");
                if let (None, Reference::Digest(d)) = (&o.digest, reference) {
                    o.digest = Some(d.clone());
                }
                o.last_ts = r.ts_ms;
                o.requests += 1;
                o.gets += u32::from(!head);
            }
        }
    }
    actions.extend(open.take().map(Open::close));
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
