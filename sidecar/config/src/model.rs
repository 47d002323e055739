//! Phase two: routes.yaml as validated, typed values. Everything here has
//! passed its grammar; rendering trusts it (and still escapes it).

use std::collections::HashMap;

pub use super::grammar::{OciUpstream, Origin, Piece, RepoPattern, Scheme};

/// The user agents `auto` redirects when nothing else is configured: the
/// clients that, tested here, keep auth working across a cross-host redirect
/// when the challenge came from the upstream itself: the docker engine and
/// containerd (ctr, nerdctl, Kubernetes' CRI). containers/image clients
/// (podman, skopeo, buildah, CRI-O) drop the token and are proxied.
pub const DEFAULT_REDIRECT_USER_AGENTS: &[&str] = &["^docker/", "^containerd/"];
pub const DEFAULT_LISTEN: &str = "8080";
pub const DEFAULT_TLS_LISTEN: &str = "443";
pub const DEFAULT_ACCESS_LOG: &str = "logs/pullgate.access.log";
pub const DEFAULT_TRUSTED_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The path of a `github:` file route that gives none.
pub const GITHUB_DEFAULT_PATH: &str = "/downloads/{tag}/{file}";

/// What the machine supplies where routes.yaml is silent; read by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// The system's nameservers ([`crate::nameservers`] of /etc/resolv.conf).
    pub resolver: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub gateway: Gateway,
    pub routes: Vec<Route>,
    /// The analytics store `up`, `run` and `serve` use unless a flag names one.
    pub analytics: Option<AnalyticsStore>,
}

/// A ClickHouse store, as routes.yaml names it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsStore {
    /// `clickhouse://HOST:PORT/DATABASE` or `clickhouses://...`, checked by [`crate::grammar::store_url`].
    pub url: String,
    /// Where its `USER:PASSWORD` is.
    pub account: Option<Credentials>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    /// DNS servers for proxying to names: as configured, else the system's.
    pub resolver: Vec<String>,
    /// Whether `resolver` is the system's default rather than routes.yaml's.
    pub resolver_from_system: bool,
    pub access_log: String,
    pub trusted_ca: String,
    pub redirect_user_agents: Vec<String>,
    /// Declared hosts first, in file order, then hosts only named by routes.
    pub hosts: Vec<Host>,
    /// With Redis, route targets live in a table the Lua hooks read.
    pub redis: Option<Redis>,
    /// Where plain HTTP serves `/.well-known/acme-challenge/` from.
    pub acme_webroot: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redis {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub key: String,
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://{}:{}/{}", self.host, self.port, self.db)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub public_url: Option<Origin>,
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    pub cert: String,
    pub key: String,
    /// Plain HTTP answers with a redirect to the host's `https://` public URL.
    pub redirect_http: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// `None`: the route applies to every host.
    pub host: Option<String>,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Oci(OciRoute),
    File(FileRoute),
    Index(IndexRoute),
}

/// The package indexes the gateway serves from its own cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKind {
    Pypi,
    Npm,
    Helm,
}

impl IndexKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Pypi => "pypi",
            IndexKind::Npm => "npm",
            IndexKind::Helm => "helm",
        }
    }

    /// The path a route of this kind is served under when it names none.
    pub fn default_path(self) -> &'static str {
        match self {
            IndexKind::Pypi => "/simple/",
            IndexKind::Npm => "/npm/",
            IndexKind::Helm => "/charts/",
        }
    }
}

/// A package index: documents fetched from `upstream` by the sidecar and
/// served from its cache with every file link on the gateway; each file
/// request is then redirected to where the upstream document says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRoute {
    pub kind: IndexKind,
    /// Begins and ends with `/`.
    pub path: String,
    pub upstream_origin: Origin,
    /// Begins and ends with `/`.
    pub upstream_path: String,
    /// Normalised (PEP 503 for pypi); for helm, empty means every chart.
    pub packages: Vec<String>,
    /// Whether a package not listed is redirected to the upstream's page (else 404).
    pub unknown_upstream: bool,
    /// npm: the public URL of the route's host, which tarball URLs need.
    pub public_url: Option<Origin>,
}

