//! Anonymisation: the raw IP is replaced by keyed hashes under a secret salt
//! that rotates daily (UTC). Salts live in STATE/salts with 0600
//! permissions; salts older than 48 h are deleted, so yesterday's origins
//! cannot be linked to today's once both days are over.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::ascii::Hex16;
use crate::read::record::{text, Event, Record};

/// `raw` (a JSON string) without secrets in its query string.
fn scrubbed(raw: &RawValue) -> Cow<'_, RawValue> {
    match super::scrub::query(text(raw)) {
        Cow::Borrowed(_) => Cow::Borrowed(raw),
        Cow::Owned(o) => Cow::Owned(RawValue::from_string(format!("\"{o}\"")).expect("a JSON string with ASCII put in")),
    }
}

const DAY_MS: u64 = 86_400_000;
/// Salts are kept this long after their day began.
const KEEP_MS: u64 = 2 * DAY_MS;

pub struct Anonymiser {
    dir: PathBuf,
    /// Delete old salts as days pass (the live shipper). An import of old
    /// logs in any order keeps them until it is done ([`Anonymiser::forget_before`]):
    /// a salt deleted mid-import would come back as another one, and split
    /// one client's day into two origins.
    forget_as_days_pass: bool,
    /// The last day used, with its HMAC already keyed (cloned per use:
    /// keying costs two SHA-256 blocks, and the salt changes once a day).
    current: Option<(u64, Hmac<Sha256>)>,
}

impl Anonymiser {
    pub fn new(dir: PathBuf) -> std::io::Result<Anonymiser> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Anonymiser { dir, forget_as_days_pass: true, current: None })
    }

    /// Keep every salt until [`Anonymiser::forget_before`] (for imports).
    pub fn keep_salts(mut self) -> Anonymiser {
        self.forget_as_days_pass = false;
        self
    }

    /// The record as it may leave the box.
    /// `ip` is the record's address, parsed once by the caller.
    pub fn event<'a>(&mut self, r: Record<'a>, ts_ms: u64, ip: Option<IpAddr>) -> std::io::Result<Event<'a>> {
        let dnt = text(r.dnt) == "1";
        let (origin, ip_origin) = if dnt {
            (None, None)
        } else {
            let mac = self.keyed_for(ts_ms / DAY_MS)?;
            let ip = network_of(ip, text(r.ip));
            // The user agent as logged (JSON-escaped): the same agent, the same bytes.
            (Some(keyed(mac.clone(), &[ip.as_bytes(), b"\n", text(r.ua).as_bytes()])), Some(keyed(mac, &[ip.as_bytes()])))
        };
        Ok(Event {
            ts_ms,
            id: r.id,
            host: r.host,
            method: r.method,
            uri: scrubbed(r.uri),
            status: r.status,
            bytes: r.bytes,
            rt: r.rt,
            ua: r.ua,
            accept: r.accept,
            auth: r.auth,
            range: r.range,
            dnt,
            route: r.route,
            upstream: scrubbed(r.upstream),
            mode: r.mode,
            origin,
            ip_origin,
            country: None,
            asn: None,
            as_org: None,
            cloud: None,
            dnt_counts: None,
        })
    }

    /// The HMAC keyed with the salt of `day`.
    fn keyed_for(&mut self, day: u64) -> std::io::Result<Hmac<Sha256>> {
        if let Some((d, mac)) = &self.current {
            if *d == day {
                return Ok(mac.clone());
            }
        }
        let salt = self.salt(day)?;
        let mac = Hmac::<Sha256>::new_from_slice(&salt).expect("any key length");
        self.current = Some((day, mac.clone()));
        Ok(mac)
    }

    /// The salt of `day` (days since the epoch, UTC): created on first use,
    /// 0600; salts older than 48 h are deleted then.
    fn salt(&mut self, day: u64) -> std::io::Result<[u8; 32]> {
        let path = self.dir.join(format!("{day}.salt"));
        let salt = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                let mut salt = [0u8; 32];
                pullgate_base::fs::random_bytes(&mut salt)?;
                pullgate_base::fs::write_atomic_private(&path, &salt)?;
                salt
            }
        };
        if self.forget_as_days_pass {
            self.forget_old(day);
        }
        Ok(salt)
    }

    /// Delete the salts of days more than 48 h before `now_ms`.
    pub fn forget_before(&self, now_ms: u64) {
        self.forget_old(now_ms / DAY_MS);
    }

    fn forget_old(&self, today: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(day) = name.strip_suffix(".salt").and_then(|d| d.parse::<u64>().ok()) else { continue };
            if (today * DAY_MS).saturating_sub(day * DAY_MS) > KEEP_MS {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The address as hashed: IPv4 whole, IPv6 cut to its /64 network; what
/// does not parse, as it was logged.
pub(crate) fn network_of(ip: Option<IpAddr>, logged: &str) -> Cow<'_, str> {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
        Some(IpAddr::V6(v6)) => Cow::Owned(v6.to_ipv4_mapped().expect("checked above").to_string()),
        Some(IpAddr::V4(_)) | None => Cow::Borrowed(logged),
    }
}

/// HMAC-SHA256 of the parts, first 16 bytes as hex.
fn keyed(mut mac: Hmac<Sha256>, parts: &[&[u8]]) -> Hex16 {
    for p in parts {
        mac.update(p);
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 32];
    for (i, b) in digest[..16].iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    Hex16::new(out).expect("hex digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_cut_to_its_network() {
        let net = |s: &str| network_of(s.parse().ok(), s).into_owned();
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:bbbb::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.1"), net("192.0.2.1"), "an IPv4-mapped address is its IPv4 address");
    }

    #[test]
    fn salts_are_private_and_old_ones_go() {
        let dir = pullgate_base::fs::scratch_dir("salts");
        let mut a = Anonymiser::new(dir.clone()).unwrap();
        a.salt(100).unwrap();
        a.salt(103).unwrap();
        let mode = std::fs::metadata(dir.join("103.salt")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join("100.salt").exists(), "a salt older than 48 h survived");
        // An import keeps the salts of the days it reads, whatever their order, until it is done.
        let mut import = Anonymiser::new(dir.clone()).unwrap().keep_salts();
        let (a, b) = (import.salt(200).unwrap(), import.salt(210).unwrap());
        assert_eq!(import.salt(200).unwrap(), a, "a salt was replaced mid-import");
        import.forget_before(210 * DAY_MS);
        assert!(!dir.join("200.salt").exists() && import.salt(210).unwrap() == b);
    }
}
