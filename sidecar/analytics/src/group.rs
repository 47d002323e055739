//! One origin's requests for one repository on one UTC day (origins are
//! keyed per day, so a group never spans two), as the store keeps them: a
//! compact record that is read, extended and sessionised again whenever
//! one of its requests arrives.
//!
//! An origin is a hash of (address, agent), so everything known about the
//! client (agent, country, network, cloud) is the same for every request of
//! a group and is kept once, in the header.
//!
//! Once the raw window has passed, a group is *sealed*: its requests are
//! dropped and only what its actions contributed is remembered (`base`);
//! a request that still arrives for it later is sessionised on its own.

use crate::request::{Kind, Reference};
use crate::session::{sessionise, Action, ActionKind, Req};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub ip_origin: u64,
    /// Row id of the user agent in the store's `uas`.
    pub ua: i64,
    pub country: String,
    pub asn: Option<u32>,
    pub as_org: String,
    pub cloud: String,
}

/// One counted request, without what the header holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub ts_ms: i64,
    pub id: [u8; 16],
    pub kind: Kind,
    pub route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub header: Header,
    /// Actions from requests dropped when the group was sealed.
    pub base: u32,
    pub base_pulls: u32,
    /// Whether the requests were dropped (the raw window passed).
    pub sealed: bool,
    /// The route of its first action, and its pulls: what it adds to the
    /// store's pulls-per-origin counts (removed before it changes).
    pub counted: Option<(String, u32)>,
    /// Hours of its actions numbered `base..`: where to find them to replace them.
    pub hours: Vec<i64>,
    /// Whether its version checks are a poller's (a dimension of all its actions).
    pub poller: bool,
    pub tail: Tail,
    pub reqs: Vec<Stored>,
}

/// Where the group's last manifest action begins: requests that come after
/// all of the group's are sessionised from there on, not from the start
/// (nothing before an action that a manifest request opened can change
/// what follows it), so a busy client's day costs its new requests, not
/// all of them again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tail {
    /// Index in `reqs` of its first request.
    pub from: u32,
    /// Its number (from `base`): how many actions come before it.
    pub n: u32,
    /// Pulls among the actions before it.
    pub pulls: u32,
    /// When each version check before it began (for the poller flag).
    pub checks: Vec<i64>,
}

/// What adding requests changed: the actions numbered `from_n..` (from
/// `base`) are replaced by `actions`; with `from_ts`, only those that began
/// at or after it, else all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redo {
    pub from_n: u32,
    pub from_ts: Option<i64>,
    pub actions: Vec<Action>,
    /// All its pulls, sealed ones included.
    pub pulls: u32,
}

impl Group {
    /// Sessionise the requests (kept in (time, id) order, which is the
    /// order sessionising takes them in, so an action's `first` indexes
    /// `reqs` too); the actions are numbered from `base`.
    pub fn actions(&self, window_ms: i64) -> Vec<Action> {
        self.actions_from(0, window_ms)
    }

    /// The actions of the requests from index `k` on, their `first`
    /// indexing `reqs` as a whole.
    fn actions_from(&self, k: usize, window_ms: i64) -> Vec<Action> {
        debug_assert!(self.reqs.windows(2).all(|w| (w[0].ts_ms, w[0].id) <= (w[1].ts_ms, w[1].id)));
        let mut reqs: Vec<Req> = self.reqs[k..].iter().map(|r| Req { ts_ms: r.ts_ms, id: hex(&r.id), kind: r.kind.clone() }).collect();
        let mut actions = sessionise(&mut reqs, window_ms);
        for a in &mut actions {
            a.first += k;
        }
        actions
    }

    /// Pulls of all its actions (sealed ones included).
    pub fn pulls(&self, actions: &[Action]) -> u32 {
        self.base_pulls + actions.iter().filter(|a| a.kind == ActionKind::Pull).count() as u32
    }

