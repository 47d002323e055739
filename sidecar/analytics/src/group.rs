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
    pub reqs: Vec<Stored>,
}

impl Group {
    /// Sessionise the requests (kept in (time, id) order, which is the
    /// order sessionising takes them in, so an action's `first` indexes
    /// `reqs` too); the actions are numbered from `base`.
    pub fn actions(&self, window_ms: i64) -> Vec<Action> {
        debug_assert!(self.reqs.windows(2).all(|w| (w[0].ts_ms, w[0].id) <= (w[1].ts_ms, w[1].id)));
        let mut reqs: Vec<Req> = self.reqs.iter().map(|r| Req { ts_ms: r.ts_ms, id: hex(&r.id), kind: r.kind.clone() }).collect();
        sessionise(&mut reqs, window_ms)
    }

    /// Pulls of all its actions (sealed ones included).
    pub fn pulls(&self, actions: &[Action]) -> u32 {
        self.base_pulls + actions.iter().filter(|a| a.kind == ActionKind::Pull).count() as u32
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
        w.extend_from_slice(&(self.reqs.len() as u32).to_le_bytes());
        for r in &self.reqs {
            w.extend_from_slice(&r.ts_ms.to_le_bytes());
            w.extend_from_slice(&r.id);
            let (tag, reference) = match &r.kind {
                Kind::Manifest { head, reference: Reference::Tag(t) } => (u8::from(!*head), t.as_str()),
                Kind::Manifest { head, reference: Reference::Digest(d) } => (2 + u8::from(!*head), d.as_str()),
                Kind::Blob => (4, ""),
                Kind::File => (5, ""),
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
                5 => Kind::File,
                _ => return None,
            };
            reqs.push(Stored { ts_ms, id, kind, route: r.str()? });
        }
        Some(Group { header, base, base_pulls, sealed, counted, hours, reqs })
    }
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
                Stored { ts_ms: 4, id: [4; 16], kind: Kind::File, route: "files".into() },
            ],
        };
        assert_eq!(Group::decode(&g.encode()), Some(g.clone()));
        assert_eq!(Group::decode(&g.encode()[..20]), None, "a cut record is refused, not misread");
        assert_eq!(id_bytes(&hex(&[0xab; 16])), [0xab; 16]);
        assert_eq!(origin_u64("00000000000000ff"), 255);
    }
}
