//! What one shipped request is, for analytics: a manifest request (by tag
//! or digest), a blob request, a file download, or nothing that counts.
//! Only GET and HEAD answered 2xx or 3xx count; a 404 is neither a pull nor
//! a check. What the gateway answers itself (mode `local`: an index page, a
//! packument, a Helm `index.yaml`) is a request only.
//!
//! A file of a package index is counted under its package, with its
//! version, read from the gateway's own URL layout: `.../NAME/-/NAME-V.tgz`
//! (npm), `.../PROJECT/FILE` whose name begins with the project's
//! (Python wheels and sdists, Helm charts). Any other file is counted under
//! its path.

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
    /// A file route's artifact, or a package index's file, with its version when known.
    File {
        version: Option<String>,
    },
}

/// A request that counts: its repository (for a file, its package, else its path) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub repository: String,
    pub kind: Kind,
}

/// Classify a request by method, path (query ignored), status, route and mode.
/// `None`: it counts only as a request (a ping, a token, a 404, a write, a page).
pub fn classify(method: &str, uri: &str, status: u16, route: &str, mode: &str) -> Option<Counted> {
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
        if head || path == "/token" || mode == "local" {
            return None;
        }
        return Some(match artifact(path) {
            Some((package, version)) => Counted { repository: package, kind: Kind::File { version: Some(version) } },
            None => Counted { repository: path.to_string(), kind: Kind::File { version: None } },
        });
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

/// The package and version of a package index's file, from its path.
fn artifact(path: &str) -> Option<(String, String)> {
    let (dir, file) = path.rsplit_once('/')?;
    if let Some(package_dir) = dir.strip_suffix("/-") {
        // npm: NAME/-/NAME-VERSION.tgz, NAME maybe @SCOPE/NAME.
        let (parent, name) = package_dir.rsplit_once('/')?;
        let scope = parent.rsplit('/').next().filter(|s| s.starts_with('@'));
        let version = file.strip_prefix(name)?.strip_prefix('-')?.strip_suffix(".tgz")?;
        let package = scope.map_or_else(|| name.to_string(), |s| format!("{s}/{name}"));
        return (!version.is_empty() && !name.is_empty()).then(|| (package, version.to_string()));
    }
    let package = dir.rsplit('/').next().filter(|p| !p.is_empty())?;
    let stem = if let Some(wheel) = file.strip_suffix(".whl") {
        // NAME-VERSION(-BUILD)?-PY-ABI-PLATFORM: the version is the second part.
        let mut parts = wheel.splitn(3, '-');
        let (name, version) = (parts.next()?, parts.next()?);
        return (same_name(name, package) && !version.is_empty()).then(|| (package.to_string(), version.to_string()));
    } else {
        [".tar.gz", ".tgz", ".zip", ".tar.bz2"].iter().find_map(|ext| file.strip_suffix(ext))?
    };
    // NAME-VERSION, where NAME may itself hold `-`.
    stem.match_indices('-').find_map(|(i, _)| {
        let version = &stem[i + 1..];
        (same_name(&stem[..i], package) && version.starts_with(|c: char| c.is_ascii_digit()))
            .then(|| (package.to_string(), version.to_string()))
    })
}

/// Names equal once `-`, `_` and `.` runs are one separator, case aside (PEP 503).
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            let c = if matches!(c, '-' | '_' | '.') { '-' } else { c.to_ascii_lowercase() };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        out
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> Reference {
        Reference::Tag(t.into())
    }

    #[test]
    fn manifests_blobs_files_and_what_does_not_count() {
        let m = |method, uri, status| classify(method, uri, status, "r", "redirect");
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
            Some(("/downloads/1.0/app.tgz".into(), Kind::File { version: None }))
        );
        let file = |uri| m("GET", uri, 307).map(|c| (c.repository, c.kind));
        let v = |p: &str, v: &str| Some((p.to_string(), Kind::File { version: Some(v.into()) }));
        assert_eq!(file("/simple/acme-client/acme_client-1.0.0-py3-none-any.whl"), v("acme-client", "1.0.0"));
        assert_eq!(file("/simple/acme-client/acme_client-1.0.0-1-py3-none-any.whl"), v("acme-client", "1.0.0"));
        assert_eq!(file("/simple/acme-client/Acme.Client-2.0rc1.tar.gz"), v("acme-client", "2.0rc1"));
        assert_eq!(file("/npm/@acme/cli/-/cli-1.2.3-beta.1.tgz"), v("@acme/cli", "1.2.3-beta.1"));
        assert_eq!(file("/npm/left-pad/-/left-pad-1.3.0.tgz"), v("left-pad", "1.3.0"));
        assert_eq!(file("/charts/my-chart/my-chart-0.1.0.tgz"), v("my-chart", "0.1.0"));
        assert_eq!(
            file("/simple/acme-client/other-1.0.tar.gz"),
            Some(("/simple/acme-client/other-1.0.tar.gz".into(), Kind::File { version: None }))
        );
        assert_eq!(classify("GET", "/simple/acme-client/", 200, "py", "local"), None, "a page the gateway serves is a request only");
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
        assert_eq!(classify("GET", "/v2/acme/app/manifests/1.0", 200, "", "redirect"), None, "no route: nothing served");
    }
}
