//! Phase two: turn the raw file into typed values, collecting every problem.

use std::collections::{BTreeSet, HashMap};

use super::grammar::{self, Piece, RepoPattern};
use super::model::*;
use super::problem::Problem;
use super::raw::*;
use super::spans::{join_key as join, Spans};

pub fn validate(raw: RawFile, spans: &Spans, defaults: &Defaults) -> Result<Config, Vec<Problem>> {
    let mut cx = Cx { spans, defaults, problems: Vec::new() };
    cx.unknown("", "", &raw.unknown, &["version", "gateway", "routes", "analytics"]);
    match raw.version {
        Some(1) => {}
        Some(v) => cx.report("", "version", "version", format!("version {v} is not supported; expected 1")),
        None => cx.report("", "version", "version", "missing; expected `version: 1` at the top of the file"),
    }
    let mut gateway = cx.gateway(raw.gateway);
    cx.duplicate_names(&raw.routes);
    let mut routes = Vec::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        if let Some(route) = cx.route(i, r, &gateway) {
            routes.push(route);
        }
    }
    // Hosts named only by routes get a plain server of their own.
    let declared: BTreeSet<String> = gateway.hosts.iter().map(|h| h.name.clone()).collect();
    let implied: BTreeSet<&String> =
        routes.iter().filter_map(|r: &(usize, Route)| r.1.host.as_ref()).filter(|h| !declared.contains(*h)).collect();
    gateway.hosts.extend(implied.into_iter().map(|name| Host { name: name.clone(), public_url: None, tls: None }));

    // npm clients need absolute tarball URLs: the public URL of the route's host.
    for (idx, r) in &mut routes {
        let Target::Index(ix) = &mut r.target else { continue };
        if ix.kind != IndexKind::Npm {
            continue;
        }
        ix.public_url = r.host.as_ref().and_then(|h| gateway.hosts.iter().find(|d| d.name == *h)).and_then(|h| h.public_url.clone());
        if ix.public_url.is_none() {
            let subject = format!("route \"{}\"", r.name);
            cx.report(
                &subject,
                &format!("routes[{idx}].host"),
                "host",
                "an npm route needs a `host` declared in `gateway.hosts` with a `public_url`: npm fetches tarballs by absolute URL",
            );
        }
    }
    cx.overlaps(&routes);
    let (indices, routes): (Vec<usize>, Vec<Route>) = routes.into_iter().unzip();
    let analytics = raw.analytics.and_then(|a| cx.analytics(a));
    let config = Config { gateway, routes, analytics };
    cx.cross_checks(&config, &indices);
    if cx.problems.is_empty() {
        Ok(config)
    } else {
        cx.problems.sort_by_key(|p| p.pos.map(|p| (p.line, p.col)));
        Err(cx.problems)
    }
}

struct Cx<'a> {
    spans: &'a Spans,
    defaults: &'a Defaults,
    problems: Vec<Problem>,
}

fn route_subject(i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) if grammar::route_name(n).is_ok() => format!("route \"{n}\""),
        _ => format!("route #{}", i + 1),
    }
}

