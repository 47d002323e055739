//! From a parsed line to an event that may leave the box: look the address
//! up while it is at hand (country, ASN, cloud), then drop it for keyed
//! hashes, and redact secrets from query strings.

mod anon;
mod cloud;
pub(crate) mod dnt;
pub(crate) mod enrich;
pub(crate) mod geo;
mod mmdb;
mod scrub;

pub use anon::Anonymiser;
pub use cloud::Clouds;
pub use geo::{Geo, TOR_GEOIP_DIR};
pub use mmdb::Mmdb;
