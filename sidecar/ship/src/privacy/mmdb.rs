//! Country, autonomous system and its organisation from MaxMind DB files
//! (GeoLite2/GeoIP2 Country or City, GeoLite2-ASN, DB-IP's lite databases,
//! which share the field names). Several files may be given: for each field
//! the first file that knows it wins.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

use super::geo::Country;

pub struct Mmdb {
    readers: Vec<(String, Reader<Vec<u8>>)>,
}

/// What a lookup found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub country: Option<Country>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<CountryRecord<'a>>,
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

impl Mmdb {
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<Mmdb, crate::error::ShipError> {
        let mut readers = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let r =
                Reader::open_readfile(p).map_err(|e| crate::error::ShipError::Input { path: p.to_path_buf(), message: e.to_string() })?;
            tracing::info!(file = %p.display(), kind = %r.metadata().database_type, "MaxMind DB loaded");
            readers.push((p.display().to_string(), r));
        }
        Ok(Mmdb { readers })
    }

    pub fn lookup(&self, ip: IpAddr) -> Found {
        let mut found = Found::default();
        for (_, r) in &self.readers {
            let Ok(Some(rec)) = r.lookup(ip).and_then(|l| l.decode::<Record>()) else { continue };
            if found.country.is_none() {
                found.country = rec.country.and_then(|c| c.iso_code).and_then(Country::parse);
            }
            found.asn = found.asn.or(rec.autonomous_system_number);
            if found.as_org.is_none() {
                found.as_org = rec.autonomous_system_organization.map(str::to_string);
            }
        }
        found
    }
}
