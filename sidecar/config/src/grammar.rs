//! Strict grammars for every value that can reach nginx config.
//!
//! Each check returns the normalised value or a message that says what was
//! expected. None of the accepted forms can carry whitespace, quotes, `;`,
//! `{`, `}`, `$`, `#` or `\` into nginx config: the render filters re-check
//! that as a second line of defence.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

type Check<T> = Result<T, String>;

static ROUTE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9_-]{0,62}$").unwrap());
static HOST_LABEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$").unwrap());
/// One path component of a repository name (OCI distribution spec).
static REPO_COMPONENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").unwrap());
static TEMPLATE_LITERAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._~+-]*$").unwrap());
static TEMPLATE_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z_][a-z0-9_]{0,31}$").unwrap());
static SERVICE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._:-]{1,253}$").unwrap());
static GITHUB_REPO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$").unwrap());
static INDEX_PATH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:/[a-z0-9][a-z0-9._-]{0,62}){1,8}/$").unwrap());
/// PEP 508 project names, before normalisation, and what separates their parts.
static PYPI_PROJECT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$").unwrap());
static PYPI_SEPARATORS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[-_.]+").unwrap());
/// npm names as the registry accepts new ones: lower case, an optional scope.
static NPM_PACKAGE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$").unwrap());
static HELM_CHART: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]{0,62}$").unwrap());
static FILE_PATH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._/+-]{1,4096}$").unwrap());

/// A short, stable identifier used in logs and nginx maps.
pub fn route_name(s: &str) -> Check<String> {
    if ROUTE_NAME.is_match(s) {
        Ok(s.to_string())
    } else {
        Err("expected 1-63 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit".into())
    }
}

/// A DNS host name per RFC 1123, lower case, at most 253 characters.
pub fn hostname(s: &str) -> Check<String> {
    let expected = "expected a DNS name such as `get.acme.dev` (RFC 1123: lower-case letters, digits and `-`, dot-separated labels of 1-63 characters)";
    if s.is_empty() || s.len() > 253 || s.ends_with('.') {
        return Err(expected.into());
    }
    if s.split('.').all(|label| HOST_LABEL.is_match(label)) {
        Ok(s.to_string())
    } else if s.chars().any(|c| c.is_ascii_uppercase()) {
        Err(format!("host names are matched in lower case: write `{}`", s.to_ascii_lowercase()))
    } else {
        Err(expected.into())
    }
}

/// A host as it appears in an upstream: DNS name, IPv4 literal or bracketed IPv6 literal.
pub fn upstream_host(s: &str) -> Check<String> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().map(|ip| format!("[{ip}]")).map_err(|_| format!("`{s}` is not an IPv6 address"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s.parse::<std::net::Ipv4Addr>().map(|ip| ip.to_string()).map_err(|_| format!("`{s}` is not an IPv4 address"));
    }
    hostname(s)
}

/// An OCI repository name: lower-case components separated by `/`, at most 255 characters.
pub fn repository(s: &str) -> Check<String> {
    if !s.is_empty() && s.len() <= 255 && s.split('/').all(|c| REPO_COMPONENT.is_match(c)) {
        Ok(s.to_string())
    } else {
        Err("expected a repository name such as `acme/app` (OCI: lower-case letters and digits, separators `.`, `_`, `__` or `-` inside a component, components joined by `/`)".into())
    }
}

/// What a route's `image` names: one repository, or every repository under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepoPattern {
    Exact(String),
    /// `acme/*` is `Prefix("acme")`; a lone `*` is `Prefix("")`.
    Prefix(String),
}

impl RepoPattern {
    /// Whether the repository `name` is one this pattern serves.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            RepoPattern::Exact(a) => a == name,
            RepoPattern::Prefix(p) => p.is_empty() || name.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/')),
        }
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, RepoPattern::Prefix(_))
    }

    /// Whether some repository name is matched by both patterns.
    pub fn overlaps(&self, other: &RepoPattern) -> bool {
        use RepoPattern::*;
        let under = |name: &str, prefix: &str| prefix.is_empty() || name.starts_with(&format!("{prefix}/"));
        match (self, other) {
            (Exact(a), Exact(b)) => a == b,
            (Exact(a), Prefix(p)) | (Prefix(p), Exact(a)) => under(a, p),
            (Prefix(a), Prefix(b)) => a == b || under(a, b) || under(b, a),
        }
    }
}

