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
//!
//! Beside each table goes its delta from the table published before it
//! (`KEY:delta`), so that a worker holding FROM applies a few lines instead
//! of parsing the whole table again:
//!
//! ```text
//! pullgate-delta 1 FROM TO STAMP
//! NAME \t MODE \t ...       a route added or changed: its whole line
//! NAME                       a route removed
//! ```

use pullgate_config::{Mode, OciRoute, Route};

/// The file beside the include that this node's Lua hooks read.
pub const TABLE_FILE: &str = "routes.tsv";
/// The format version in the header; the Lua hooks accept only this one.
pub const FORMAT: u32 = 1;

/// Route targets for the Lua hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    /// Shared: the daemon keeps the table it serves, the one Redis holds and
    /// the one being prepared, often the same 12 MB at 100,000 routes.
    pub body: std::sync::Arc<str>,
    pub version: String,
}

impl RouteTable {
    /// The table as published, stamped `stamp` (milliseconds since the epoch:
    /// the caller reads the clock; a newer table wins on every node).
    pub fn text(&self, stamp: u64) -> String {
        format!("pullgate-routes {FORMAT} {} {stamp}\n{}", self.version, self.body)
    }

    /// The delta from `old` to this table (see the module comment), stamped
    /// like the table it goes with.
    pub fn delta_from(&self, old: &RouteTable, stamp: u64) -> String {
        fn name(line: &str) -> &str {
            line.split_once('\t').map_or(line, |(n, _)| n)
        }
        let mut out = format!("pullgate-delta {FORMAT} {} {} {stamp}\n", old.version, self.version);
        let (mut a, mut b) = (old.body.lines().peekable(), self.body.lines().peekable());
        // Both bodies are sorted by name: one merge finds every difference.
        loop {
            let line = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(x), Some(y)) if name(x) == name(y) => {
                    let (x, y) = (a.next(), b.next());
                    if x == y {
                        continue;
                    }
                    y
                }
                (Some(x), Some(y)) if name(x) > name(y) => b.next(),
                (Some(_), _) => a.next().map(name), // removed: its name alone
                (None, Some(_)) => b.next(),
            };
            out.push_str(line.unwrap_or_default());
            out.push('\n');
        }
        out
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
    /// The delta from the table before (module comment).
    pub delta: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> RedisKeys {
        RedisKeys {
            table: format!("{prefix}:table"),
            version: format!("{prefix}:version"),
            events: format!("{prefix}:events"),
            delta: format!("{prefix}:delta"),
        }
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
        assert_eq!(k.delta, "pg:delta");
    }

    #[test]
    fn delta_holds_added_changed_and_removed_routes() {
        let old = RouteTable { body: "a\tredirect\nb\tproxy\nc\tauto\nd\tauto\n".into(), version: "v1".into() };
        let new = RouteTable { body: "a\tredirect\nb\tredirect\nbb\tproxy\nd\tauto\ne\tauto\n".into(), version: "v2".into() };
        assert_eq!(new.delta_from(&old, 7), "pullgate-delta 1 v1 v2 7\nb\tredirect\nbb\tproxy\nc\ne\tauto\n");
        assert_eq!(new.delta_from(&new, 8), "pullgate-delta 1 v2 v2 8\n");
        let empty = RouteTable { body: "".into(), version: "v0".into() };
        assert_eq!(empty.delta_from(&old, 9), "pullgate-delta 1 v1 v0 9\na\nb\nc\nd\n");
    }
}
