//! Phase one: routes.yaml as written, before any value is trusted.
//!
//! Every leaf is kept as the user wrote it (strings, lists of strings); the
//! grammar checks live in `validate`. Unknown keys are captured rather than
//! rejected by serde, so that `validate` can report all of them at once, each
//! with its line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// Keys nobody declared, kept for the error report.
pub type Unknown = BTreeMap<String, serde_yaml::Value>;

/// routes.yaml, version 1.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "pullgate routes.yaml (version 1)")]
pub struct RawFile {
    /// Format version; must be 1.
    pub version: Option<u32>,
    /// Settings that apply to the whole gateway.
    #[serde(default)]
    pub gateway: RawGateway,
    /// What the gateway serves; anything not listed here is answered 404.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Where `up` and `run` (and their dashboard) keep and read the analytics, when no
    /// `--store` or `--db` is given. Default: SQLite in the state directory.
    pub analytics: Option<RawAnalytics>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAnalytics {
    /// A ClickHouse store shared by several nodes: `clickhouse://HOST:PORT/DATABASE`
    /// (`clickhouses://` for HTTPS). No account in the URL.
    pub store: Option<String>,
    /// The store's account: `{file: PATH}` or `{env: VARIABLE}`, holding
    /// `USER:PASSWORD`; never the secret itself.
    pub account: Option<RawCredentials>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawGateway {
    /// Plain-HTTP listen addresses: `PORT`, `IPV4:PORT` or `[IPV6]:PORT`. Default `8080`.
    pub listen: Option<Vec<String>>,
    /// TLS listen addresses, used by hosts that have `tls`. Default `443`.
    pub tls_listen: Option<Vec<String>>,
    /// DNS servers nginx uses to resolve upstream host names when it proxies.
    pub resolver: Option<Vec<String>>,
    /// Access log path (schema v1 JSON lines); relative paths are under the nginx prefix.
    pub access_log: Option<String>,
    /// CA bundle used to verify upstream TLS certificates when proxying.
    pub trusted_ca: Option<String>,
    /// Default user-agent patterns (case-insensitive regular expressions) that `auto` redirects.
    pub redirect_user_agents: Option<Vec<String>>,
    /// Host names the gateway answers for, with their public URL and TLS files.
    pub hosts: Option<Vec<RawHost>>,
    /// Directory whose `.well-known/acme-challenge/` plain HTTP serves on
    /// every host (certbot's `--webroot`), even where `tls.redirect_http` is on.
    pub acme_webroot: Option<String>,
    /// Redis shared by the gateway nodes: route targets then change without a
    /// reload (needs nginx's Lua module). Without it, every change reloads.
    pub redis: Option<RawRedis>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://HOST[:PORT][/DB]` (no credentials).
    pub url: Option<String>,
    /// Prefix of the keys pullgate uses. Default `pullgate`.
    pub key: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHost {
    /// DNS name (RFC 1123, lower case).
    pub name: Option<String>,
    /// Absolute URL clients use to reach this host, e.g. `https://get.acme.dev`; used for the token realm.
    pub public_url: Option<String>,
    /// Certificate and key for TLS on this host.
    pub tls: Option<RawTls>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain file (absolute path).
    pub cert: Option<String>,
    /// PEM private key file (absolute path).
    pub key: Option<String>,
    /// Answer plain HTTP for this host with a redirect (301) to its
    /// `public_url` (which must be `https://`), but for the ACME challenge.
    /// Default false: plain HTTP serves the same routes.
    pub redirect_http: Option<bool>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique route name; appears in the access log and in analytics.
    pub name: Option<String>,
    /// `oci` (container images, the default), `file` (release files and other
    /// artifacts), or a package index: `pypi` (a PEP 503/691 simple index),
    /// `npm` (an npm registry) or `helm` (a chart repository).
    pub kind: Option<String>,
    /// Host this route belongs to; without it the route applies to every host.
    pub host: Option<String>,
    /// (oci) Repository name clients ask for, exact (`app`) or a trailing glob (`acme/*`, `*`).
    pub image: Option<String>,
    /// (file) Path template, e.g. `/downloads/{version}/{file}`.
    /// (pypi, npm, helm) The path the index is served under, beginning and ending
    /// in `/`; default `/simple/`, `/npm/`, `/charts/`.
    pub path: Option<String>,
    /// (oci) `[scheme://]host[:port]/repository`, ending in `/*` when `image` is a glob.
    /// (file) URL template using the names declared in `path`.
    /// (pypi) The upstream simple index, e.g. `https://pypi.org/simple/`.
    /// (npm) The upstream registry, e.g. `https://registry.npmjs.org/`.
    /// (helm) The upstream chart repository (the URL `index.yaml` is under).
    pub upstream: Option<String>,
    /// (pypi, npm) The packages the gateway serves, by name; (helm) the
    /// charts of the repository it serves (default: all of them).
    pub packages: Option<Vec<String>>,
    /// (pypi, npm) A package not in `packages`: `404` (the default), or
    /// `upstream`: a redirect to the upstream's own page for it.
    #[serde(rename = "unknown")]
    pub unknown_packages: Option<RawAnswer>,
    /// (file) Instead of `upstream`: a GitHub repository `OWNER/REPO`, whose
    /// release assets are `https://github.com/OWNER/REPO/releases/download/{tag}/{file}`.
    /// `path` then declares `{tag}` and `{file}`; default `/downloads/{tag}/{file}`.
    pub github: Option<String>,
    /// `auto` (oci default: redirect clients matching `redirect_user_agents`, proxy the rest),
    /// `redirect` (file default) or `proxy`.
    pub mode: Option<String>,
    /// (oci) Upstreams to serve from, in order, while `upstream` is down (dual publishing).
    /// Same form as `upstream`.
    pub fallback: Option<Vec<String>>,
    /// (oci) User-agent patterns that `auto` redirects, replacing the gateway default.
    pub redirect_user_agents: Option<Vec<String>>,
    /// (oci) How the gateway obtains an upstream token when it issues its own challenge:
    /// `none` (anonymous registry) or a map with `realm` and `service`.
    /// Known registries (Docker Hub, GHCR, Quay, ECR Public) need nothing.
    pub auth: Option<RawAuth>,
    /// (oci) The gateway's own account on the upstream, `USER:TOKEN`, for
    /// the token endpoint: `{file: PATH}` or `{env: VARIABLE}`, never the
    /// secret itself. The host then issues its own challenge and proxies.
    pub credentials: Option<RawCredentials>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCredentials {
    /// A file holding one line `USER:TOKEN` (absolute path).
    pub file: Option<String>,
    /// An environment variable of the sidecar holding `USER:TOKEN`.
    pub env: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// `404` or `upstream`, as a number or a word.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAnswer {
    Status(u16),
    Word(String),
}

impl RawAnswer {
    pub fn text(&self) -> String {
        match self {
            RawAnswer::Status(n) => n.to_string(),
            RawAnswer::Word(w) => w.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawAuth {
    /// `none`: the upstream serves anonymously without tokens.
    Word(String),
    /// The upstream's token endpoint.
    Token(RawTokenAuth),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTokenAuth {
    /// Token endpoint URL (the `realm` of the upstream's Bearer challenge).
    pub realm: Option<String>,
    /// The `service` of the upstream's Bearer challenge.
    pub service: Option<String>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown: Unknown,
}
