//! A shipped event (docs/shipping.md): one JSON object per line, as the
//! shipper writes it to the local sink or CloudWatch Logs. Unknown keys are
//! accepted (forward compatible).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Shipped {
    pub ts_ms: i64,
    pub id: String,
    pub method: String,
    pub uri: String,
    pub status: u16,
    #[serde(default)]
    pub ua: String,
    #[serde(default)]
    pub dnt: bool,
    #[serde(default)]
    pub route: String,
    /// How the gateway answered: `redirect`, `proxy`, `local` (itself).
    #[serde(default)]
    pub mode: String,
    /// Keyed hash of (IP, user agent) under the day's salt; absent with DNT/GPC.
    pub origin: Option<String>,
    /// Keyed hash of the IP alone (IPv6 /64); absent with DNT/GPC.
    pub ip_origin: Option<String>,
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub cloud: Option<String>,
    /// With DNT/GPC: what the request changed in the counts, grouped by the shipper.
    #[serde(default)]
    pub dnt_counts: Option<pullgate_ship::DntCounts>,
}

impl Shipped {
    pub fn parse(line: &str) -> Result<Shipped, String> {
        let e: Shipped = serde_json::from_str(line).map_err(|e| format!("not a shipped event: {e}"))?;
        if e.id.len() != 32 || !e.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`id` is not 32 hex characters: {:?}", e.id));
        }
        Ok(e)
    }
}
