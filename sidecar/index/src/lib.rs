//! Upstream package indexes, read and written again so that every file link
//! points at the gateway, which then redirects each download to the file's
//! real location. Pure: documents in, documents and a file table out; the
//! fetching, caching and serving are other stages' (see ARCHITECTURE.md).
//!
//! Everything read here comes from an upstream, so from a stranger: names
//! and file names pass strict grammars (what does not is left out and
//! counted), links must be absolute `http(s)` URLs once resolved, and
//! what is written is escaped for where it goes.

pub mod helm;
pub mod npm;
pub mod pypi;

use std::collections::BTreeMap;

use url::Url;

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

/// What the gateway serves for one index route: its documents, and the
/// only places its file paths redirect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Path relative to the route's document directory, and the document.
    pub docs: BTreeMap<String, String>,
    /// Gateway request path (as the client sends it) to the file's real URL.
    pub files: BTreeMap<String, Url>,
    /// Entries of the upstream documents left out (see [`IndexError`]).
    pub refused: usize,
}

impl Served {
    /// Add a file link, unless its path is taken or its target is unsafe; whether it was added.
    pub fn link(&mut self, path: String, target: &Url) -> bool {
        if !safe_target(target) || self.files.contains_key(&path) {
            self.refused += 1;
            return false;
        }
        self.files.insert(path, target.clone());
        true
    }
}

/// Every index route's [`Served`] by route name, and the routes whose
/// upstream failed the last refresh (served from the cache meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub routes: BTreeMap<String, Served>,
    pub stale: std::collections::BTreeSet<String>,
}

/// Where a document's `link` points: resolved against the document's URL
/// `base`, without its fragment (a file's hash, never part of where it is),
/// if that is a [`safe_target`].
pub fn target(base: &Url, link: &str) -> Option<Url> {
    let mut url = base.join(link).ok()?;
    url.set_fragment(None);
    safe_target(&url).then_some(url)
}

/// A redirect target nginx config can hold as a quoted string and a client
/// can follow: `http(s)`, a host, no credentials, no fragment, and only
/// characters that mean nothing to nginx (no quotes, `$`, `;`, braces,
/// backslashes or spaces; the URL parser has percent-encoded the rest).
pub fn safe_target(url: &Url) -> bool {
    let s = url.as_str();
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && s.len() <= 2048
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?[]@!&()*+,=%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_targets() {
        let ok = |s: &str| safe_target(&Url::parse(s).unwrap());
        assert!(ok("https://files.example.org/a/acme_client-1.0-py3-none-any.whl"));
        assert!(ok("http://127.0.0.1:8081/charts/a-1.0.tgz?sig=a%20b&x=1"));
        // What the parser percent-encodes is safe as it is written.
        assert!(ok("https://h/{x}\"y") && Url::parse("https://h/{x}").unwrap().as_str() == "https://h/%7Bx%7D");
        for bad in ["https://u:p@h/x", "https://h/x#f", "ftp://h/x", "https://h/a$b", "https://h/a;b", "https://h/a'b"] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
