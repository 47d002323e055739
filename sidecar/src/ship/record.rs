//! Schema v1 access-log lines (docs/access-log.md) and the event that is
//! shipped from them. Parsing accepts unknown extra keys (forward
//! compatible) and rejects, with a reason, anything else that is off.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One access-log line as nginx wrote it. The raw IP is here; it never
/// leaves the box (see [`Event`]).
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub ip: Cow<'a, str>,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow)]
    pub uri: Cow<'a, str>,
    pub status: u16,
    pub bytes: u64,
    pub rt: f64,
    #[serde(borrow)]
    pub ua: Cow<'a, str>,
    #[serde(borrow)]
    pub accept: Cow<'a, str>,
    #[serde(borrow)]
    pub auth: Cow<'a, str>,
    #[serde(borrow)]
    pub range: Cow<'a, str>,
    #[serde(borrow)]
    pub dnt: Cow<'a, str>,
    #[serde(borrow)]
    pub route: Cow<'a, str>,
    #[serde(borrow)]
    pub upstream: Cow<'a, str>,
    #[serde(borrow)]
    pub mode: Cow<'a, str>,
}

/// What leaves the box: the record without its IP, with keyed hashes in its place.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Event<'a> {
    /// Milliseconds since the epoch.
    pub ts_ms: u64,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow)]
    pub uri: Cow<'a, str>,
    pub status: u16,
    pub bytes: u64,
    pub rt: f64,
    #[serde(borrow)]
    pub ua: Cow<'a, str>,
    #[serde(borrow)]
    pub accept: Cow<'a, str>,
    #[serde(borrow)]
    pub auth: Cow<'a, str>,
    #[serde(borrow)]
    pub range: Cow<'a, str>,
    pub dnt: bool,
    #[serde(borrow)]
    pub route: Cow<'a, str>,
    #[serde(borrow)]
    pub upstream: Cow<'a, str>,
    #[serde(borrow)]
    pub mode: Cow<'a, str>,
    /// Keyed hash of (IP, user agent); absent when DNT/GPC asked not to be tracked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub origin: Option<String>,
    /// Keyed hash of the IP (IPv6 cut to /64); absent with DNT/GPC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip_origin: Option<String>,
    /// ISO country code of the client's address, where known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
    /// Autonomous system of the address, and its organisation (from a MaxMind DB).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub as_org: Option<String>,
    /// The cloud provider whose published ranges hold the address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cloud: Option<String>,
}

/// Why a line was not shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

impl<'a> Record<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Record<'a>, BadLine> {
        let text = std::str::from_utf8(line).map_err(|e| BadLine(format!("not UTF-8: {e}")))?;
        let r: Record = serde_json::from_str(text).map_err(|e| BadLine(format!("not a schema v1 line: {e}")))?;
        if r.id.len() != 32 || !r.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadLine(format!("`id` is not 32 hex characters: {:?}", r.id)));
        }
        if !matches!(r.auth.as_ref(), "none" | "basic" | "bearer") {
            return Err(BadLine("`auth` is not none, basic or bearer".into()));
        }
        r.ts_ms().ok_or_else(|| BadLine(format!("`ts` is not seconds since the epoch: {:?}", r.ts)))?;
        Ok(r)
    }

    pub fn ts_ms(&self) -> Option<u64> {
        let seconds: f64 = self.ts.parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ts":"1795347790.304","id":"b1e10aa14e207fbb9e1fabf8f527754f","ip":"203.0.113.9","host":"get.acme.dev","method":"GET","uri":"/v2/","status":401,"bytes":86,"rt":0.000,"ua":"docker/27","accept":"*/*","auth":"none","range":"","dnt":"","route":"","upstream":"","mode":"local","future":"ok"}"#;

    #[test]
    fn parses_schema_v1_and_accepts_extra_keys() {
        let r = Record::parse(LINE.as_bytes()).unwrap();
        assert!(matches!(r.host, std::borrow::Cow::Borrowed(_)), "strings without escapes are borrowed");
        assert_eq!(r.ts_ms(), Some(1_795_347_790_304));
        assert_eq!(r.status, 401);
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            (&b"\xff\xfe garbage"[..], "UTF-8"),
            (b"{\"id\":\"x\"}", "schema v1"),
            (LINE.replace("b1e10aa14e207fbb9e1fabf8f527754f", "nope").as_bytes(), "32 hex"),
            (LINE.replace("\"none\"", "\"Bearer abc\"").as_bytes(), "auth"),
        ] {
            let e = Record::parse(bad).unwrap_err();
            assert!(e.0.contains(why), "{e:?} lacks {why}");
        }
    }
}