impl Cx<'_> {
    fn report(&mut self, subject: &str, path: &str, field: &str, message: impl Into<String>) {
        self.problems.push(Problem { pos: self.spans.value(path), subject: subject.into(), field: field.into(), message: message.into() });
    }

    fn unknown(&mut self, subject: &str, base: &str, unknown: &Unknown, allowed: &[&str]) {
        for key in unknown.keys() {
            let path = join(base, key);
            let hint = match suggest(key, allowed) {
                Some(s) => format!("unknown key; did you mean `{s}`?"),
                None => format!("unknown key; expected one of: {}", allowed.join(", ")),
            };
            self.problems.push(Problem { pos: self.spans.key(&path), subject: subject.into(), field: key.clone(), message: hint });
        }
    }

    /// Run a grammar check on a present value, reporting at its position.
    fn check<T>(&mut self, subject: &str, path: &str, field: &str, value: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        match f(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.report(subject, path, field, e);
                None
            }
        }
    }

    fn check_list(
        &mut self,
        subject: &str,
        base: &str,
        field: &str,
        values: Vec<String>,
        f: impl Fn(&str) -> Result<String, String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let (path, field) = (format!("{base}[{i}]"), format!("{field}[{i}]"));
            out.extend(self.check(subject, &path, &field, v, &f));
        }
        out
    }

    fn gateway(&mut self, g: RawGateway) -> Gateway {
        const S: &str = "gateway";
        self.unknown(
            S,
            S,
            &g.unknown,
            &["listen", "tls_listen", "resolver", "access_log", "trusted_ca", "redirect_user_agents", "hosts", "redis", "acme_webroot"],
        );
        let redis = g.redis.and_then(|r| {
            let b = "gateway.redis";
            self.unknown(S, b, &r.unknown, &["url", "key"]);
            let url = r.url.as_deref().unwrap_or("redis://127.0.0.1:6379/0");
            let (host, port, db) = self.check(S, &join(b, "url"), "redis.url", url, grammar::redis_url)?;
            let key = self.check(S, &join(b, "key"), "redis.key", r.key.as_deref().unwrap_or("pullgate"), grammar::redis_key)?;
            Some(Redis { host, port, db, key })
        });
        let list = |v: Option<Vec<String>>, d: &str| v.unwrap_or_else(|| vec![d.to_string()]);
        let listen = list(g.listen, DEFAULT_LISTEN);
        if listen.is_empty() {
            self.report(S, "gateway.listen", "listen", "needs at least one address");
        }
        let listen = self.check_list(S, "gateway.listen", "listen", listen, grammar::listen);
        let tls_listen = self.check_list(S, "gateway.tls_listen", "tls_listen", list(g.tls_listen, DEFAULT_TLS_LISTEN), grammar::listen);
        let (resolver, resolver_from_system) = match g.resolver {
            Some(list) => (self.check_list(S, "gateway.resolver", "resolver", list, grammar::resolver), false),
            None => (self.defaults.resolver.clone(), true),
        };
        let access_log = g.access_log.unwrap_or_else(|| DEFAULT_ACCESS_LOG.into());
        let access_log =
            self.check(S, "gateway.access_log", "access_log", &access_log, |s| grammar::file_path(s, false)).unwrap_or_default();
        let trusted_ca = g.trusted_ca.unwrap_or_else(|| DEFAULT_TRUSTED_CA.into());
        let trusted_ca =
            self.check(S, "gateway.trusted_ca", "trusted_ca", &trusted_ca, |s| grammar::file_path(s, true)).unwrap_or_default();
        let acme_webroot =
            g.acme_webroot.and_then(|w| self.check(S, "gateway.acme_webroot", "acme_webroot", &w, |s| grammar::file_path(s, true)));
        let uas = g.redirect_user_agents.unwrap_or_else(|| DEFAULT_REDIRECT_USER_AGENTS.iter().map(|s| s.to_string()).collect());
        let redirect_user_agents = self.check_list(S, "gateway.redirect_user_agents", "redirect_user_agents", uas, grammar::ua_pattern);
        let mut hosts: Vec<Host> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, h) in g.hosts.unwrap_or_default().into_iter().enumerate() {
            let base = format!("gateway.hosts[{i}]");
            let field = |f: &str| format!("hosts[{i}].{f}");
            self.unknown(S, &base, &h.unknown, &["name", "public_url", "tls"]);
            let name = match &h.name {
                Some(n) => self.check(S, &join(&base, "name"), &field("name"), n, grammar::hostname),
                None => {
                    self.report(S, &base, &format!("hosts[{i}]"), "missing `name`");
                    None
                }
            };
            let public_url = h
                .public_url
                .as_deref()
                .and_then(|u| self.check(S, &join(&base, "public_url"), &field("public_url"), u, grammar::public_url));
            let tls = h.tls.and_then(|t| {
                let tb = join(&base, "tls");
                self.unknown(S, &tb, &t.unknown, &["cert", "key", "redirect_http"]);
                let mut file = |v: Option<String>, k: &str| match v {
                    Some(p) => self.check(S, &join(&tb, k), &field(&format!("tls.{k}")), &p, |s| grammar::file_path(s, true)),
                    None => {
                        self.report(S, &tb, &field("tls"), format!("missing `{k}`; TLS needs both `cert` and `key`"));
                        None
                    }
                };
                let cert = file(t.cert, "cert");
                let key = file(t.key, "key");
                let redirect_http = t.redirect_http.unwrap_or(false);
                if redirect_http && !public_url.as_ref().is_some_and(|u| u.scheme == grammar::Scheme::Https) {
                    self.report(
                        S,
                        &join(&tb, "redirect_http"),
                        &field("tls.redirect_http"),
                        "needs the host's `public_url` to be an `https://` URL: plain HTTP is redirected there",
                    );
                }
                Some(Tls { cert: cert?, key: key?, redirect_http })
            });
            if let Some(name) = name {
                if let Some(first) = seen.insert(name.clone(), i) {
                    self.report(S, &join(&base, "name"), &field("name"), format!("`{name}` is already declared by hosts[{first}]"));
                } else {
                    hosts.push(Host { name, public_url, tls });
                }
            }
        }
        Gateway {
            listen,
            tls_listen,
            resolver,
            resolver_from_system,
            access_log,
            trusted_ca,
            redirect_user_agents,
            hosts,
            redis,
            acme_webroot,
        }
    }

    fn route(&mut self, i: usize, r: RawRoute, gateway: &Gateway) -> Option<(usize, Route)> {
        let base = format!("routes[{i}]");
        let subject = route_subject(i, r.name.as_deref());
        let s = subject.as_str();
        let p = |f: &str| join(&base, f);
        self.unknown(
            s,
            &base,
            &r.unknown,
            &[
                "name",
                "kind",
                "host",
                "image",
                "path",
                "upstream",
                "fallback",
                "mode",
                "redirect_user_agents",
                "auth",
                "github",
                "packages",
                "unknown",
                "credentials",
            ],
        );

        let name = match &r.name {
            Some(n) => self.check(s, &p("name"), "name", n, grammar::route_name),
            None => {
                self.report(s, &base, "name", "missing; every route needs a unique `name`");
                None
            }
        };
        // `Some(None)`: no host given, the route applies everywhere; `None`: invalid.
        let host = match r.host.as_deref() {
            None => Some(None),
            Some(h) => self.check(s, &p("host"), "host", h, grammar::hostname).map(Some),
        };
        let kind = r.kind.as_deref().unwrap_or("oci");
        let mode = r.mode.as_deref().and_then(|m| match m {
            "auto" => Some(Mode::Auto),
            "redirect" => Some(Mode::Redirect),
            "proxy" => Some(Mode::Proxy),
            other => {
                self.report(s, &p("mode"), "mode", format!("`{other}` is not a mode; expected `auto`, `redirect` or `proxy`"));
                None
            }
        });
        let mut only_for = |field: &str, present: bool, k: &str| {
            if present {
                self.report(s, &p(field), field, format!("only applies to routes of kind `{k}`"));
            }
        };
        if !matches!(kind, "pypi" | "npm" | "helm") {
            only_for("packages", r.packages.is_some(), "pypi, npm or helm");
            only_for("unknown", r.unknown_packages.is_some(), "pypi or npm");
        }
        let target = match kind {
            "pypi" | "npm" | "helm" => {
                for (field, present) in [
                    ("image", r.image.is_some()),
                    ("github", r.github.is_some()),
                    ("auth", r.auth.is_some()),
                    ("fallback", r.fallback.is_some()),
                    ("redirect_user_agents", r.redirect_user_agents.is_some()),
                    ("mode", r.mode.is_some()),
                    ("credentials", r.credentials.is_some()),
                ] {
                    only_for(field, present, "oci or file");
                }
                let kind = match kind {
                    "pypi" => IndexKind::Pypi,
                    "npm" => IndexKind::Npm,
                    _ => IndexKind::Helm,
                };
                self.index(s, &base, r, kind).map(Target::Index)
            }
            "oci" => {
                only_for("path", r.path.is_some(), "file");
                only_for("github", r.github.is_some(), "file");
                self.oci(s, &base, r, mode.unwrap_or(Mode::Auto), gateway).map(Target::Oci)
            }
            "file" => {
                only_for("credentials", r.credentials.is_some(), "oci");
                only_for("image", r.image.is_some(), "oci");
                only_for("auth", r.auth.is_some(), "oci");
                only_for("fallback", r.fallback.is_some(), "oci");
                only_for("redirect_user_agents", r.redirect_user_agents.is_some(), "oci");
                if mode == Some(Mode::Auto) {
                    self.report(s, &p("mode"), "mode", "file routes take `redirect` (the default) or `proxy`");
                }
                self.file(s, &base, r, mode.unwrap_or(Mode::Redirect)).map(Target::File)
            }
            other => {
                self.report(
                    s,
                    &p("kind"),
                    "kind",
                    format!("`{other}` is not a route kind; expected `oci`, `file`, `pypi`, `npm` or `helm`"),
                );
                None
            }
        };
        Some((i, Route { name: name?, host: host?, target: target? }))
    }

    fn required<'v>(&mut self, s: &str, base: &str, field: &str, v: &'v Option<String>, expected: &str) -> Option<&'v str> {
        if v.is_none() {
            self.report(s, base, field, format!("missing; expected {expected}"));
        }
        v.as_deref()
    }

    fn oci(&mut self, s: &str, base: &str, r: RawRoute, mode: Mode, gateway: &Gateway) -> Option<OciRoute> {
        let p = |f: &str| join(base, f);
        let image = self.required(s, base, "image", &r.image, "the repository clients pull, e.g. `app` or `acme/*`");
        let image = image.and_then(|v| self.check(s, &p("image"), "image", v, grammar::repo_pattern));
        let upstream = self.required(s, base, "upstream", &r.upstream, "where the image lives, e.g. `ghcr.io/acme-org/app`");
        let upstream = upstream.and_then(|v| self.check(s, &p("upstream"), "upstream", v, grammar::oci_upstream));
        if let (Some(i), Some(u)) = (&image, &upstream) {
            if i.is_glob() != u.repo.is_glob() {
                let msg = if i.is_glob() {
                    "`image` is a glob, so the upstream must end in `/*` too (the matched rest is appended)"
                } else {
                    "ends in `/*` but `image` names a single repository"
                };
                self.report(s, &p("upstream"), "upstream", msg);
                return None;
            }
        }
        let glob = image.as_ref().map(|i| i.is_glob());
        let mut fallback_upstreams = Vec::new();
        for (i, f) in r.fallback.iter().flatten().enumerate() {
            let (path, field) = (format!("{}[{i}]", p("fallback")), format!("fallback[{i}]"));
            let Some(u) = self.check(s, &path, &field, f, grammar::oci_upstream) else { continue };
            if glob.is_some_and(|g| g != u.repo.is_glob()) {
                self.report(s, &path, &field, "must be a glob exactly when `image` is one, like `upstream`");
            } else if upstream.as_ref().is_some_and(|p| p.origin == u.origin)
                || fallback_upstreams.iter().any(|x: &OciUpstream| x.origin == u.origin)
            {
                self.report(s, &path, &field, "names a registry already used by this route; fallbacks are other registries");
            } else {
                fallback_upstreams.push(u);
            }
        }
        let explicit_auth = r.auth.is_some();
        let redirect_user_agents = match r.redirect_user_agents {
            Some(list) => self.check_list(s, &p("redirect_user_agents"), "redirect_user_agents", list, grammar::ua_pattern),
            None => gateway.redirect_user_agents.clone(),
        };
        let auth = match r.auth {
            None => upstream.as_ref().and_then(|u| known_auth(&u.origin.host)),
            Some(RawAuth::Word(w)) if w == "none" => Some(UpstreamAuth::Anonymous),
            Some(RawAuth::Word(w)) => {
                self.report(s, &p("auth"), "auth", format!("`{w}` is not understood; expected `none` or a map with `realm` and `service`"));
                None
            }
            Some(RawAuth::Token(t)) => {
                let ab = p("auth");
                self.unknown(s, &ab, &t.unknown, &["realm", "service"]);
                let realm = self.required(s, &ab, "auth.realm", &t.realm, "the upstream token endpoint URL");
                let realm = realm.and_then(|v| {
                    self.check(s, &join(&ab, "realm"), "auth.realm", v, grammar::plain_url).map(|(o, path)| format!("{o}{path}"))
                });
                let service = self.required(s, &ab, "auth.service", &t.service, "the upstream's service name");
                let service = service.and_then(|v| self.check(s, &join(&ab, "service"), "auth.service", v, grammar::service));
                Some(UpstreamAuth::Token { realm: realm?, service: service? })
            }
        };
        // A fallback on a registry everyone uses gets its known token endpoint;
        // any other shares the route's `auth`.
        let fallbacks = fallback_upstreams
            .into_iter()
            .map(|u| {
                let auth = known_auth(&u.origin.host).or_else(|| if explicit_auth { auth.clone() } else { None });
                Fallback { upstream: u, auth }
            })
            .collect();
        let credentials = match &r.credentials {
            None => Some(None),
            Some(c) => self.credentials(s, &p("credentials"), c, auth.as_ref()).map(Some),
        };
        Some(OciRoute { image: image?, upstream: upstream?, mode, redirect_user_agents, auth, fallbacks, credentials: credentials? })
    }

    fn file(&mut self, s: &str, base: &str, r: RawRoute, mode: Mode) -> Option<FileRoute> {
        let p = |f: &str| join(base, f);
        if let Some(repo) = &r.github {
            return self.github_file(s, base, repo, &r, mode);
        }
        let path = self.required(s, base, "path", &r.path, "a path template such as `/downloads/{version}/{file}`");
        let path = path.and_then(|v| self.check(s, &p("path"), "path", v, grammar::path_template));
        let upstream = self.required(
            s,
            base,
            "upstream",
            &r.upstream,
            "a URL template such as `https://github.com/acme/app/releases/download/v{version}/{file}`, or `github: OWNER/REPO`",
        );
        let (origin, upstream_path) = upstream.and_then(|v| self.check(s, &p("upstream"), "upstream", v, grammar::url_template))?;
        let path = path?;
        self.file_vars(s, base, "upstream", path, origin, upstream_path, mode)
    }

    /// The analytics store and where its account is.
    fn analytics(&mut self, a: RawAnalytics) -> Option<AnalyticsStore> {
        const S: &str = "analytics";
        self.unknown(S, S, &a.unknown, &["store", "account"]);
        let Some(url) = a.store.as_deref() else {
            self.report(S, S, "store", "missing; give `store: clickhouse://HOST:PORT/DATABASE`, or drop `analytics` for SQLite");
            return None;
        };
        let url = self.check(S, "analytics.store", "store", url, grammar::store_url);
        let account = match &a.account {
            None => Some(None),
            Some(c) => {
                let at = "analytics.account";
                self.unknown(S, at, &c.unknown, &["file", "env"]);
                match (&c.file, &c.env) {
                    (Some(f), None) => self
                        .check(S, &join(at, "file"), "account.file", f, |v| grammar::file_path(v, true))
                        .map(|f| Some(Credentials::File(f))),
                    (None, Some(e)) => {
                        self.check(S, &join(at, "env"), "account.env", e, grammar::env_name).map(|e| Some(Credentials::Env(e)))
                    }
                    _ => {
                        self.report(S, at, "account", "give one of `file: PATH` or `env: VARIABLE`, holding `USER:PASSWORD`");
                        None
                    }
                }
            }
        };
        Some(AnalyticsStore { url: url?, account: account? })
    }

    /// Where the upstream account is: a file or a variable, and a token endpoint to use it on.
    fn credentials(&mut self, s: &str, at: &str, c: &RawCredentials, auth: Option<&UpstreamAuth>) -> Option<Credentials> {
        self.unknown(s, at, &c.unknown, &["file", "env"]);
        let found = match (&c.file, &c.env) {
            (Some(f), None) => {
                self.check(s, &join(at, "file"), "credentials.file", f, |v| grammar::file_path(v, true)).map(Credentials::File)
            }
            (None, Some(e)) => self.check(s, &join(at, "env"), "credentials.env", e, grammar::env_name).map(Credentials::Env),
            _ => {
                self.report(s, at, "credentials", "give one of `file: PATH` or `env: VARIABLE`, holding `USER:TOKEN`");
                None
            }
        };
        if !matches!(auth, Some(UpstreamAuth::Token { .. })) {
            self.report(
                s,
                at,
                "credentials",
                "are used on the upstream's token endpoint: give `auth: {realm: URL, service: NAME}` (known registries need none), or drop them for an anonymous registry",
            );
            return None;
        }
        found
    }

    /// A package index: where it is served, its upstream, its packages.
    fn index(&mut self, s: &str, base: &str, r: RawRoute, kind: IndexKind) -> Option<IndexRoute> {
        let p = |f: &str| join(base, f);
        let path = match &r.path {
            Some(v) => self.check(s, &p("path"), "path", v, grammar::index_path),
            None => Some(kind.default_path().to_string()),
        };
        let expected = match kind {
            IndexKind::Pypi => "the upstream simple index, e.g. `https://pypi.org/simple/`",
            IndexKind::Npm => "the upstream registry, e.g. `https://registry.npmjs.org/`",
            IndexKind::Helm => "the chart repository `index.yaml` is under, e.g. `https://acme.github.io/charts/`",
        };
        let upstream = self.required(s, base, "upstream", &r.upstream, expected);
        let upstream = upstream.and_then(|v| self.check(s, &p("upstream"), "upstream", v, grammar::index_upstream));
        let check_name: fn(&str) -> Result<String, String> = match kind {
            IndexKind::Pypi => grammar::pypi_project,
            IndexKind::Npm => grammar::npm_package,
            IndexKind::Helm => grammar::helm_chart,
        };
        let mut packages = Vec::new();
        match &r.packages {
            Some(list) => {
                for (k, name) in list.iter().enumerate() {
                    let at = format!("{}[{k}]", p("packages"));
                    if let Some(n) = self.check(s, &at, "packages", name, check_name) {
                        if packages.contains(&n) {
                            self.report(s, &at, "packages", format!("`{name}` is listed twice (as `{n}`)"));
                        }
                        packages.push(n);
                    }
                }
            }
            None if kind != IndexKind::Helm => {
                self.report(s, base, "packages", "missing; list the packages the gateway serves, e.g. `packages: [acme-client]`");
            }
            None => {}
        }
        let answer = r.unknown_packages.as_ref().map(RawAnswer::text);
        let unknown_upstream = match (answer.as_deref(), kind) {
            (None | Some("404"), _) => false,
            (Some("upstream"), IndexKind::Pypi | IndexKind::Npm) => true,
            (Some(_), IndexKind::Helm) => {
                self.report(s, &p("unknown"), "unknown", "only applies to routes of kind `pypi` or `npm`");
                false
            }
            (Some(other), _) => {
                self.report(s, &p("unknown"), "unknown", format!("`{other}` is not an answer; expected `404` or `upstream`"));
                false
            }
        };
        let (upstream_origin, upstream_path) = upstream?;
        Some(IndexRoute { kind, path: path?, upstream_origin, upstream_path, packages, unknown_upstream, public_url: None })
    }

    /// `github: OWNER/REPO`: the release assets of a GitHub repository.
    fn github_file(&mut self, s: &str, base: &str, repo: &str, r: &RawRoute, mode: Mode) -> Option<FileRoute> {
        let p = |f: &str| join(base, f);
        if r.upstream.is_some() {
            self.report(s, &p("upstream"), "upstream", "give `github` or `upstream`, not both");
        }
        let repo = self.check(s, &p("github"), "github", repo, grammar::github_repo);
        let path_field = if r.path.is_some() { "path" } else { "github" };
        let path = r.path.as_deref().unwrap_or(GITHUB_DEFAULT_PATH);
        let path = self.check(s, &p(path_field), path_field, path, grammar::path_template)?;
        let declared: BTreeSet<&str> = vars(&path).collect();
        if !(declared.contains("tag") && declared.contains("file")) {
            self.report(
                s,
                &p(path_field),
                path_field,
                "with `github`, `path` declares `{tag}` and `{file}`, e.g. `/downloads/{tag}/{file}`",
            );
            return None;
        }
        if r.upstream.is_some() {
            return None;
        }
        let url = format!("https://github.com/{}/releases/download/{{tag}}/{{file}}", repo?);
        let (origin, upstream_path) = grammar::url_template(&url).ok()?;
        self.file_vars(s, base, path_field, path, origin, upstream_path, mode)
    }

    /// The placeholders of `upstream` are declared once each in `path`.
    #[allow(clippy::too_many_arguments)]
    fn file_vars(
        &mut self,
        s: &str,
        base: &str,
        upstream_field: &str,
        path: Vec<Piece>,
        origin: Origin,
        upstream_path: Vec<Piece>,
        mode: Mode,
    ) -> Option<FileRoute> {
        let p = |f: &str| join(base, f);
        let declared: BTreeSet<&str> = vars(&path).collect();
        for v in vars(&upstream_path) {
            if !declared.contains(v) {
                let known = declared.iter().map(|d| format!("{{{d}}}")).collect::<Vec<_>>().join(", ");
                self.report(s, &p(upstream_field), upstream_field, format!("`{{{v}}}` is not declared in `path` (declared: {known})"));
                return None;
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = vars(&path).find(|v| !seen.insert(*v)) {
            self.report(s, &p("path"), "path", format!("`{{{dup}}}` appears twice"));
            return None;
        }
        Some(FileRoute { path, upstream_origin: origin, upstream_path, mode })
    }

    fn at_route(&mut self, idx: usize, route: &Route, field: &str, message: String) {
        let path = format!("routes[{idx}].{field}");
        self.report(&format!("route \"{}\"", route.name), &path, field, message);
    }

    /// Checked on the names as written, so a route with other problems still counts.
    fn duplicate_names(&mut self, routes: &[RawRoute]) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (idx, r) in routes.iter().enumerate() {
            let Some(name) = r.name.as_deref() else { continue };
            if let Some(prev) = first.insert(name, idx) {
                let line = self.spans.value(&format!("routes[{prev}].name")).map(|p| format!(" at line {}", p.line)).unwrap_or_default();
                let subject = route_subject(idx, Some(name));
                self.report(
                    &subject,
                    &format!("routes[{idx}].name"),
                    "name",
                    format!("duplicate name; first used by route #{}{line}", prev + 1),
                );
            }
        }
    }

    /// Two routes that could answer the same request are an error, not a precedence rule.
    fn overlaps(&mut self, routes: &[(usize, Route)]) {
        let same_host = |a: &Route, b: &Route| a.host.is_none() || b.host.is_none() || a.host == b.host;
        let mut found = Vec::new();
        // Exact names: index by name, so 100,000 routes stay linear.
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut globs = Vec::new();
        let mut files = Vec::new();
        let mut prefixes = Vec::new();
        for (k, (_, r)) in routes.iter().enumerate() {
            match &r.target {
                Target::Oci(o) => match &o.image {
                    RepoPattern::Exact(n) => by_name.entry(n).or_default().push(k),
                    RepoPattern::Prefix(_) => globs.push(k),
                },
                Target::File(f) => files.push((k, shape(&f.path))),
                Target::Index(ix) => prefixes.push((k, ix.path.as_str())),
            }
        }
        // A prefix covers the routes whose paths begin with it.
        let literal_head = |k: usize| match &routes[k].1.target {
            Target::File(f) => {
                f.path.iter().map_while(|p| if let Piece::Literal(l) = p { Some(l.as_str()) } else { None }).collect::<String>()
            }
            _ => String::new(),
        };
        for (a, &(ka, pa)) in prefixes.iter().enumerate() {
            for &(kb, pb) in &prefixes[..a] {
                if (pa.starts_with(pb) || pb.starts_with(pa)) && same_host(&routes[ka].1, &routes[kb].1) {
                    found.push((ka, kb));
                }
            }
            for &(kf, _) in &files {
                if literal_head(kf).starts_with(pa) && same_host(&routes[ka].1, &routes[kf].1) {
                    found.push((ka.max(kf), ka.min(kf)));
                }
            }
        }
        for ks in by_name.values() {
            for (a, &ka) in ks.iter().enumerate() {
                if let Some(&kb) = ks[..a].iter().find(|&&kb| same_host(&routes[kb].1, &routes[ka].1)) {
                    found.push((ka, kb));
                }
            }
        }
        let image = |k: usize| match &routes[k].1.target {
            Target::Oci(o) => Some(&o.image),
            Target::File(_) | Target::Index(_) => None,
        };
        for &g in &globs {
            for (k, (_, r)) in routes.iter().enumerate() {
                let earlier_glob = globs.contains(&k) && k >= g;
                if k == g || earlier_glob || !same_host(&routes[g].1, r) {
                    continue;
                }
                if let (Some(a), Some(b)) = (image(g), image(k)) {
                    if a.overlaps(b) {
                        found.push((g.max(k), g.min(k)));
                    }
                }
            }
        }
        for (a, (ka, sa)) in files.iter().enumerate() {
            if let Some((kb, _)) = files[..a].iter().find(|(kb, sb)| sb == sa && same_host(&routes[*kb].1, &routes[*ka].1)) {
                found.push((*ka, *kb));
            }
        }
        found.sort();
        found.dedup();
        for (later, earlier) in found {
            let (idx, r) = &routes[later];
            let other = &routes[earlier].1;
            let what = match (&r.target, &other.target) {
                (Target::Oci(a), Target::Oci(b)) => format!("image `{}` overlaps `{}`", a.image, b.image),
                _ => "path overlaps".to_string(),
            };
            let field = if matches!(r.target, Target::Oci(_)) { "image" } else { "path" };
            self.at_route(
                *idx,
                r,
                field,
                format!("{what} of route \"{}\" on the same host; a request must match one route only", other.name),
            );
        }
    }

    /// `indices[k]` is where typed route `k` stands in the file.
    fn cross_checks(&mut self, config: &Config, indices: &[usize]) {
        let auths = config.host_auths();
        // A host that renames or fronts several upstreams hands out tokens itself.
        for (idx, r) in config.routes.iter().enumerate() {
            let Target::Oci(o) = &r.target else { continue };
            let missing = std::iter::once((&o.upstream, &o.auth))
                .chain(o.fallbacks.iter().map(|f| (&f.upstream, &f.auth)))
                .find(|(_, a)| a.is_none());
            if let Some((u, _)) = missing.filter(|_| config.on_gateway_host(r, &auths)) {
                self.at_route(
                    indices[idx],
                    r,
                    "auth",
                    format!(
                        "the gateway issues its own tokens for this host (it renames images or fronts several upstreams), \
                         so it must know how to get one from `{}`: set `auth: none` for an anonymous registry, \
                         or `auth: {{realm: URL, service: NAME}}` from its `WWW-Authenticate` header",
                        u.origin
                    ),
                );
            }
        }
        for (idx, r) in config.routes.iter().enumerate() {
            if matches!(&r.target, Target::Oci(o) if o.mode == Mode::Redirect) && config.redirect_loses_auth(r, &auths) {
                self.at_route(
                    indices[idx],
                    r,
                    "mode",
                    "`redirect` cannot work here: the upstream needs a token and this host \
                    issues its own challenge (it renames images or fronts several upstreams), so clients would reach \
                    the upstream without their token; use `auto` or `proxy`, or give the route a host of its own without renaming"
                        .into(),
                );
            }
        }
        // nginx resolves proxy targets at request time and needs a resolver for names.
        if config.gateway.resolver.is_empty() {
            if let Some((r, host)) = config.routes.iter().find_map(|r| proxied_dns_host(&auths, r).map(|h| (r, h))) {
                self.report(
                    "gateway",
                    "gateway",
                    "resolver",
                    format!(
                        "required because route \"{}\" may proxy to `{host}`, which nginx resolves at request time, \
                     and the system names no nameserver (/etc/resolv.conf); set the DNS servers, e.g. `resolver: [\"10.0.0.53\"]`",
                        r.name
                    ),
                );
            }
        }
    }
}

