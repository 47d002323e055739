//! Phase two: routes.yaml as validated, typed values. Everything here has
//! passed its grammar; rendering trusts it (and still escapes it).

pub use super::grammar::{Origin, OciUpstream, Piece, RepoPattern, Scheme};

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

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub gateway: Gateway,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    pub resolver: Vec<String>,
    pub access_log: String,
    pub trusted_ca: String,
    pub redirect_user_agents: Vec<String>,
    /// Declared hosts first, in file order, then hosts only named by routes.
    pub hosts: Vec<Host>,
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

    /// Whether a redirect would strand the client without its token: the
    /// upstream needs one, and on some host of this route the challenge came
    /// from the gateway. Clients attach tokens per host, and docker drops
    /// `Authorization` on a redirect to another host, so such a route must be
    /// proxied.
    pub fn redirect_loses_auth(&self, route: &Route) -> bool {
        let Target::Oci(oci) = &route.target else { return false };
        if !matches!(oci.auth, Some(UpstreamAuth::Token { .. })) {
            return false;
        }
        let mut servers = self.server_names().filter(|s| route.host.as_deref().is_none_or(|h| h == *s));
        servers.any(|s| self.host_auth(s) == HostAuth::Gateway)
    }

    pub fn host_auth(&self, server: &str) -> HostAuth {
        let oci: Vec<&OciRoute> = self
            .routes_for(server)
            .filter_map(|r| match &r.target {
                Target::Oci(o) => Some(o),
                Target::File(_) => None,
            })
            .collect();
        let Some(first) = oci.first() else { return HostAuth::NoRegistry };
        let one_origin = oci.iter().all(|o| o.upstream.origin == first.upstream.origin);
        if one_origin && !oci.iter().any(|o| o.renames()) {
            HostAuth::PassThrough(first.upstream.origin.clone())
        } else {
            HostAuth::Gateway
        }
    }
}
