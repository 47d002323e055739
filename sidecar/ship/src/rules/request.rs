//! What one shipped request is, for analytics: a manifest request (by tag
//! or digest), a blob request, a file download, or nothing that counts.
//! Only GET and HEAD answered 2xx or 3xx count; a 404 is neither a pull nor
//! a check.

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Manifest {
        head: bool,
        reference: Reference,
    },
    Blob,
    /// A file route's artifact (release files, later Helm and Python packages).
    File,
}

/// A request that counts: its repository (or, for a file, its path) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub repository: String,
    pub kind: Kind,
}

/// Classify a request by method, path (query ignored), status and mode.
/// `None`: it counts only as a request (a ping, a token, a 404, a write).
pub fn classify(method: &str, uri: &str, status: u16, route: &str) -> Option<Counted> {
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if !(200..400).contains(&status) || route.is_empty() {
        return None;
    }
    let path = uri.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/v2/") else {
        // A file route: the artifact's path (a token request carries its scope's route).
        return (!head && path != "/token").then(|| Counted { repository: path.to_string(), kind: Kind::File });
    };
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        let reference =
            if reference.contains(':') { Reference::Digest(reference.to_string()) } else { Reference::Tag(reference.to_string()) };
        return Some(Counted { repository: name.to_string(), kind: Kind::Manifest { head, reference } });
    }
    if let Some((name, _digest)) = rest.rsplit_once("/blobs/") {
        return (!head).then(|| Counted { repository: name.to_string(), kind: Kind::Blob });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> Reference {
        Reference::Tag(t.into())
    }

    #[test]
    fn manifests_blobs_files_and_what_does_not_count() {
        let m = |method, uri, status| classify(method, uri, status, "r");
        assert_eq!(
            m("HEAD", "/v2/acme/app/manifests/1.0", 200),
            Some(Counted { repository: "acme/app".into(), kind: Kind::Manifest { head: true, reference: tag("1.0") } })
        );
        assert_eq!(
            m("GET", "/v2/acme/app/manifests/sha256:ab", 307).map(|c| c.kind),
            Some(Kind::Manifest { head: false, reference: Reference::Digest("sha256:ab".into()) })
        );
        assert_eq!(m("GET", "/v2/acme/app/blobs/sha256:cd", 200).map(|c| c.kind), Some(Kind::Blob));
        assert_eq!(
            m("GET", "/downloads/1.0/app.tgz?x=1", 307).map(|c| (c.repository, c.kind)),
            Some(("/downloads/1.0/app.tgz".into(), Kind::File))
        );
        for (method, uri, status) in [
            ("GET", "/v2/acme/app/manifests/1.0", 404),
            ("GET", "/v2/", 200),
            ("GET", "/token?scope=x", 200),
            ("PUT", "/v2/acme/app/manifests/1.0", 201),
            ("GET", "/v2/acme/app/tags/list", 200),
            ("HEAD", "/v2/acme/app/blobs/sha256:cd", 200),
        ] {
            assert_eq!(m(method, uri, status), None, "{method} {uri} {status}");
        }
        assert_eq!(classify("GET", "/v2/acme/app/manifests/1.0", 200, ""), None, "no route: nothing served");
    }
}