impl std::fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoPattern::Exact(n) => f.write_str(n),
            RepoPattern::Prefix(p) if p.is_empty() => f.write_str("*"),
            RepoPattern::Prefix(p) => write!(f, "{p}/*"),
        }
    }
}

pub fn repo_pattern(s: &str) -> Check<RepoPattern> {
    if s == "*" {
        return Ok(RepoPattern::Prefix(String::new()));
    }
    if let Some(prefix) = s.strip_suffix("/*") {
        return repository(prefix).map(RepoPattern::Prefix).map_err(|e| format!("{e}; a glob is a repository name followed by `/*`"));
    }
    if s.contains('*') {
        return Err("a glob may only be `*` or end in `/*`, as in `acme/*`".into());
    }
    repository(s).map(RepoPattern::Exact)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `scheme://host[:port]`, normalised, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn split_scheme(s: &str, default: Option<Scheme>) -> Check<(Scheme, &str)> {
    if let Some(rest) = s.strip_prefix("https://") {
        Ok((Scheme::Https, rest))
    } else if let Some(rest) = s.strip_prefix("http://") {
        Ok((Scheme::Http, rest))
    } else if s.contains("://") {
        Err("only `http://` and `https://` are supported".into())
    } else {
        default.map(|d| (d, s)).ok_or_else(|| "expected an absolute URL starting with `https://` or `http://`".into())
    }
}

fn origin(scheme: Scheme, authority: &str) -> Check<Origin> {
    if authority.contains('@') {
        return Err("credentials in URLs are not allowed".into());
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
            (&authority[..i], Some(port))
        }
        _ => (authority, None),
    };
    let host = upstream_host(host)?;
    let default_port = match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    Ok(Origin { scheme, host, port: port.filter(|p| *p != default_port) })
}

/// An OCI upstream: `[scheme://]host[:port]/repository`, `docker.io` normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciUpstream {
    pub origin: Origin,
    pub repo: RepoPattern,
}

pub fn oci_upstream(s: &str) -> Check<OciUpstream> {
    let expected = "expected `[https://]host[:port]/repository`, e.g. `ghcr.io/acme-org/app`";
    let (scheme, rest) = split_scheme(s, Some(Scheme::Https))?;
    let (authority, repo) = rest.split_once('/').ok_or_else(|| expected.to_string())?;
    if authority.is_empty() {
        return Err(expected.into());
    }
    let mut origin = origin(scheme, authority)?;
    let mut repo = repo_pattern(repo)?;
    if matches!(origin.host.as_str(), "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        origin.host = "registry-1.docker.io".into();
        repo = match repo {
            RepoPattern::Exact(n) if !n.contains('/') => RepoPattern::Exact(format!("library/{n}")),
            RepoPattern::Prefix(p) if p.is_empty() => {
                return Err(
                    "Docker Hub needs a namespace in a glob: use `docker.io/library/*` for official images or `docker.io/ORG/*`".into()
                )
            }
            other => other,
        };
    }
    Ok(OciUpstream { origin, repo })
}

/// An absolute http(s) URL with a plain path and optional query (a token realm).
pub fn plain_url(s: &str) -> Check<(Origin, String)> {
    let (scheme, rest) = split_scheme(s, None)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let origin = origin(scheme, authority)?;
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._~-:".contains(&b)) {
        return Err("the path may contain only letters, digits and `/._~-:` (no query, no percent-encoding)".into());
    }
    Ok((origin, path.to_string()))
}

/// A public URL clients use for a host: `scheme://host[:port]` with no path.
pub fn public_url(s: &str) -> Check<Origin> {
    let (origin, path) = plain_url(s.strip_suffix('/').unwrap_or(s))?;
    if path != "/" {
        return Err("expected only `scheme://host[:port]`, no path".into());
    }
    Ok(origin)
}

/// The `service` parameter of a Bearer challenge.
pub fn service(s: &str) -> Check<String> {
    if SERVICE.is_match(s) {
        Ok(s.to_string())
    } else {
        Err("expected a service name of letters, digits and `._:-`".into())
    }
}