    /// Add requests and sessionise what they change: from the tail when
    /// they all come after the group's last request and the poller flag
    /// holds, else everything.
    pub fn add(&mut self, mut new: Vec<Stored>, window_ms: i64) -> Redo {
        new.sort_by_key(|r| (r.ts_ms, r.id));
        let appended = match (self.reqs.last(), new.first()) {
            (Some(l), Some(f)) => (f.ts_ms, f.id) > (l.ts_ms, l.id),
            _ => false,
        };
        self.reqs.extend(new);
        if appended {
            let k = self.tail.from as usize;
            let actions = self.actions_from(k, window_ms);
            let mut checks = self.tail.checks.clone();
            checks.extend(actions.iter().filter(|a| a.kind == ActionKind::VersionCheck).map(|a| a.first_ts_ms));
            if crate::class::polls(&checks) == self.poller {
                let redo = Redo {
                    from_n: self.tail.n,
                    from_ts: Some(self.reqs[k].ts_ms),
                    pulls: self.base_pulls + self.tail.pulls + count(&actions, ActionKind::Pull),
                    actions,
                };
                self.advance(&redo.actions);
                return redo;
            }
        }
        self.reqs.sort_by_key(|r| (r.ts_ms, r.id));
        let actions = self.actions(window_ms);
        let checks: Vec<i64> = actions.iter().filter(|a| a.kind == ActionKind::VersionCheck).map(|a| a.first_ts_ms).collect();
        self.poller = crate::class::polls(&checks);
        self.tail = Tail::default();
        self.advance(&actions);
        Redo { from_n: 0, from_ts: None, pulls: self.pulls(&actions), actions }
    }

    /// Drop the requests once the raw window has passed; what their actions
    /// counted stays (`base`, `base_pulls`), and their rows are no longer replaced.
    pub fn seal(&mut self, window_ms: i64) {
        let actions = self.actions(window_ms);
        self.base_pulls = self.pulls(&actions);
        self.base += actions.len() as u32;
        self.reqs.clear();
        self.hours.clear();
        self.tail = Tail::default();
        self.sealed = true;
    }

