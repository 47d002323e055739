//! routes.yaml -> nginx config, with askama templates from `templates/`.
//!
//! Rendering is pure and deterministic: the same config gives byte-identical
//! output. Every value passes an escaping filter (`filters`) on its way out.

mod filters;
pub mod plan;

use askama::Template;

use crate::config::Config;
use plan::{ModeValue, Plan, Server, ServerAuth};

/// The include file a user's own nginx.conf pulls into its `http {}` block.
pub const INCLUDE_FILE: &str = "pullgate.conf";

/// Repository name (OCI distribution spec), as a PCRE fragment.
const NAME_RE: &str = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*";
const TAG_RE: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST_RE: &str = "[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+";
/// How many `%2F` a token scope's repository name may carry (components - 1).
const SCOPE_DECODE_STEPS: usize = 8;

#[derive(Template)]
#[template(path = "pullgate.conf", escape = "none")]
struct IncludeTemplate<'a> {
    plan: &'a Plan,
    name_re: &'a str,
    tag_re: &'a str,
    digest_re: &'a str,
    scope_decode_steps: usize,
}

impl std::ops::Deref for IncludeTemplate<'_> {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        self.plan
    }
}

impl IncludeTemplate<'_> {
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

    /// `Bearer realm="...",service="..."` for a server that issues its own tokens.
    fn challenge(&self, s: &Server) -> String {
        let origin = if s.public_url.is_empty() { "$scheme://$pg_req_host" } else { s.public_url.as_str() };
        format!("Bearer realm=\"{origin}/token\",service=\"{}\"", s.service)
    }
}

/// The rendered include set: file name and contents, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub files: Vec<(String, String)>,
    /// Identifies this config: a hash of what was rendered from routes.yaml.
    pub version: String,
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
    render_with_control(config, None)
}

/// Render the include set; with `control_socket`, append a server on that
/// unix socket that answers `GET /pullgate/config` with the config version.
pub fn render_with_control(config: &Config, control_socket: Option<&str>) -> Result<Rendered, RenderError> {
    let plan = Plan::new(config);
    let include = IncludeTemplate {
        plan: &plan,
        name_re: NAME_RE,
        tag_re: TAG_RE,
        digest_re: DIGEST_RE,
        scope_decode_steps: SCOPE_DECODE_STEPS,
    }
    .render()
    .map_err(|source| RenderError::Template { file: INCLUDE_FILE, source })?;
    let version = version_of(&include);
    let mut include = include;
    if let Some(socket) = control_socket {
        let control = ControlTemplate { socket, version: &version }
            .render()
            .map_err(|source| RenderError::Template { file: "control.conf", source })?;
        include.push_str(&control);
    }
    Ok(Rendered { files: vec![(INCLUDE_FILE.to_string(), include)], version })
}

/// The first 16 hex digits of the SHA-256 of the rendered routes.
fn version_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
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
}

impl MainConf<'_> {
    pub fn to_string(&self) -> Result<String, RenderError> {
        self.render().map_err(|source| RenderError::Template { file: "nginx.conf", source })
    }
}