/// A listen address: `PORT`, `IPV4:PORT` or `[IPV6]:PORT`.
pub fn listen(s: &str) -> Check<String> {
    let expected = "expected `PORT`, `IPV4:PORT` or `[IPV6]:PORT`, e.g. `8080` or `127.0.0.1:8080`";
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    if port_ok(s) {
        return Ok(s.to_string());
    }
    let (addr, port) = s.rsplit_once(':').ok_or_else(|| expected.to_string())?;
    if !port_ok(port) {
        return Err(format!("`{port}` is not a port (1-65535)"));
    }
    let ip = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if !addr.starts_with('[') => Ok(format!("{v4}:{port}")),
        Ok(IpAddr::V6(v6)) if addr.starts_with('[') => Ok(format!("[{v6}]:{port}")),
        _ => Err(expected.into()),
    }
}

/// `redis://HOST[:PORT][/DB]` -> (host, port, db).
pub fn redis_url(s: &str) -> Check<(String, u16, u32)> {
    let rest = s.strip_prefix("redis://").ok_or("expected `redis://HOST[:PORT][/DB]`")?;
    if rest.contains('@') {
        return Err("credentials in URLs are not allowed".into());
    }
    let (authority, db) = match rest.split_once('/') {
        Some((a, "")) => (a, 0),
        Some((a, d)) => (a, d.parse().map_err(|_| format!("`{d}` is not a database number"))?),
        None => (rest, 0),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{p}` is not a port (1-65535)"))?)
        }
        _ => (authority, 6379),
    };
    Ok((upstream_host(host)?, port, db))
}

/// An analytics store: `clickhouse://HOST:PORT/DATABASE` (HTTP) or
/// `clickhouses://...` (HTTPS); no account (URLs are logged); a database
/// name of letters, digits and `_`.
pub fn store_url(s: &str) -> Check<String> {
    let rest = s
        .strip_prefix("clickhouse://")
        .or_else(|| s.strip_prefix("clickhouses://"))
        .ok_or("expected `clickhouse://HOST:PORT/DATABASE` (or `clickhouses://` for HTTPS)")?;
    if rest.contains('@') {
        return Err("no account in the URL (it would be logged): give `account: {file: PATH}` or `{env: VARIABLE}`".into());
    }
    let (authority, db) = rest.split_once('/').ok_or("expected a database after the port: `clickhouse://HOST:PORT/DATABASE`")?;
    let (host, port) = authority.rsplit_once(':').ok_or("expected `HOST:PORT` (ClickHouse's HTTP port, often 8123)")?;
    upstream_host(host)?;
    port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
    let db_ok = !db.is_empty()
        && db.len() <= 64
        && db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !db.as_bytes()[0].is_ascii_digit();
    if !db_ok {
        return Err(format!("`{db}` is not a database name: letters, digits and `_`, not starting with a digit"));
    }
    Ok(s.to_string())
}

/// A key prefix for Redis: letters, digits and `:_-`.
pub fn redis_key(s: &str) -> Check<String> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b)) {
        Ok(s.to_string())
    } else {
        Err("expected 1-64 letters, digits and `:_-`".into())
    }
}

/// A DNS server for nginx's `resolver`: an IP address with an optional port.
pub fn resolver(s: &str) -> Check<String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_string());
    }
    listen(s)
        .ok()
        .filter(|l| l.contains(':'))
        .ok_or_else(|| "expected an IP address of a DNS server, optionally with `:PORT` (`[IPV6]:PORT` for IPv6)".into())
}

/// A file path nginx reads or writes: no spaces, quotes or nginx syntax.
/// A GitHub repository, `OWNER/REPO`, as GitHub allows them.
pub fn github_repo(s: &str) -> Check<String> {
    let repo = s.split_once('/').map_or("", |(_, r)| r);
    if !GITHUB_REPO.is_match(s) || repo == "." || repo == ".." {
        return Err("expected `OWNER/REPO` (letters, digits and `-` for the owner; also `.` and `_` for the repository)".into());
    }
    Ok(s.to_string())
}

pub fn file_path(s: &str, must_be_absolute: bool) -> Check<String> {
    if !FILE_PATH.is_match(s) || s.split('/').any(|c| c == "..") {
        return Err("expected a path of letters, digits and `._/+-` without `..`".into());
    }
    if must_be_absolute && !s.starts_with('/') {
        return Err("expected an absolute path".into());
    }
    Ok(s.to_string())
}

