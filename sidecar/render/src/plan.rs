//! What the nginx config says, computed from the typed config: map entries,
//! servers and their auth style, hash sizes. The templates only lay it out.

use pullgate_config::{Config, HostAuth, IndexKind, Mode, Piece, RepoPattern, Route, Target, UpstreamAuth};
use pullgate_index::Snapshot;

use crate::table;

/// One `map` entry: an exact key, or a regex whose captures the value may use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// For a regex entry, the literal prefix (already regex-escaped by the template).
    pub key: String,
    pub value: String,
    pub regex: bool,
}

pub struct Server {
    /// `server_name`; `_` is the catch-all.
    pub name: String,
    pub default: bool,
    pub listen: Vec<String>,
    pub tls: Option<(String, String)>,
    pub tls_listen: Vec<String>,
    /// Plain HTTP answers with a redirect to this `https://` origin (the
    /// host's public URL), in a server of its own.
    pub redirect_http: Option<String>,
    /// How `/v2/` and `/token` behave.
    pub auth: ServerAuth,
    /// `scheme://host[:port]` for the token realm, or empty to derive it from the request.
    pub public_url: String,
    pub service: String,
    /// How the ping of a pass-through host is answered.
    pub ping_mode: ModeValue,
    pub files: Vec<FileLocation>,
    pub indexes: Vec<IndexLocation>,
}

impl Server {
    pub fn is_pass_through(&self) -> bool {
        matches!(self.auth, ServerAuth::PassThrough { .. })
    }

    /// Whether an index route here redirects packages it does not list.
    pub fn has_unknown_upstream(&self) -> bool {
        self.indexes.iter().any(|ix| ix.unknown_upstream.is_some())
    }

    /// Whether this server answers the registry API at all.
    pub fn has_registry(&self) -> bool {
        !matches!(self.auth, ServerAuth::None)
    }
}

/// The mode of a request: fixed by the route, or decided by user-agent list N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeValue {
    Redirect,
    Proxy,
    UserAgents(usize),
}

pub enum ServerAuth {
    None,
    PassThrough { ping_url: String },
    Gateway,
}

pub struct FileLocation {
    pub route: String,
    /// The location regex, built from escaped literals and fixed capture groups.
    pub regex: String,
    /// The upstream URL with `${pg_f_NAME}` for each placeholder.
    pub target: String,
    pub proxy: bool,
}

/// A package index route on a server.
pub struct IndexLocation {
    pub route: String,
    pub kind: IndexKind,
    /// Where it is served: begins and ends with `/`.
    pub path: String,
    /// For a package not listed: the upstream base to redirect to (`None`: 404).
    pub unknown_upstream: Option<String>,
    /// Its upstream failed the last refresh: documents are served from the cache.
    pub stale: bool,
}

/// Lua mode: where the hooks find Redis, and the keys of the route table there.
pub struct LuaPlan {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub keys: table::RedisKeys,
}

pub struct Plan {
    pub access_log: String,
    /// Where plain HTTP serves `/.well-known/acme-challenge/` from.
    pub acme_webroot: Option<String>,
    /// Lua mode: targets come from the route table, not from nginx maps.
    pub lua: Option<LuaPlan>,
    /// The route table, one line per image route, sorted by name.
    pub table_lines: Vec<String>,
    pub resolver: Vec<String>,
    pub trusted_ca: String,
    /// `"$server_name/$pg_name"` to route name.
    pub route_by_name: Vec<Entry>,
    /// Route name to the upstream repository, or for a glob the part before
    /// what the glob matched (`acme-org/`, or empty for `*`).
    pub up_prefix_by_route: Vec<Entry>,
    /// Route name to upstream origin.
    pub origin_by_route: Vec<Entry>,
    /// Route name to `ORIGIN/v2/PREFIX`: the hot path needs one lookup.
    pub up_base_by_route: Vec<Entry>,
    /// Route name to its first fallback's `ORIGIN/v2/PREFIX` and origin, for
    /// proxied requests whose upstream cannot be reached.
    pub fallback_base_by_route: Vec<Entry>,
    pub fallback_origin_by_route: Vec<Entry>,
    /// Route name to its mode.
    pub mode_by_route: Vec<(String, ModeValue)>,
    /// Names of glob routes, whose targets append the matched rest.
    pub glob_routes: std::collections::BTreeSet<String>,
    /// Route name to the upstream token URL up to the scope's repository name.
    pub token_by_route: Vec<Entry>,
    /// `ROUTE:PATH` of each index route's files to the file's real URL.
    pub index_targets: Vec<Entry>,
    /// Distinct user-agent lists; `ModeValue::UserAgents(N)` refers to list N.
    pub ua_lists: Vec<Vec<String>>,
    pub servers: Vec<Server>,
    pub map_hash_max_size: usize,
    pub map_hash_bucket_size: usize,
    pub server_names_hash_max_size: usize,
    pub server_names_hash_bucket_size: usize,
}

