//! routes.yaml -> nginx config, with askama templates from `templates/`.
//!
//! Rendering is pure and deterministic: the same config gives byte-identical
//! output. Every value passes an escaping filter (`filters`) on its way out.

mod filters;
mod plan;
mod table;

use askama::Template;

use plan::{IndexLocation, ModeValue, Plan, Server, ServerAuth};
use pullgate_config::{Config, IndexKind, Target};
use pullgate_index::Snapshot;
pub use table::{RedisKeys, RouteTable, TABLE_FILE};

/// The directory of the set that index routes' documents are served from
/// (`index/ROUTE/...`).
pub const INDEX_DIR: &str = "index";

/// The include file a user's own nginx.conf pulls into its `http {}` block.
pub const INCLUDE_FILE: &str = "pullgate.conf";
/// Where `pullgate render` without a known directory says the set lives.
pub const DEFAULT_DIR: &str = "/etc/pullgate";

/// The static Lua hooks, from `lua/`, installed beside the include in Lua mode.
pub const LUA_FILES: &[(&str, &str)] = &[
    ("lua/pullgate/sync.lua", include_str!("../../../lua/pullgate/sync.lua")),
    ("lua/pullgate/route.lua", include_str!("../../../lua/pullgate/route.lua")),
];

/// Repository name (OCI distribution spec), as a PCRE fragment. The runs of
/// a component's characters and its separators are possessive: what follows
/// them ('/', the tail, the end) can never start with what they match, so
/// giving back would never help, and PCRE skips trying (about 740 of the
/// redirect path's instructions).
const NAME_RE: &str = "[a-z0-9]++(?:(?:[._]|__|-+)[a-z0-9]++)*+(?:/[a-z0-9]++(?:(?:[._]|__|-+)[a-z0-9]++)*+)*";
const TAG_RE: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST_RE: &str = "[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+";
/// How many `%2F` a token scope's repository name may carry (components - 1).
const SCOPE_DECODE_STEPS: usize = 8;
/// Longest registry path (after `/v2/`, with its query) and token request
/// URI the gateway reads: a longer registry path is an unknown repository
/// (404), a longer token request 414. Real ones are far shorter (names of at
/// most 255 characters, tags of 128, digests of about 135); PCRE's JIT stack
/// gives out on the name grammar near 1,500 bytes of a deep name.
pub const MAX_URI: usize = 1000;

#[derive(Template)]
#[template(path = "pullgate.conf", escape = "none")]
struct IncludeTemplate<'a> {
    plan: &'a Plan,
    /// Absolute directory the set lives in (Lua paths point there).
    dir: &'a str,
    name_re: &'a str,
    tag_re: &'a str,
    digest_re: &'a str,
    scope_decode_steps: usize,
    max_uri: usize,
    table_file: &'a str,
    /// Route name to the base64 of its upstream `USER:TOKEN`.
    upstream_credentials: Vec<(&'a str, &'a str)>,
    /// Lua mode: the size of the shared dict the route table lives in.
    lua_dict_mb: usize,
}

impl std::ops::Deref for IncludeTemplate<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        self.plan
    }
}

impl IncludeTemplate<'_> {
    /// The regex of a name in an index route's URLs (after its path).
    fn index_name_re(&self, kind: &IndexKind) -> &'static str {
        match kind {
            IndexKind::Pypi => "[a-z0-9]+(?:-[a-z0-9]+)*",
            IndexKind::Npm => "(?:@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*",
            IndexKind::Helm => "[a-z0-9][a-z0-9._-]*",
        }
    }

    fn has_indexes(&self) -> bool {
        self.plan.servers.iter().any(|s| !s.indexes.is_empty())
    }

    fn index_docs(&self, ix: &IndexLocation) -> String {
        format!("{}/{INDEX_DIR}/{}", self.dir, ix.route)
    }

    fn is_glob(&self, route: &str) -> bool {
        self.plan.glob_routes.contains(route)
    }

    /// A mode as an nginx map value: a word, or the variable of a user-agent list.
    fn mode_value(&self, mode: &ModeValue) -> String {
        match mode {
            ModeValue::Redirect => "redirect".into(),
            ModeValue::Proxy => "proxy".into(),
            ModeValue::UserAgents(i) => format!("$pg_ua_mode_{i}"),
        }
    }

    /// `Bearer realm="...",service="..."` for a server that issues its own
    /// tokens: its `public_url`, else its own name, else (the catch-all)
    /// the address the client reached; never the request's Host header.
    fn challenge(&self, s: &Server) -> String {
        let origin = if !s.public_url.is_empty() {
            s.public_url.clone()
        } else if s.default {
            "$scheme://$pg_server_host$pg_port_suffix".to_string()
        } else {
            format!("$scheme://{}$pg_port_suffix", s.name)
        };
        format!("Bearer realm=\"{origin}/token\",service=\"{}\"", s.service)
    }
}

/// The rendered include set: file name and contents, in a stable order.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub files: Vec<(String, String)>,
    /// The include holds upstream credentials: write it readable by its owner
    /// only (nginx's master reads it; its workers need not, and no location serves it).
    pub private: bool,
    /// Identifies this config: a hash of what was rendered from routes.yaml.
    pub version: String,
    /// Lua mode: the route targets, which change without a reload.
    pub table: Option<RouteTable>,
}

/// Never prints the files: the include may hold upstream credentials.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.files.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Rendered").field("files", &names).field("private", &self.private).field("version", &self.version).finish()
    }
}