fn is_dns_name(host: &str) -> bool {
    !host.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err()
}

/// A DNS name nginx may have to resolve for this route, if any.
fn proxied_dns_host(auths: &HostAuths, r: &Route) -> Option<String> {
    match &r.target {
        Target::Oci(o) => {
            let proxies = o.mode != Mode::Redirect;
            let token_host = match (&o.auth, r.host.as_deref().map(|h| auths.get(h))) {
                (Some(UpstreamAuth::Token { realm, .. }), Some(HostAuth::Gateway) | None) => {
                    grammar::plain_url(realm).ok().map(|(o, _)| o.host)
                }
                _ => None,
            };
            let up = &o.upstream.origin.host;
            if proxies && is_dns_name(up) {
                Some(up.clone())
            } else {
                token_host.filter(|h| is_dns_name(h))
            }
        }
        Target::File(f) => (f.mode == Mode::Proxy && is_dns_name(&f.upstream_origin.host)).then(|| f.upstream_origin.host.clone()),
        // The sidecar fetches index documents; nginx only redirects.
        Target::Index(_) => None,
    }
}

fn vars(pieces: &[Piece]) -> impl Iterator<Item = &str> {
    pieces.iter().filter_map(|p| match p {
        Piece::Var(v) => Some(v.as_str()),
        Piece::Literal(_) => None,
    })
}

/// A path template with placeholder names erased: two routes with one shape overlap.
fn shape(pieces: &[Piece]) -> Vec<Option<&str>> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(l) => Some(l.as_str()),
            Piece::Var(_) => None,
        })
        .collect()
}

/// The allowed key closest to a misspelt one, if it is close enough.
fn suggest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed.iter().map(|a| (edit_distance(key, a), *a)).filter(|(d, _)| *d <= 2).min().map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
