//! The route table of Lua mode: the one place its format is defined.
//!
//! Text, published to a file beside the include (`routes.tsv`) and to Redis
//! (`KEY:table`, `KEY:version`, a `KEY:events` message), read by
//! `lua/pullgate/sync.lua` (header) and `lua/pullgate/route.lua` (lines):
//!
//! ```text
//! pullgate-routes 1 VERSION STAMP
//! NAME \t MODE \t BASE \t GLOB \t ORIGIN \t UA \t FALLBACK_BASE \t FALLBACK_ORIGIN \t TOKEN \t PREFIX
//! ```
//!
//! VERSION identifies the lines (a hash); STAMP is milliseconds since the
//! epoch when it was published: a node keeps the newest. One line per image
//! route, sorted by name; validated values carry no tab or newline.

use pullgate_config::{Mode, OciRoute, Route};

/// The file beside the include that this node's Lua hooks read.
pub const TABLE_FILE: &str = "routes.tsv";
/// The format version in the header; the Lua hooks accept only this one.
pub const FORMAT: u32 = 1;

/// Route targets for the Lua hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub body: String,
    pub version: String,
}

impl RouteTable {
    /// The table as published, stamped `stamp` (milliseconds since the epoch:
    /// the caller reads the clock; a newer table wins on every node).
    pub fn text(&self, stamp: u64) -> String {
        format!("pullgate-routes {FORMAT} {} {stamp}\n{}", self.version, self.body)
    }
}

/// The Redis keys a table lives under, for a configured key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    /// The whole table text.
    pub table: String,
    /// Its version alone: what nodes poll.
    pub version: String,
    /// Channel a new version is announced on.
    pub events: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> RedisKeys {
        RedisKeys { table: format!("{prefix}:table"), version: format!("{prefix}:version"), events: format!("{prefix}:events") }
    }
}

/// What a route's line says, computed by the plan.
pub(crate) struct Line<'a> {
    pub route: &'a Route,
    pub oci: &'a OciRoute,
    /// The mode as served (`auto` that would lose auth is `proxy`).
    pub mode: Mode,
    pub base: &'a str,
    pub prefix: &'a str,
    pub fallback: Option<(&'a str, &'a str)>,
    pub token: Option<&'a str>,
}

impl Line<'_> {
    pub fn text(&self) -> String {
        let ua = match self.mode {
            Mode::Auto => self.oci.redirect_user_agents.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|"),
            _ => String::new(),
        };
        let (fb_base, fb_origin) = self.fallback.unwrap_or(("", ""));
        let origin = self.oci.upstream.origin.to_string();
        let fields = [
            self.route.name.as_str(),
            self.mode.as_str(),
            self.base,
            if self.oci.image.is_glob() { "1" } else { "0" },
            &origin,
            &ua,
            fb_base,
            fb_origin,
            self.token.unwrap_or(""),
            self.prefix,
        ];
        debug_assert!(fields.iter().all(|f| !f.contains(['\t', '\n'])));
        fields.join("\t") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_keys() {
        let t = RouteTable { body: "a\tredirect\n".into(), version: "v1".into() };
        assert_eq!(t.text(42), "pullgate-routes 1 v1 42\na\tredirect\n");
        let k = RedisKeys::new("pg");
        assert_eq!((k.table.as_str(), k.version.as_str(), k.events.as_str()), ("pg:table", "pg:version", "pg:events"));
    }
}