impl IndexRoute {
    /// The upstream base URL, ending in `/`.
    pub fn upstream(&self) -> String {
        format!("{}{}", self.upstream_origin, self.upstream_path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Redirect,
    Proxy,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Redirect => "redirect",
            Mode::Proxy => "proxy",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OciRoute {
    pub image: RepoPattern,
    pub upstream: OciUpstream,
    pub mode: Mode,
    pub redirect_user_agents: Vec<String>,
    /// `None` when neither given nor known for this registry.
    pub auth: Option<UpstreamAuth>,
    /// Where to serve from, in order, while `upstream` is down.
    pub fallbacks: Vec<Fallback>,
    /// Where the gateway finds its own account on the upstream, for tokens.
    pub credentials: Option<Credentials>,
}

/// Where an upstream account's `USER:TOKEN` is: never in routes.yaml itself.
/// The gateway sends it (Basic) when it asks the upstream's token endpoint
/// for a client's token, so pulls count against the account, not against
/// the gateway's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A file holding one line `USER:TOKEN`.
    File(String),
    /// An environment variable of the sidecar holding `USER:TOKEN`.
    Env(String),
}

/// A fallback upstream, with how to get its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub upstream: OciUpstream,
    pub auth: Option<UpstreamAuth>,
}

impl OciRoute {
    /// Whether clients and upstream use different repository names.
    pub fn renames(&self) -> bool {
        self.image != self.upstream.repo
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamAuth {
    /// The registry serves without tokens.
    Anonymous,
    /// Bearer tokens from `realm` for `service`.
    Token { realm: String, service: String },
}

/// The token endpoints of registries everyone uses, so routes to them need no `auth`.
pub fn known_auth(registry_host: &str) -> Option<UpstreamAuth> {
    let (realm, service) = match registry_host {
        "registry-1.docker.io" => ("https://auth.docker.io/token", "registry.docker.io"),
        "ghcr.io" => ("https://ghcr.io/token", "ghcr.io"),
        "quay.io" => ("https://quay.io/v2/auth", "quay.io"),
        "public.ecr.aws" => ("https://public.ecr.aws/token/", "public.ecr.aws"),
        _ => return None,
    };
    Some(UpstreamAuth::Token { realm: realm.into(), service: service.into() })
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileRoute {
    pub path: Vec<Piece>,
    pub upstream_origin: Origin,
    pub upstream_path: Vec<Piece>,
    pub mode: Mode,
}

/// How a host answers the registry ping and hands out tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum HostAuth {
    /// No image routes on this host.
    NoRegistry,
    /// One upstream, no renaming: the upstream's own challenge is passed through.
    PassThrough(Origin),
    /// Renaming or several upstreams: the gateway's own challenge and `/token` endpoint.
    Gateway,
}

impl Config {
    /// Name of the catch-all server, where routes without `host` also apply.
    pub const DEFAULT_HOST: &'static str = "_";

    /// Every server the gateway renders: declared and implied hosts, then the catch-all.
    pub fn server_names(&self) -> impl Iterator<Item = &str> {
        self.gateway.hosts.iter().map(|h| h.name.as_str()).chain(std::iter::once(Self::DEFAULT_HOST))
    }

    /// Routes that serve requests for `server` (a host name or the catch-all).
    pub fn routes_for<'a>(&'a self, server: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| r.host.as_deref().is_none_or(|h| h == server))
    }

    /// Every upstream origin a route can fail over between (primary and
    /// fallbacks of routes that have fallbacks): what health checks watch.
    pub fn failover_origins(&self) -> Vec<Origin> {
        let mut out: Vec<Origin> = Vec::new();
        for r in &self.routes {
            let Target::Oci(o) = &r.target else { continue };
            if o.fallbacks.is_empty() {
                continue;
            }
            for origin in std::iter::once(&o.upstream.origin).chain(o.fallbacks.iter().map(|f| &f.upstream.origin)) {
                if !out.contains(origin) {
                    out.push(origin.clone());
                }
            }
        }
        out
    }

    /// The config as served: each route with fallbacks uses the first of its
    /// upstreams that `healthy` accepts (the primary if none is), and keeps
    /// the others, in order, as its fallbacks.
    pub fn with_health(&self, healthy: impl Fn(&Origin) -> bool) -> Config {
        let mut c = self.clone();
        for r in &mut c.routes {
            let Target::Oci(o) = &mut r.target else { continue };
            let Some(pick) = o.fallbacks.iter().position(|f| healthy(&f.upstream.origin)) else { continue };
            if healthy(&o.upstream.origin) {
                continue;
            }
            let chosen = o.fallbacks.remove(pick);
            let primary = Fallback {
                upstream: std::mem::replace(&mut o.upstream, chosen.upstream),
                auth: std::mem::replace(&mut o.auth, chosen.auth),
            };
            o.fallbacks.insert(0, primary);
        }
        c
    }

    /// Whether a redirect would strand the client without its token: the
    /// upstream needs one, and on some host of this route the challenge came
    /// from the gateway. Clients attach tokens per host, and docker drops
    /// `Authorization` on a redirect to another host, so such a route must be
    /// proxied. `auths` is [`Config::host_auths`].
    pub fn redirect_loses_auth(&self, route: &Route, auths: &HostAuths) -> bool {
        let Target::Oci(oci) = &route.target else { return false };
        matches!(oci.auth, Some(UpstreamAuth::Token { .. })) && self.on_gateway_host(route, auths)
    }