/// A user-agent pattern: a regular expression that nginx's PCRE and Rust's
/// regex read the same way, without characters nginx config gives meaning to.
pub fn ua_pattern(s: &str) -> Check<String> {
    if s.is_empty() || s.len() > 200 {
        return Err("expected a non-empty pattern of at most 200 characters".into());
    }
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ') || "\"'`;{}$#\\".contains(*c)) {
        return Err(format!(
            "`{}` is not allowed in a pattern (use `[.]` rather than `\\.`; `$` and `{{n}}` are not supported)",
            bad.escape_default()
        ));
    }
    // nginx compiles these with PCRE2, case-insensitively; so does this check.
    pcre2::bytes::RegexBuilder::new()
        .caseless(true)
        .build(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a valid regular expression (PCRE2): {e}"))
}

/// One piece of a path or URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(String),
    Var(String),
}

/// Split `/downloads/{version}/{file}` into literals and `{name}` placeholders.
pub fn template(s: &str) -> Check<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}').ok_or("a `{` is never closed by `}`")?;
                let name = &rest[1..end];
                if !TEMPLATE_NAME.is_match(name) {
                    return Err(format!("`{{{name}}}`: a placeholder name is a-z, 0-9 and `_`, starting with a letter"));
                }
                if matches!(pieces.last(), Some(Piece::Var(_))) {
                    return Err("two placeholders need a literal between them".into());
                }
                pieces.push(Piece::Var(name.to_string()));
                rest = &rest[end + 1..];
            }
            found => {
                let end = found.unwrap_or(rest.len());
                let lit = &rest[..end];
                if lit.contains('}') {
                    return Err("a `}` has no opening `{`".into());
                }
                pieces.push(Piece::Literal(lit.to_string()));
                rest = &rest[end..];
            }
        }
    }
    Ok(pieces)
}

/// Split a path template and check its literal parts: letters, digits, `/`
/// and `._~+-`, without empty, `.` or `..` segments.
fn checked_path_template(s: &str) -> Check<Vec<Piece>> {
    let pieces = template(s)?;
    for p in &pieces {
        if let Piece::Literal(l) = p {
            let bad_segment = l.split('/').any(|seg| !TEMPLATE_LITERAL.is_match(seg) || seg == "." || seg == "..");
            if bad_segment || l.contains("//") {
                return Err(format!(
                    "`{l}`: literal parts may contain only letters, digits, `/` and `._~+-`, without empty, `.` or `..` segments"
                ));
            }
        }
    }
    Ok(pieces)
}

/// A file route's path template: absolute, with at least one placeholder.
pub fn path_template(s: &str) -> Check<Vec<Piece>> {
    if !s.starts_with('/') {
        return Err("expected an absolute path template such as `/downloads/{version}/{file}`".into());
    }
    let pieces = checked_path_template(s)?;
    if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Err("a file route needs at least one placeholder such as `{file}`".into());
    }
    Ok(pieces)
}

/// A file route's upstream template: an absolute URL whose path may use placeholders.
pub fn url_template(s: &str) -> Check<(Origin, Vec<Piece>)> {
    let (scheme, rest) = split_scheme(s, None)?;
    let slash =
        rest.find('/').ok_or("expected a path after the host, e.g. `https://github.com/acme/app/releases/download/v{version}/{file}`")?;
    let authority = &rest[..slash];
    if authority.contains(['{', '}']) {
        return Err("placeholders may appear only in the path, not in the host".into());
    }
    let origin = origin(scheme, authority)?;
    Ok((origin, checked_path_template(&rest[slash..])?))
}

/// The name of an environment variable: `[A-Z_][A-Z0-9_]*`.
pub fn env_name(s: &str) -> Check<String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected an environment variable name: upper-case letters, digits and `_`, not starting with a digit".into())
    }
}

/// The path a package index is served under: `/simple/`, `/pkgs/npm/`.
pub fn index_path(s: &str) -> Check<String> {
    let s = if s.ends_with('/') { s.to_string() } else { format!("{s}/") };
    if !INDEX_PATH.is_match(&s) || s.split('/').any(|c| c == "." || c == "..") {
        return Err("expected a path such as `/simple/`: lower-case segments of letters, digits and `._-`".into());
    }
    if ["/v2/", "/token/", "/.well-known/"].iter().any(|p| s.starts_with(p)) {
        return Err("`/v2/`, `/token` and `/.well-known/` belong to the registry and ACME".into());
    }
    Ok(s)
}

