//! Schema v1 access-log lines (docs/access-log.md) and the event that is
//! shipped from them. Parsing accepts unknown extra keys (forward
//! compatible) and rejects, with a reason, anything else that is off.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One access-log line as nginx wrote it. The raw IP is here; it never
/// leaves the box (see [`Event`]). Strings are kept as nginx escaped them
/// (`escape=json`): what is shipped is copied through, not unescaped and
/// escaped again, which was the largest cost of shipping.
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(borrow)]
    pub ts: &'a RawValue,
    #[serde(borrow)]
    pub id: &'a RawValue,
    #[serde(borrow)]
    pub ip: &'a RawValue,
    #[serde(borrow)]
    pub host: &'a RawValue,
    #[serde(borrow)]
    pub method: &'a RawValue,
    #[serde(borrow)]
    pub uri: &'a RawValue,
    pub status: u16,
    pub bytes: u64,
    #[serde(borrow)]
    pub rt: &'a RawValue,
    #[serde(borrow)]
    pub ua: &'a RawValue,
    #[serde(borrow)]
    pub accept: &'a RawValue,
    #[serde(borrow)]
    pub auth: &'a RawValue,
    #[serde(borrow)]
    pub range: &'a RawValue,
    #[serde(borrow)]
    pub dnt: &'a RawValue,
    #[serde(borrow)]
    pub route: &'a RawValue,
    #[serde(borrow)]
    pub upstream: &'a RawValue,
    #[serde(borrow)]
    pub mode: &'a RawValue,
    /// `ts` in milliseconds since the epoch, set by [`Record::parse`].
    #[serde(skip)]
    pub ts_ms: u64,
}

/// What leaves the box: the record without its IP, with keyed hashes in its place.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// Milliseconds since the epoch.
    pub ts_ms: u64,
    pub id: &'a RawValue,
    pub host: &'a RawValue,
    pub method: &'a RawValue,
    /// With query values redacted (see `scrub`).
    pub uri: Cow<'a, RawValue>,
    pub status: u16,
    pub bytes: u64,
    pub rt: &'a RawValue,
    pub ua: &'a RawValue,
    pub accept: &'a RawValue,
    pub auth: &'a RawValue,
    pub range: &'a RawValue,
    pub dnt: bool,
    pub route: &'a RawValue,
    pub upstream: Cow<'a, RawValue>,
    pub mode: &'a RawValue,
    /// Keyed hash of (IP, user agent); absent when DNT/GPC asked not to be tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::ascii::Hex16>,
    /// Keyed hash of the IP (IPv6 cut to /64); absent with DNT/GPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_origin: Option<crate::ascii::Hex16>,
    /// ISO country code of the client's address, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<crate::ascii::Country>,
    /// Autonomous system of the address, and its organisation (from a MaxMind DB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
    /// The cloud provider whose published ranges hold the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// With DNT/GPC: what this request changed in the counts (grouped on the box).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnt_counts: Option<crate::privacy::dnt::DntCounts>,
}

/// The text of a JSON string as written, escapes included, without its quotes.
pub fn text(raw: &RawValue) -> &str {
    let s = raw.get();
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// Why a line was not shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine(pub String);

impl<'a> Record<'a> {
    /// A line as text: the caller decides what bytes that are not UTF-8 become.
    pub fn parse(text: &'a str) -> Result<Record<'a>, BadLine> {
        let text_of = self::text;
        let mut r: Record = serde_json::from_str(text).map_err(|e| BadLine(format!("not a schema v1 line: {e}")))?;
        let strings = [
            ("ts", r.ts),
            ("id", r.id),
            ("ip", r.ip),
            ("host", r.host),
            ("method", r.method),
            ("uri", r.uri),
            ("ua", r.ua),
            ("accept", r.accept),
            ("auth", r.auth),
            ("range", r.range),
            ("dnt", r.dnt),
            ("route", r.route),
            ("upstream", r.upstream),
            ("mode", r.mode),
        ];
        if let Some((key, _)) = strings.iter().find(|(_, v)| !v.get().starts_with('"')) {
            return Err(BadLine(format!("not a schema v1 line: `{key}` is not a string")));
        }
        if !r.rt.get().starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            return Err(BadLine("not a schema v1 line: `rt` is not a number".into()));
        }
        let id = text_of(r.id);
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadLine(format!("`id` is not 32 hex characters: {id:?}")));
        }
        if !matches!(text_of(r.auth), "none" | "basic" | "bearer") {
            return Err(BadLine("`auth` is not none, basic or bearer".into()));
        }
        r.ts_ms = ms_since_epoch(text_of(r.ts)).ok_or_else(|| BadLine(format!("`ts` is not seconds since the epoch: {}", r.ts.get())))?;
        Ok(r)
    }
}

/// nginx's `$msec` (seconds with milliseconds) as milliseconds.
fn ms_since_epoch(seconds: &str) -> Option<u64> {
    let seconds: f64 = seconds.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ts":"1795347790.304","id":"b1e10aa14e207fbb9e1fabf8f527754f","ip":"203.0.113.9","host":"get.acme.dev","method":"GET","uri":"/v2/","status":401,"bytes":86,"rt":0.000,"ua":"docker/27","accept":"*/*","auth":"none","range":"","dnt":"","route":"","upstream":"","mode":"local","future":"ok"}"#;

    #[test]
    fn parses_schema_v1_and_accepts_extra_keys() {
        let r = Record::parse(LINE).unwrap();
        assert_eq!(text(r.host), "get.acme.dev");
        assert_eq!(r.ts_ms, 1_795_347_790_304);
        assert_eq!(r.status, 401);
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("\u{fffd}\u{fffd} garbage".to_string(), "schema v1"),
            ("{\"id\":\"x\"}".to_string(), "schema v1"),
            (LINE.replace("b1e10aa14e207fbb9e1fabf8f527754f", "nope"), "32 hex"),
            (LINE.replace("\"none\"", "\"Bearer abc\""), "auth"),
            (LINE.replace("\"get.acme.dev\"", "7"), "`host` is not a string"),
            (LINE.replace("0.000", "\"0\""), "`rt` is not a number"),
        ] {
            let e = Record::parse(&bad).unwrap_err();
            assert!(e.0.contains(why), "{e:?} lacks {why}");
        }
    }
}