    /// Whether some host `route` serves issues the gateway's own challenge.
    pub fn on_gateway_host(&self, route: &Route, auths: &HostAuths) -> bool {
        match &route.host {
            Some(h) => auths.get(h) == HostAuth::Gateway,
            None => self.server_names().any(|s| auths.get(s) == HostAuth::Gateway),
        }
    }

    /// How every server answers the ping, in one pass over the routes.
    pub fn host_auths(&self) -> HostAuths {
        let mut everywhere = Upstreams::default();
        let mut per_host: HashMap<&str, Upstreams> = HashMap::new();
        for r in &self.routes {
            let Target::Oci(o) = &r.target else { continue };
            match &r.host {
                None => everywhere.add(o),
                Some(h) => per_host.entry(h).or_default().add(o),
            }
        }
        let map = self
            .server_names()
            .map(|s| {
                let mut u = everywhere.clone();
                if let Some(h) = per_host.get(s) {
                    u.merge(h);
                }
                (s.to_string(), u.host_auth())
            })
            .collect();
        HostAuths(map)
    }
}

/// What the image routes of one server point at.
#[derive(Debug, Clone, Default)]
struct Upstreams<'a> {
    first: Option<&'a Origin>,
    several: bool,
    renames: bool,
}

impl<'a> Upstreams<'a> {
    /// A route's primary and its fallbacks: a host keeps one classification
    /// whichever of them is serving.
    fn add(&mut self, o: &'a OciRoute) {
        let all = std::iter::once(&o.upstream).chain(o.fallbacks.iter().map(|f| &f.upstream));
        for u in all {
            self.several |= self.first.is_some_and(|f| *f != u.origin);
            self.first = self.first.or(Some(&u.origin));
            // Credentials need the client's token request to reach the gateway.
            self.renames |= o.image != u.repo || o.credentials.is_some();
        }
    }

    fn merge(&mut self, other: &Upstreams<'a>) {
        self.several |= other.several || matches!((self.first, other.first), (Some(a), Some(b)) if a != b);
        self.first = self.first.or(other.first);
        self.renames |= other.renames;
    }

    fn host_auth(&self) -> HostAuth {
        match self.first {
            None => HostAuth::NoRegistry,
            Some(origin) if !self.several && !self.renames => HostAuth::PassThrough(origin.clone()),
            Some(_) => HostAuth::Gateway,
        }
    }
}

/// [`HostAuth`] by server name.
#[derive(Debug, Clone)]
pub struct HostAuths(HashMap<String, HostAuth>);

impl HostAuths {
    pub fn get(&self, server: &str) -> HostAuth {
        self.0.get(server).cloned().unwrap_or(HostAuth::NoRegistry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths(routes: &str) -> HostAuths {
        let yaml = format!("version: 1\ngateway: {{hosts: [{{name: a.dev}}, {{name: b.dev}}]}}\nroutes:\n{routes}");
        crate::parse(&yaml, "t").unwrap().host_auths()
    }

    #[test]
    fn host_auth_combines_hostless_and_host_routes() {
        let one = "http://127.0.0.2:5000";
        // Host-less routes reach every server; one upstream, same names: pass-through.
        let a = auths(&format!(
            "  - {{name: x, image: x, upstream: \"{one}/x\"}}\n  - {{name: y, host: a.dev, image: y, upstream: \"{one}/y\"}}\n"
        ));
        assert!(matches!(a.get("a.dev"), HostAuth::PassThrough(_)));
        assert!(matches!(a.get("_"), HostAuth::PassThrough(_)));
        // A second upstream on one host only makes that host issue its own challenge.
        let a = auths(&format!("  - {{name: x, image: x, upstream: \"{one}/x\", auth: none}}\n  - {{name: y, host: b.dev, image: y, upstream: \"http://127.0.0.3:5000/y\", auth: none}}\n"));
        assert!(matches!(a.get("a.dev"), HostAuth::PassThrough(_)));
        assert_eq!(a.get("b.dev"), HostAuth::Gateway);
        // Renaming anywhere on a host does too; a host with no image routes has no registry.
        let a = auths(&format!("  - {{name: x, host: a.dev, image: x, upstream: \"{one}/y\", auth: none}}\n"));
        assert_eq!(a.get("a.dev"), HostAuth::Gateway);
        assert_eq!(a.get("b.dev"), HostAuth::NoRegistry);
    }
}