/// A location-regex fragment matching one placeholder value: no leading dot, no slash.
pub const FILE_VALUE_RE: &str = "[A-Za-z0-9_~+-][A-Za-z0-9._~+-]*";

impl Plan {
    pub fn new(config: &Config, indexes: &Snapshot) -> Plan {
        let mut ua_lists: Vec<Vec<String>> = Vec::new();
        let mut ua_list_of = |list: &Vec<String>| match ua_lists.iter().position(|l| l == list) {
            Some(i) => i,
            None => {
                ua_lists.push(list.clone());
                ua_lists.len() - 1
            }
        };
        let mut route_by_name = Vec::new();
        let mut up_prefix_by_route = Vec::new();
        let mut glob_routes = std::collections::BTreeSet::new();
        let mut table_lines = Vec::new();
        let mut origin_by_route = Vec::new();
        let mut up_base_by_route = Vec::new();
        let mut fallback_base_by_route = Vec::new();
        let mut fallback_origin_by_route = Vec::new();
        let mut mode_by_route = Vec::new();
        let mut token_by_route = Vec::new();
        let server_names: Vec<&str> = config.server_names().collect();
        let auths = config.host_auths();
        // One canonical order (by route name) for everything derived from the
        // routes: the output is deterministic without sorting each map.
        let mut ordered: Vec<&Route> = config.routes.iter().collect();
        ordered.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for route in ordered {
            let Target::Oci(oci) = &route.target else { continue };
            let hosts: Vec<&str> = match &route.host {
                Some(h) => vec![h.as_str()],
                None => server_names.clone(),
            };
            for host in hosts {
                match (&oci.image, &oci.upstream.repo) {
                    (RepoPattern::Exact(name), RepoPattern::Exact(_)) => {
                        route_by_name.push(Entry { key: format!("{host}/{name}"), value: route.name.clone(), regex: false });
                    }
                    (RepoPattern::Prefix(p), RepoPattern::Prefix(_)) => {
                        glob_routes.insert(route.name.clone());
                        let key = if p.is_empty() { format!("{host}/") } else { format!("{host}/{p}/") };
                        route_by_name.push(Entry { key, value: route.name.clone(), regex: true });
                    }
                    _ => unreachable!("validation pairs globs with globs"),
                }
            }
            let entry = |value: String| Entry { key: route.name.clone(), value, regex: false };
            origin_by_route.push(entry(oci.upstream.origin.to_string()));
            let prefix = repo_prefix(&oci.upstream.repo);
            let base = format!("{}/v2/{prefix}", oci.upstream.origin);
            up_base_by_route.push(entry(base.clone()));
            let fallback = oci
                .fallbacks
                .first()
                .map(|f| (format!("{}/v2/{}", f.upstream.origin, repo_prefix(&f.upstream.repo)), f.upstream.origin.to_string()));
            if let Some((fb_base, fb_origin)) = &fallback {
                fallback_base_by_route.push(entry(fb_base.clone()));
                fallback_origin_by_route.push(entry(fb_origin.clone()));
            }
            up_prefix_by_route.push(entry(prefix.clone()));
            let mode = if oci.mode == Mode::Auto && config.redirect_loses_auth(route, &auths) { Mode::Proxy } else { oci.mode };
            let token = token_prefix(oci.auth.as_ref());
            table_lines.push(
                table::Line {
                    route,
                    oci,
                    mode,
                    base: &base,
                    prefix: &prefix,
                    fallback: fallback.as_ref().map(|(b, o)| (b.as_str(), o.as_str())),
                    token: token.as_deref(),
                }
                .text(),
            );
            mode_by_route.push((
                route.name.clone(),
                match mode {
                    Mode::Auto => ModeValue::UserAgents(ua_list_of(&oci.redirect_user_agents)),
                    Mode::Redirect => ModeValue::Redirect,
                    Mode::Proxy => ModeValue::Proxy,
                },
            ));
            if let Some(token) = token {
                token_by_route.push(entry(token));
            }
        }
        let default_ua = ua_list_of(&config.gateway.redirect_user_agents);
        let servers = config.server_names().map(|name| server(config, name, auths.get(name), default_ua, indexes)).collect::<Vec<_>>();
        // Only the files of routes still in routes.yaml (a snapshot may lag it).
        let index_targets: Vec<Entry> = config
            .routes
            .iter()
            .filter(|r| matches!(r.target, Target::Index(_)))
            .filter_map(|r| indexes.routes.get(&r.name).map(|served| (r, served)))
            .flat_map(|(r, served)| {
                served.files.iter().map(|(path, url)| Entry { key: format!("{}:{path}", r.name), value: url.to_string(), regex: false })
            })
            .collect();

        let maps = [
            &route_by_name,
            &up_prefix_by_route,
            &up_base_by_route,
            &fallback_base_by_route,
            &fallback_origin_by_route,
            &origin_by_route,
            &token_by_route,
        ];
        let longest_key = maps.iter().flat_map(|m| m.iter()).map(|e| e.key.len()).max().unwrap_or(0);
        let most_entries = maps.iter().map(|m| m.len()).max().unwrap_or(0);
        // The index files' map: long keys (paths of file names), thousands
        // of them for a busy project. A bucket that holds one such key
        // needs a collision-free hash, which nginx cannot find (it warns,
        // and ignores the bucket size): buckets of two, twice the slots.
        let longest_index_key = index_targets.iter().map(|e| e.key.len()).max();
        let (map_hash_max_size, map_hash_bucket_size) = match longest_index_key {
            None => (hash_max_size(most_entries), bucket_size(longest_key)),
            Some(longest) => (
                hash_max_size(most_entries).max(hash_max_size(index_targets.len() * 2)),
                bucket_size(longest_key).max((2 * element_size(longest) + 8).next_power_of_two()),
            ),
        };
        let longest_host = servers.iter().map(|s| s.name.len()).max().unwrap_or(0);
        Plan {
            access_log: config.gateway.access_log.clone(),
            acme_webroot: config.gateway.acme_webroot.clone(),
            lua: config.gateway.redis.as_ref().map(|r| LuaPlan {
                host: r.host.clone(),
                port: r.port,
                db: r.db,
                keys: table::RedisKeys::new(&r.key),
            }),
            table_lines,
            resolver: config.gateway.resolver.clone(),
            trusted_ca: config.gateway.trusted_ca.clone(),
            route_by_name,
            up_prefix_by_route,
            up_base_by_route,
            fallback_base_by_route,
            fallback_origin_by_route,
            glob_routes,
            origin_by_route,
            mode_by_route,
            token_by_route,
            index_targets,
            ua_lists,
            map_hash_max_size,
            map_hash_bucket_size,
            server_names_hash_max_size: hash_max_size(servers.len()),
            server_names_hash_bucket_size: bucket_size(longest_host),
            servers,
        }
    }
}