/// An index route's upstream: an absolute `http(s)` URL of a directory (a
/// trailing `/` is added when missing).
pub fn index_upstream(s: &str) -> Check<(Origin, String)> {
    let (origin, path) = plain_url(s)?;
    let path = if path.ends_with('/') { path } else { format!("{path}/") };
    if path.contains("//") || path.split('/').any(|c| c == "." || c == "..") {
        return Err("expected a plain path without empty, `.` or `..` segments".into());
    }
    Ok((origin, path))
}

/// A Python project name, normalised as PEP 503 says (`Acme_Client` is `acme-client`).
pub fn pypi_project(s: &str) -> Check<String> {
    if !PYPI_PROJECT.is_match(s) {
        return Err(
            "expected a Python project name (PEP 508): letters, digits and `._-`, beginning and ending with a letter or digit".into()
        );
    }
    Ok(PYPI_SEPARATORS.replace_all(s, "-").to_ascii_lowercase())
}

/// An npm package name: `name` or `@scope/name`, lower case.
pub fn npm_package(s: &str) -> Check<String> {
    if s.len() > 214 || !NPM_PACKAGE.is_match(s) {
        return Err("expected an npm package name, `name` or `@scope/name`: lower-case letters, digits and `._-`".into());
    }
    Ok(s.to_string())
}

/// A Helm chart name.
pub fn helm_chart(s: &str) -> Check<String> {
    if !HELM_CHART.is_match(s) {
        return Err("expected a chart name: lower-case letters, digits and `._-`".into());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn store_urls_name_a_clickhouse_database_and_no_account() {
        assert_eq!(store_url("clickhouse://ch.internal:8123/pullgate").as_deref(), Ok("clickhouse://ch.internal:8123/pullgate"));
        assert!(store_url("clickhouses://10.0.0.5:8443/stats_1").is_ok());
        for bad in [
            "clickhouse://u:p@ch:8123/db",
            "clickhouse://ch/db",
            "clickhouse://ch:8123/",
            "clickhouse://ch:8123/1db",
            "clickhouse://ch:8123/d-b",
            "clickhouse://ch:0/db",
            "http://ch:8123/db",
            "clickhouse://ch ch:8123/db",
        ] {
            assert!(store_url(bad).is_err(), "{bad}");
        }
        assert!(!store_url("clickhouse://u:secret@ch:8123/db").unwrap_err().contains("secret"));
    }

    use super::*;

    #[test]
    fn docker_hub_is_normalised() {
        let u = oci_upstream("docker.io/nginx").unwrap();
        assert_eq!(u.origin.to_string(), "https://registry-1.docker.io");
        assert_eq!(u.repo, RepoPattern::Exact("library/nginx".into()));
        assert!(oci_upstream("docker.io/*").is_err());
    }

    #[test]
    fn upstream_forms() {
        let u = oci_upstream("http://127.0.0.2:5000/acme/app").unwrap();
        assert_eq!(u.origin.to_string(), "http://127.0.0.2:5000");
        assert_eq!(oci_upstream("https://ghcr.io:443/a").unwrap().origin.to_string(), "https://ghcr.io");
        for bad in ["ghcr.io", "ftp://x/y", "user:pw@ghcr.io/a", "ghcr.io/A", "gh cr.io/a", "ghcr.io/a//b", "ghcr.io/a;b", "[::1/a"] {
            assert!(oci_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_overlap() {
        let p = |s| repo_pattern(s).unwrap();
        assert!(p("acme/*").overlaps(&p("acme/app")));
        assert!(p("acme/*").overlaps(&p("acme/x/*")));
        assert!(!p("acme/*").overlaps(&p("acmex/app")));
        assert!(p("*").overlaps(&p("z")));
        assert!(!p("acme").overlaps(&p("acme/app")));
    }

    #[test]
    fn templates() {
        assert_eq!(path_template("/d/{v}/{f}").unwrap().len(), 4);
        assert!(path_template("/d/{v}{f}").is_err());
        assert!(path_template("/d/../{f}").is_err());
        assert!(path_template("/d/{V}").is_err());
        assert!(url_template("https://{h}.io/{f}").is_err());
        assert!(url_template("https://x.io/fixed.tar.gz").is_ok());
        // Rust's regex accepts stacked repetition; PCRE2 (nginx) does not.
        assert!(ua_pattern("app~**").is_err());
        assert!(ua_pattern("^docker/|^containerd/").is_ok());
        assert!(url_template("http://x.io/app\";return 302 http://evil/;#").is_err());
    }
}