/// Where and how the set will be used.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Add a server on this unix socket answering the config version.
    pub control_socket: Option<&'a str>,
    /// Absolute directory the set is installed in; default [`DEFAULT_DIR`].
    pub dir: Option<&'a str>,
    /// The index routes' documents and file links, as the sidecar last fetched them.
    pub indexes: Option<&'a Snapshot>,
    /// Routes' upstream credentials: route name to the base64 of `USER:TOKEN`.
    pub credentials: Option<&'a std::collections::BTreeMap<String, String>>,
}

#[derive(Template)]
#[template(path = "control.conf", escape = "none")]
struct ControlTemplate<'a> {
    socket: &'a str,
    version: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering {file}: {source}")]
    Template { file: &'static str, source: askama::Error },
}

/// Render the include set.
pub fn render(config: &Config) -> Result<Rendered, RenderError> {
    render_with(config, Options::default())
}

/// Render the include set; with a control socket, append a server on that
/// unix socket that answers `GET /pullgate/config` with the config version.
pub fn render_with(config: &Config, options: Options) -> Result<Rendered, RenderError> {
    let empty = Snapshot::default();
    let indexes = options.indexes.unwrap_or(&empty);
    let plan = Plan::new(config, indexes);
    let dir = options.dir.unwrap_or(DEFAULT_DIR);
    // Only routes that name credentials, and only what the caller read for them.
    let upstream_credentials: Vec<(&str, &str)> = options
        .credentials
        .into_iter()
        .flatten()
        .filter(|(route, _)| {
            config.routes.iter().any(|r| matches!(&r.target, Target::Oci(o) if o.credentials.is_some() && r.name == **route))
        })
        .map(|(r, b)| (r.as_str(), b.as_str()))
        .collect();
    let private = !upstream_credentials.is_empty();
    let include = IncludeTemplate {
        plan: &plan,
        dir,
        name_re: NAME_RE,
        tag_re: TAG_RE,
        digest_re: DIGEST_RE,
        scope_decode_steps: SCOPE_DECODE_STEPS,
        max_uri: MAX_URI,
        table_file: TABLE_FILE,
        upstream_credentials,
        lua_dict_mb: lua_dict_mb(plan.table_lines.iter().map(String::len).sum()),
    }
    .render()
    .map_err(|source| RenderError::Template { file: INCLUDE_FILE, source })?;
    // The documents are part of what is served: a change to one is a new version.
    let mut docs = Vec::new();
    for r in config.routes.iter().filter(|r| matches!(r.target, Target::Index(_))) {
        if let Some(served) = indexes.routes.get(&r.name) {
            docs.extend(served.docs.iter().map(|(rel, text)| (format!("{INDEX_DIR}/{}/{rel}", r.name), text.clone())));
        }
    }
    let version = version_of(std::iter::once(("", include.as_str())).chain(docs.iter().map(|(n, t)| (n.as_str(), t.as_str()))));
    let mut include = include;
    if let Some(socket) = options.control_socket {
        let control = ControlTemplate { socket, version: &version }
            .render()
            .map_err(|source| RenderError::Template { file: "control.conf", source })?;
        include.push_str(&control);
    }
    let mut files = vec![(INCLUDE_FILE.to_string(), include)];
    files.extend(docs);
    let table = plan.lua.as_ref().map(|_| {
        files.extend(LUA_FILES.iter().map(|(name, text)| (name.to_string(), text.to_string())));
        let body = plan.table_lines.concat();
        RouteTable { version: version_of([("", body.as_str())]), body: body.into() }
    });
    Ok(Rendered { files, private, version, table })
}

/// The shared dict's size in MiB for a table of `table_bytes`: room for the
/// table, its delta and the slab allocator's fragments (three times the
/// table), in powers of two from 16, so that a growing table changes the
/// config (and reloads) only when it crosses one.
fn lua_dict_mb(table_bytes: usize) -> usize {
    (3 * table_bytes).div_ceil(1 << 20).next_power_of_two().max(16)
}

/// The first 16 hex digits of the SHA-256 of the rendered files, each
/// after its name and length (the first, the include, unnamed), hashed in
/// place: documents may be megabytes.
fn version_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (i, (name, text)) in files.into_iter().enumerate() {
        if i > 0 {
            hash.update(format!("\n{name}\n{}\n", text.len()));
        }
        hash.update(text.as_bytes());
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A minimal nginx.conf around the include set, for `nginx -t` and `pullgate up`.
#[derive(Template)]
#[template(path = "nginx.conf", escape = "none")]
pub struct MainConf<'a> {
    /// Absolute nginx prefix: pid, temp paths.
    pub prefix: &'a str,
    /// Absolute path of the include file.
    pub include: &'a str,
    pub error_log: &'a str,
    pub workers: &'a str,
    pub foreground: bool,
    /// Dynamic modules to load (the Lua module and its NDK, in Lua mode).
    pub modules: Vec<String>,
}

/// Debian's directory of dynamic nginx modules.
pub const DEFAULT_MODULES_DIR: &str = "/usr/lib/nginx/modules";

/// The modules Lua mode needs (the NDK first), from `dir`.
pub fn lua_modules(dir: &str) -> Vec<String> {
    ["ndk_http_module.so", "ngx_http_lua_module.so"].iter().map(|m| format!("{dir}/{m}")).collect()
}

impl MainConf<'_> {
    pub fn to_string(&self) -> Result<String, RenderError> {
        self.render().map_err(|source| RenderError::Template { file: "nginx.conf", source })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shared_dict_grows_with_the_table_in_powers_of_two() {
        assert_eq!(super::lua_dict_mb(0), 16);
        assert_eq!(super::lua_dict_mb(5 << 20), 16);
        // 100,000 routes: a table of about 12 MB.
        assert_eq!(super::lua_dict_mb(12 << 20), 64);
        assert_eq!(super::lua_dict_mb(22 << 20), 128);
    }
}