fn server(config: &Config, name: &str, auth: HostAuth, default_ua: usize, snapshot: &Snapshot) -> Server {
    let host = config.gateway.hosts.iter().find(|h| h.name == name);
    let routes: Vec<&Route> = config.routes_for(name).collect();
    let modes: Vec<Mode> = routes
        .iter()
        .filter_map(|r| match &r.target {
            Target::Oci(o) => Some(o.mode),
            Target::File(_) | Target::Index(_) => None,
        })
        .collect();
    let ping_mode = match modes.first() {
        Some(Mode::Redirect) if modes.iter().all(|m| *m == Mode::Redirect) => ModeValue::Redirect,
        Some(Mode::Proxy) if modes.iter().all(|m| *m == Mode::Proxy) => ModeValue::Proxy,
        _ => ModeValue::UserAgents(default_ua),
    };
    let auth = match auth {
        HostAuth::NoRegistry => ServerAuth::None,
        HostAuth::PassThrough(origin) => ServerAuth::PassThrough { ping_url: format!("{origin}/v2/") },
        HostAuth::Gateway => ServerAuth::Gateway,
    };
    let files = routes.iter().filter_map(|r| match &r.target {
        Target::File(f) => Some(FileLocation {
            route: r.name.clone(),
            regex: path_regex(&f.path),
            target: format!("{}{}", f.upstream_origin, url_target(&f.upstream_path)),
            proxy: f.mode == Mode::Proxy,
        }),
        Target::Oci(_) | Target::Index(_) => None,
    });
    let indexes = routes.iter().filter_map(|r| match &r.target {
        Target::Index(ix) => Some(IndexLocation {
            route: r.name.clone(),
            kind: ix.kind,
            path: ix.path.clone(),
            unknown_upstream: ix.unknown_upstream.then(|| ix.upstream()),
            stale: snapshot.stale.contains(&r.name),
        }),
        _ => None,
    });
    let tls = host.and_then(|h| h.tls.as_ref()).map(|t| (t.cert.clone(), t.key.clone()));
    let public_url = host.and_then(|h| h.public_url.as_ref()).map(|u| u.to_string()).unwrap_or_default();
    let redirect_http = host.and_then(|h| h.tls.as_ref()).filter(|t| t.redirect_http).map(|_| public_url.clone());
    Server {
        name: name.to_string(),
        default: name == Config::DEFAULT_HOST,
        listen: config.gateway.listen.clone(),
        tls_listen: if tls.is_some() { config.gateway.tls_listen.clone() } else { Vec::new() },
        tls,
        redirect_http,
        auth,
        public_url,
        service: if name == Config::DEFAULT_HOST { "pullgate".into() } else { name.to_string() },
        ping_mode,
        files: files.collect(),
        indexes: indexes.collect(),
    }
}

