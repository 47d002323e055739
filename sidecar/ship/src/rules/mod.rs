//! The counting rules (DESIGN.md, "Analytics semantics"): what one request
//! is (`request`), and how an origin's requests for a repository become
//! pulls, version checks and downloads (`session`). The analytics stage
//! applies them to shipped events; the shipper applies them on the box to
//! requests with DNT/GPC, which leave it with no origin to group them by.

pub mod request;
pub mod session;
