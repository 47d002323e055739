//! Which cloud an address belongs to, from the providers' published range
//! files, recognised by their format:
//! - AWS `ip-ranges.json`: `prefixes[].ip_prefix`, `ipv6_prefixes[].ipv6_prefix`;
//! - Google Cloud `cloud.json`: `prefixes[].ipv4Prefix` / `ipv6Prefix`;
//! - Azure Service Tags: `values[].properties.addressPrefixes[]`;
//! - Oracle Cloud `public_ip_ranges.json`: `regions[].cidrs[].cidr`.

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

pub struct Clouds {
    /// Ranges as IPv6 numbers (IPv4 mapped), sorted by start: (start, end, provider).
    ranges: Vec<(u128, u128, &'static str)>,
}

fn as_v6(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// `a.b.c.d/n` or `x::/n` as an inclusive range.
fn cidr(s: &str) -> Option<(u128, u128)> {
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let len = match ip {
        IpAddr::V4(_) if len <= 32 => len + 96,
        IpAddr::V6(_) if len <= 128 => len,
        _ => return None,
    };
    let host = if len == 128 { 0 } else { u128::MAX >> len };
    let start = as_v6(ip) & !host;
    Some((start, start | host))
}

/// The provider of a parsed file, and its CIDR strings.
fn strs<'a>(arr: &'a Value, key: &str) -> Vec<&'a str> {
    arr.as_array().into_iter().flatten().filter_map(|p| p[key].as_str()).collect()
}

fn prefixes(v: &Value) -> Option<(&'static str, Vec<&str>)> {
    // Both AWS's and Google's have `syncToken` and `prefixes`; their keys differ.
    let first = &v["prefixes"][0];
    if first["ip_prefix"].is_string() || v["ipv6_prefixes"].is_array() {
        let mut all = strs(&v["prefixes"], "ip_prefix");
        all.extend(strs(&v["ipv6_prefixes"], "ipv6_prefix"));
        return Some(("aws", all));
    }
    if first["ipv4Prefix"].is_string() || first["ipv6Prefix"].is_string() {
        let mut all = strs(&v["prefixes"], "ipv4Prefix");
        all.extend(strs(&v["prefixes"], "ipv6Prefix"));
        return Some(("gcp", all));
    }
    if let Some(values) = v["values"].as_array() {
        let all = values
            .iter()
            .flat_map(|t| t["properties"]["addressPrefixes"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        return Some(("azure", all));
    }
    if let Some(regions) = v["regions"].as_array() {
        let all = regions.iter().flat_map(|r| r["cidrs"].as_array().into_iter().flatten()).filter_map(|c| c["cidr"].as_str()).collect();
        return Some(("oracle", all));
    }
    None
}

impl Clouds {
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Clouds, crate::error::ShipError> {
        let mut ranges = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let unusable = |message: String| crate::error::ShipError::Input { path: p.to_path_buf(), message };
            let text = std::fs::read(p).map_err(|e| unusable(e.to_string()))?;
            let v: Value = serde_json::from_slice(&text).map_err(|e| unusable(e.to_string()))?;
            let (provider, cidrs) = prefixes(&v).ok_or_else(|| {
                unusable("not a range file of AWS (ip-ranges.json), Google Cloud (cloud.json), Azure (Service Tags) or Oracle Cloud".into())
            })?;
            let before = ranges.len();
            ranges.extend(cidrs.iter().filter_map(|c| cidr(c)).map(|(lo, hi)| (lo, hi, provider)));
            tracing::info!(file = %p.display(), provider, ranges = ranges.len() - before, "cloud ranges loaded");
        }
        ranges.sort_unstable();
        Ok(Clouds { ranges })
    }

    /// The provider whose ranges hold `ip`. Ranges of one provider nest
    /// (a region inside a service): the nearest start at or below `ip` is
    /// checked, then earlier ones while they could still cover it.
    pub fn provider(&self, ip: IpAddr) -> Option<&'static str> {
        let x = as_v6(ip);
        let i = self.ranges.partition_point(|r| r.0 <= x);
        self.ranges[..i].iter().rev().take(64).find(|r| r.1 >= x).map(|r| r.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clouds(files: &[&str]) -> Clouds {
        let dir = pullgate_base::fs::scratch_dir(&format!("cloud-{}", files.len()));
        let paths: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let p = dir.join(format!("{i}.json"));
                std::fs::write(&p, f).unwrap();
                p
            })
            .collect();
        Clouds::load(&paths).unwrap()
    }

    #[test]
    fn each_providers_format_is_recognised() {
        let c = clouds(&[
            r#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"},{"ip_prefix":"3.5.140.0/24","service":"S3"}],"ipv6_prefixes":[{"ipv6_prefix":"2600:1f00::/24"}]}"#,
            r#"{"syncToken":"2","creationTime":"x","prefixes":[{"ipv4Prefix":"34.1.208.0/20","service":"Google Cloud"},{"ipv6Prefix":"2600:1900::/35"}]}"#,
            r#"{"changeNumber":1,"cloud":"Public","values":[{"name":"AzureCloud","properties":{"addressPrefixes":["20.33.0.0/16","2603:1000::/40"]}}]}"#,
            r#"{"last_updated_timestamp":"x","regions":[{"region":"us-phoenix-1","cidrs":[{"cidr":"129.146.0.0/21","tags":["OCI"]}]}]}"#,
        ]);
        let at = |ip: &str| c.provider(ip.parse().unwrap());
        assert_eq!(at("3.5.143.255"), Some("aws"), "inside the /22, past the nested /24");
        assert_eq!(at("3.5.144.0"), None);
        assert_eq!(at("2600:1f00::1"), Some("aws"));
        assert_eq!(at("34.1.223.1"), Some("gcp"));
        assert_eq!(at("2600:1900::9"), Some("gcp"));
        assert_eq!(at("20.33.200.1"), Some("azure"));
        assert_eq!(at("2603:1000::1"), Some("azure"));
        assert_eq!(at("129.146.7.7"), Some("oracle"));
        assert_eq!(at("198.51.100.7"), None);
        assert_eq!(at("::ffff:3.5.140.9"), Some("aws"), "IPv4-mapped IPv6");
    }

    #[test]
    fn an_unknown_file_is_an_error() {
        let p = pullgate_base::fs::scratch_dir("cloud-bad").join("bad.json");
        std::fs::write(&p, "{\"foo\":1}").unwrap();
        assert!(Clouds::load(&[&p]).err().unwrap().to_string().contains("not a range file"));
    }
}