/// The upstream token URL up to the scope's repository name (`pull` only is ever asked).
fn token_prefix(auth: Option<&UpstreamAuth>) -> Option<String> {
    match auth {
        Some(UpstreamAuth::Token { realm, service }) => Some(format!("{realm}?service={}&scope=repository:", query_escape(service))),
        _ => None,
    }
}

/// The upstream repository, or for a glob what comes before the matched rest.
fn repo_prefix(repo: &RepoPattern) -> String {
    match repo {
        RepoPattern::Exact(up) => up.clone(),
        RepoPattern::Prefix(up) if up.is_empty() => String::new(),
        RepoPattern::Prefix(up) => format!("{up}/"),
    }
}

/// `^/downloads/(?<pg_f_version>...)/(?<pg_f_file>...)$`, literals escaped.
fn path_regex(pieces: &[Piece]) -> String {
    let mut re = String::from("^");
    for p in pieces {
        match p {
            Piece::Literal(l) => re.push_str(&regex::escape(l)),
            Piece::Var(v) => re.push_str(&format!("(?<pg_f_{v}>{FILE_VALUE_RE})")),
        }
    }
    re.push('$');
    re
}

fn url_target(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(l) => l.clone(),
            Piece::Var(v) => format!("${{pg_f_{v}}}"),
        })
        .collect()
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// nginx sizes a hash to at most this many buckets; enough for one element each.
fn hash_max_size(entries: usize) -> usize {
    entries.next_power_of_two().max(1024)
}

/// A hash element: pointer + key + 2, aligned.
fn element_size(key: usize) -> usize {
    8 + (key + 2).div_ceil(8) * 8
}

/// A bucket must hold one element plus the end marker.
fn bucket_size(longest_key: usize) -> usize {
    (element_size(longest_key) + 8).next_power_of_two().max(64)
}
