//! Country of an address, from Debian's tor-geoipdb files (`geoip`: IPv4
//! ranges as integers, `geoip6`: IPv6 ranges; `LOW,HIGH,CC` per line, sorted).
//! Used on the box with the raw address, which is then dropped.

use std::net::IpAddr;
use std::path::Path;

pub use crate::ascii::Country;

/// The default location of the files (Debian's tor-geoipdb).
pub const TOR_GEOIP_DIR: &str = "/usr/share/tor";

pub struct Geo {
    v4: Vec<(u32, u32, Country)>,
    v6: Vec<(u128, u128, Country)>,
    /// For each /16 of IPv4, the first range starting in it or later: a
    /// lookup searches a handful of ranges, not all 200,000 (cache misses
    /// made the plain binary search the largest cost at a steady rate).
    v4_index: Vec<u32>,
}

impl Geo {
    /// Load `geoip` and `geoip6` from `dir`. Lines it cannot read are skipped
    /// and counted in the log; unknown countries (`??`) are left out.
    pub fn load_tor(dir: &Path) -> std::io::Result<Geo> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut skipped = 0usize;
        for line in std::fs::read_to_string(dir.join("geoip"))?.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split(',');
            match (f.next().and_then(|x| x.parse().ok()), f.next().and_then(|x| x.parse().ok()), f.next().and_then(Country::parse)) {
                (Some(lo), Some(hi), Some(cc)) => v4.push((lo, hi, cc)),
                _ => skipped += 1,
            }
        }
        for line in std::fs::read_to_string(dir.join("geoip6"))?.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split(',');
            let ip = |s: Option<&str>| s.and_then(|x| x.parse::<std::net::Ipv6Addr>().ok()).map(u128::from);
            match (ip(f.next()), ip(f.next()), f.next().and_then(Country::parse)) {
                (Some(lo), Some(hi), Some(cc)) => v6.push((lo, hi, cc)),
                _ => skipped += 1,
            }
        }
        v4.sort_unstable();
        v6.sort_unstable();
        tracing::debug!(v4 = v4.len(), v6 = v6.len(), skipped, "geoip loaded");
        let v4_index = (0..=1u64 << 16).map(|h| v4.partition_point(|r| u64::from(r.0) < h << 16) as u32).collect();
        Ok(Geo { v4, v6, v4_index })
    }

    /// The ISO country code of `ip`, if known.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        match ip {
            IpAddr::V4(v4) => self.find_v4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.find_v4(u32::from(v4)),
                None => find(&self.v6, u128::from(v6)),
            },
        }
    }

    /// `find` among the ranges that can hold `x`: those starting in its /16,
    /// and the last one before (it may reach into it).
    fn find_v4(&self, x: u32) -> Option<Country> {
        let h = (x >> 16) as usize;
        let from = (self.v4_index[h] as usize).saturating_sub(1);
        let to = self.v4_index[h + 1] as usize;
        find(&self.v4[from..to], x)
    }
}

/// The country of the range holding `x`, in `ranges` sorted by start.
fn find<T: Ord + Copy>(ranges: &[(T, T, Country)], x: T) -> Option<Country> {
    let i = ranges.partition_point(|r| r.0 <= x).checked_sub(1)?;
    let (lo, hi, cc) = ranges[i];
    (lo <= x && x <= hi).then_some(cc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_both_families_from_tor_format_files() {
        let dir = pullgate_base::fs::scratch_dir("geo");
        std::fs::write(dir.join("geoip"), "# comment\n16777216,16777471,AU\n16777472,16778239,CN\n16778240,16779263,??\n").unwrap();
        std::fs::write(dir.join("geoip6"), "2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP\n").unwrap();
        let g = Geo::load_tor(&dir).unwrap();
        let at = |ip: &str| g.country(ip.parse().unwrap()).map(|c| c.as_str().to_string());
        assert_eq!(at("1.0.0.1").as_deref(), Some("AU"));
        assert_eq!(at("1.0.1.1").as_deref(), Some("CN"));
        assert_eq!(at("1.0.4.1"), None, "?? is unknown");
        assert_eq!(at("127.0.0.1"), None);
        assert_eq!(at("2001:2::5").as_deref(), Some("JP"));
        assert_eq!(at("::ffff:1.0.0.7").as_deref(), Some("AU"));
    }

    #[test]
    fn debians_tor_geoipdb_loads() {
        let dir = Path::new(TOR_GEOIP_DIR);
        assert!(dir.join("geoip").exists(), "tor-geoipdb is not installed (apt-get install tor-geoipdb; tests/run installs it)");
        let g = Geo::load_tor(dir).unwrap();
        assert!(g.v4.len() > 100_000 && g.v6.len() > 100_000, "{} IPv4 and {} IPv6 ranges", g.v4.len(), g.v6.len());
        // The first range of Debian's file, as a spot check.
        assert_eq!(g.country("1.0.0.1".parse().unwrap()), Country::parse("AU"));
        // The /16 index finds what a search of the whole table finds.
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let whole = g.v4.partition_point(|r| r.0 <= x).checked_sub(1).map(|i| g.v4[i]).filter(|r| r.1 >= x).map(|r| r.2);
            assert_eq!(g.country(IpAddr::V4(x.into())), whole, "{x}");
        }
    }
}