    /// Move the tail to the last action of `actions` (numbered from `tail.n`):
    /// a later request may still join it.
    fn advance(&mut self, actions: &[Action]) {
        if let Some(j) = actions.len().checked_sub(1) {
            self.tail.from = actions[j].first as u32;
            self.tail.n += j as u32;
            self.tail.pulls += count(&actions[..j], ActionKind::Pull);
            self.tail.checks.extend(actions[..j].iter().filter(|a| a.kind == ActionKind::VersionCheck).map(|a| a.first_ts_ms));
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(64 + self.reqs.len() * 48);
        w.push(1u8);
        w.extend_from_slice(&self.header.ip_origin.to_le_bytes());
        w.extend_from_slice(&self.header.ua.to_le_bytes());
        put_str(&mut w, &self.header.country);
        w.extend_from_slice(&self.header.asn.map_or(u64::MAX, u64::from).to_le_bytes());
        put_str(&mut w, &self.header.as_org);
        put_str(&mut w, &self.header.cloud);
        w.extend_from_slice(&self.base.to_le_bytes());
        w.extend_from_slice(&self.base_pulls.to_le_bytes());
        w.push(u8::from(self.sealed));
        match &self.counted {
            Some((route, pulls)) => {
                w.push(1);
                put_str(&mut w, route);
                w.extend_from_slice(&pulls.to_le_bytes());
            }
            None => w.push(0),
        }
        w.extend_from_slice(&(self.hours.len() as u32).to_le_bytes());
        for h in &self.hours {
            w.extend_from_slice(&h.to_le_bytes());
        }
        w.push(u8::from(self.poller));
        for n in [self.tail.from, self.tail.n, self.tail.pulls, self.tail.checks.len() as u32] {
            w.extend_from_slice(&n.to_le_bytes());
        }
        for t in &self.tail.checks {
            w.extend_from_slice(&t.to_le_bytes());
        }
        w.extend_from_slice(&(self.reqs.len() as u32).to_le_bytes());
        for r in &self.reqs {
            w.extend_from_slice(&r.ts_ms.to_le_bytes());
            w.extend_from_slice(&r.id);
            let (tag, reference) = match &r.kind {
                Kind::Manifest { head, reference: Reference::Tag(t) } => (u8::from(!*head), t.as_str()),
                Kind::Manifest { head, reference: Reference::Digest(d) } => (2 + u8::from(!*head), d.as_str()),
                Kind::Blob => (4, ""),
                Kind::File { version } => (5, version.as_deref().unwrap_or("")),
            };
            w.push(tag);
            put_str(&mut w, reference);
            put_str(&mut w, &r.route);
        }
        w
    }

    /// `None` for bytes that [`Group::encode`] did not write.
    pub fn decode(b: &[u8]) -> Option<Group> {
        let mut r = Reader(b);
        if r.u8()? != 1 {
            return None;
        }
        let header = Header {
            ip_origin: r.u64()?,
            ua: r.u64()? as i64,
            country: r.str()?,
            asn: match r.u64()? {
                u64::MAX => None,
                n => Some(u32::try_from(n).ok()?),
            },
            as_org: r.str()?,
            cloud: r.str()?,
        };
        let base = r.u32()?;
        let base_pulls = r.u32()?;
        let sealed = r.u8()? == 1;
        let counted = match r.u8()? {
            1 => Some((r.str()?, r.u32()?)),
            _ => None,
        };
        let hours = (0..r.u32()?).map(|_| r.u64().map(|h| h as i64)).collect::<Option<Vec<_>>>()?;
        let poller = r.u8()? == 1;
        let (from, n, pulls) = (r.u32()?, r.u32()?, r.u32()?);
        let checks = (0..r.u32()?).map(|_| r.u64().map(|t| t as i64)).collect::<Option<Vec<_>>>()?;
        let tail = Tail { from, n, pulls, checks };
        let n = r.u32()?;
        let mut reqs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let ts_ms = r.u64()? as i64;
            let id: [u8; 16] = r.take(16)?.try_into().ok()?;
            let tag = r.u8()?;
            let reference = r.str()?;
            let kind = match tag {
                0 | 1 => Kind::Manifest { head: tag == 0, reference: Reference::Tag(reference) },
                2 | 3 => Kind::Manifest { head: tag == 2, reference: Reference::Digest(reference) },
                4 => Kind::Blob,
                5 => Kind::File { version: (!reference.is_empty()).then_some(reference) },
                _ => return None,
            };
            reqs.push(Stored { ts_ms, id, kind, route: r.str()? });
        }
        Some(Group { header, base, base_pulls, sealed, counted, hours, poller, tail, reqs })
    }
}

fn count(actions: &[Action], kind: ActionKind) -> u32 {
    actions.iter().filter(|a| a.kind == kind).count() as u32
}

/// The hours (sorted, once each) that these actions begin in.
pub fn hours_of(actions: &[Action]) -> Vec<i64> {
    let mut h: Vec<i64> = actions.iter().map(|a| a.first_ts_ms.div_euclid(HOUR_MS)).collect();
    h.sort_unstable();
    h.dedup();
    h
}

pub fn hex(id: &[u8; 16]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(32);
    for b in id {
        s.push(D[usize::from(b >> 4)] as char);
        s.push(D[usize::from(b & 15)] as char);
    }
    s
}

/// A request id (32 hex digits, checked when parsed) as its 16 bytes.
pub fn id_bytes(id: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = id.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    out
}

