//! Upstream package indexes, read and written again so that every file link
//! points at the gateway, which then redirects each download to the file's
//! real location. Pure: documents in, documents and a file table out; the
//! fetching, caching and serving are other stages' (see ARCHITECTURE.md).
//!
//! Everything read here comes from an upstream, so from a stranger: names
//! and file names pass strict grammars (what does not is left out and
//! counted), links must be absolute `http(s)` URLs once resolved, and
//! what is written is escaped for where it goes.

pub mod pypi;

/// Why an upstream document could not be read at all. A document that is
/// read, but some of whose entries are refused, is not an error: those
/// entries are left out and counted ([`pypi::Project::refused`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("not a {format} document: {why}")]
    Malformed { format: &'static str, why: String },
    #[error("the index answered for `{got}`, not `{want}`")]
    WrongProject { want: String, got: String },
}