/// An origin hash (16 hex digits from the shipper) as a number; anything
/// else (an older shipper's text) through FNV-1a, which is stable.
pub fn origin_u64(origin: &str) -> u64 {
    if origin.len() == 16 {
        if let Ok(n) = u64::from_str_radix(origin, 16) {
            return n;
        }
    }
    origin.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    w.extend_from_slice(&(b.len() as u16).to_le_bytes());
    w.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_reads_back_as_written() {
        let g = Group {
            header: Header { ip_origin: 7, ua: 3, country: "NL".into(), asn: Some(1136), as_org: "KPN".into(), cloud: String::new() },
            base: 2,
            base_pulls: 1,
            sealed: false,
            counted: Some(("acme".into(), 3)),
            hours: vec![480_000, 480_001],
            poller: true,
            tail: Tail { from: 1, n: 2, pulls: 1, checks: vec![5, 6] },
            reqs: vec![
                Stored {
                    ts_ms: 1,
                    id: [1; 16],
                    kind: Kind::Manifest { head: true, reference: Reference::Tag("1.0".into()) },
                    route: "acme".into(),
                },
                Stored {
                    ts_ms: 2,
                    id: [2; 16],
                    kind: Kind::Manifest { head: false, reference: Reference::Digest("sha256:ab".into()) },
                    route: "acme".into(),
                },
                Stored { ts_ms: 3, id: [3; 16], kind: Kind::Blob, route: "acme".into() },
                Stored { ts_ms: 4, id: [4; 16], kind: Kind::File { version: Some("1.0".into()) }, route: "files".into() },
            ],
        };
        assert_eq!(Group::decode(&g.encode()), Some(g.clone()));
        assert_eq!(Group::decode(&g.encode()[..20]), None, "a cut record is refused, not misread");
        assert_eq!(id_bytes(&hex(&[0xab; 16])), [0xab; 16]);
        assert_eq!(origin_u64("00000000000000ff"), 255);
    }

    /// Requests added in batches, in order or not: the same actions as all
    /// of them sessionised at once.
    #[test]
    fn adding_in_batches_gives_what_sessionising_all_gives() {
        let mut x: u64 = 0x5851_f42d_4c95_7f2d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let mut t = 0;
            let mut all = Vec::new();
            for n in 0..40u8 {
                t += (next() % 200_000) as i64;
                let r = next();
                let kind = match r % 8 {
                    0..=2 => Kind::Manifest { head: true, reference: Reference::Tag(["1", "2"][(r >> 8) as usize % 2].into()) },
                    3 => Kind::Manifest { head: false, reference: Reference::Tag("1".into()) },
                    4 => Kind::Manifest { head: (r >> 9) % 2 == 0, reference: Reference::Digest("sha256:d".into()) },
                    5 | 6 => Kind::Blob,
                    _ => Kind::File { version: None },
                };
                all.push(Stored { ts_ms: t, id: [n; 16], kind, route: "acme".into() });
            }
            let whole = {
                let mut g = Group { reqs: all.clone(), ..Group::default() };
                g.reqs.sort_by_key(|r| (r.ts_ms, r.id));
                g.actions(60_000)
            };
            // The store's view: actions by number, replaced as redos say.
            let mut g = Group::default();
            let mut have: Vec<Action> = Vec::new();
            let mut rest = all.clone();
            if round % 3 == 0 {
                // Some out of order: a late request now and then.
                rest.swap(5, 20);
            }
            while !rest.is_empty() {
                let take = 1 + (next() % 7) as usize;
                let batch: Vec<Stored> = rest.drain(..take.min(rest.len())).collect();
                let redo = g.add(batch, 60_000);
                have.truncate(redo.from_n as usize);
                have.extend(redo.actions);
                assert_eq!(redo.pulls, count(&have, ActionKind::Pull));
            }
            let key = |a: &Action| (a.kind, a.download, a.first_ts_ms, a.requests, a.tag.clone(), a.digest.clone());
            assert_eq!(have.iter().map(key).collect::<Vec<_>>(), whole.iter().map(key).collect::<Vec<_>>(), "round {round}");
        }
    }
}
