//! `pullgate validate`, `render` and `schema`, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::Standalone;
use crate::ensure;
use crate::support::gateway::PULLGATE;

pub fn tests() -> Vec<(String, Standalone)> {
    let cases: Vec<(&str, Standalone)> = vec![
        ("cli::validate_reports_every_problem_with_position", validate_broken),
        ("cli::validate_reports_cross_route_problems", validate_cross_route),
        ("cli::validate_reports_yaml_syntax_with_position", validate_syntax),
        ("cli::validate_accepts_the_example", validate_example),
        ("cli::render_check_reports_nginx_message", render_check_nginx_error),
        ("cli::schema_file_is_in_sync", schema_in_sync),
        ("cli::example_nginx_conf_accepts_the_include", example_nginx_conf),
        ("cli::validate_reports_tls_problems", validate_tls),
        ("cli::validate_reports_github_problems", validate_github),
        ("cli::architecture_code_map_matches_the_tree", architecture_matches_tree),
        ("cli::validate_names_the_resolver_and_warns_when_it_is_silent", validate_resolver),
        ("cli::crate_layering_follows_the_data_flow", crate_layering),
    ];
    cases.into_iter().map(|(n, f)| (n.to_string(), f)).collect()
}

pub fn repo_root() -> PathBuf {
    // sidecar/pullgate -> the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

fn pullgate(args: &[&str]) -> Output {
    Command::new(PULLGATE).args(args).output().expect("run pullgate")
}

fn scratch(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pg-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Run validate, expect exit 2, and find each `LINE:COL: ...fragment` in stderr.
fn expect_problems(path: &Path, expected: &[(u32, u32, &str)]) -> Result<(), String> {
    // As on a machine whose resolv.conf names no nameserver: no default resolver.
    let out = Command::new(PULLGATE)
        .args(["validate", "-c", path.to_str().unwrap()])
        .env("PULLGATE_RESOLV_CONF", "/dev/null")
        .output()
        .expect("run pullgate");
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(2), "exit {:?}, stderr:\n{err}", out.status.code());
    let file = path.display().to_string();
    for (line, col, fragment) in expected {
        let prefix = format!("{file}:{line}:{col}: ");
        ensure!(err.lines().any(|l| l.starts_with(&prefix) && l.contains(fragment)), "no problem `{prefix}...{fragment}` in:\n{err}");
    }
    let reported = err.lines().filter(|l| l.starts_with(&file)).count();
    ensure!(reported == expected.len(), "{reported} problems reported, {} expected:\n{err}", expected.len());
    Ok(())
}

fn validate_broken() -> Result<(), String> {
    let path = repo_root().join("tests/fixtures/broken.yaml");
    expect_problems(
        &path,
        &[
            (3, 12, "gateway: listen[0]: `99999` is not a port"),
            (4, 14, "gateway: resolver[0]: expected an IP address"),
            (6, 13, "gateway: hosts[0].name: host names are matched in lower case: write `get.acme.dev`"),
            (8, 9, "gateway: hosts[0].tls: missing `key`"),
            (8, 15, "gateway: hosts[0].tls.cert: expected an absolute path"),
            (11, 12, "route \"app\": image: expected a repository name"),
            (13, 11, "route \"app\": mode: `fast` is not a mode; expected `auto`, `redirect` or `proxy`"),
            (14, 11, "route \"app\": name: duplicate name; first used by route #1 at line 10"),
            (16, 15, "route \"app\": upstream: only `http://` and `https://` are supported"),
            (17, 11, "route #3: name: expected 1-63 characters"),
            (19, 15, "route #3: upstream: `image` is a glob, so the upstream must end in `/*`"),
            (22, 15, "route \"dup-image\": upstream: expected a repository name"),
            (23, 5, "route \"dup-image\": upstrem: unknown key; did you mean `upstream`?"),
            (27, 15, "route \"files\": upstream: `{verison}` is not declared in `path` (declared: {file}, {version})"),
            (30, 15, "route \"creds\": upstream: credentials in URLs are not allowed"),
            (31, 28, "route \"creds\": redirect_user_agents[0]: `{` is not allowed"),
            (33, 11, "route \"nowhere\": kind: `conda` is not a route kind"),
            (36, 11, "route \"py\": path: `/v2/`, `/token` and `/.well-known/` belong to the registry"),
            (37, 15, "route \"py\": upstream: the path may contain only"),
            (38, 29, "route \"py\": packages: `Acme_Client` is listed twice (as `acme-client`)"),
            (38, 42, "route \"py\": packages: expected a Python project name"),
            (39, 14, "route \"py\": unknown: `maybe` is not an answer; expected `404` or `upstream`"),
            (40, 5, "route \"js\": host: an npm route needs a `host` declared in `gateway.hosts` with a `public_url`"),
            (43, 16, "route \"js\": packages: expected an npm package name"),
            (48, 19, "route \"anon-creds\": credentials: are used on the upstream's token endpoint"),
            (48, 24, "route \"anon-creds\": credentials.env: expected an environment variable name"),
            (50, 10, "analytics: store: no account in the URL (it would be logged)"),
            (51, 19, "analytics: account.file: expected an absolute path"),
        ],
    )
}

fn validate_cross_route() -> Result<(), String> {
    let yaml = "\
version: 1
gateway:
  hosts:
    - name: get.acme.dev
routes:
  - name: all-acme
    host: get.acme.dev
    image: acme/*
    upstream: ghcr.io/acme/*
  - name: one
    image: acme/app
    upstream: quay.io/acme/app
  - name: mirror
    host: get.acme.dev
    image: mirror
    upstream: registry.acme.internal:5000/mirror
  - name: pinned
    host: get.acme.dev
    image: pinned
    upstream: ghcr.io/acme/pinned
    mode: redirect
  - name: files-a
    kind: file
    path: /dl/{v}/{f}
    upstream: https://example.com/{v}/{f}
  - name: files-b
    kind: file
    path: /dl/{version}/{file}
    upstream: https://example.com/{version}/{file}
    mode: auto
bogus: true
";
    let path = scratch("cross", yaml);
    expect_problems(
        &path,
        &[
            (3, 3, "gateway: resolver: required because route \"all-acme\" may proxy to `ghcr.io`"),
            (11, 12, "route \"one\": image: image `acme/app` overlaps `acme/*` of route \"all-acme\""),
            (13, 5, "route \"mirror\": auth: the gateway issues its own tokens for this host"),
            (21, 11, "route \"pinned\": mode: `redirect` cannot work here"),
            (28, 11, "route \"files-b\": path: path overlaps of route \"files-a\""),
            (30, 11, "route \"files-b\": mode: file routes take `redirect`"),
            (31, 1, "bogus: unknown key; expected one of: version, gateway, routes"),
        ],
    )
}

fn validate_tls() -> Result<(), String> {
    let yaml = "\
version: 1
gateway:
  acme_webroot: www/acme
  hosts:
    - name: get.acme.dev
      public_url: http://get.acme.dev
      tls:
        cert: /etc/tls/c.pem
        key: /etc/tls/k.pem
        redirect_http: true
";
    let path = scratch("tls", yaml);
    expect_problems(
        &path,
        &[
            (3, 17, "gateway: acme_webroot: expected an absolute path"),
            (10, 24, "hosts[0].tls.redirect_http: needs the host's `public_url` to be an `https://` URL"),
        ],
    )
}

fn validate_github() -> Result<(), String> {
    let yaml = "\
version: 1
routes:
  - name: rel
    kind: file
    github: acme-org/app
  - name: bad
    kind: file
    github: acme/x/y
    path: /b/{version}/{file}
  - name: both
    kind: file
    github: acme/w
    upstream: https://x.org/{file}
    path: /d/{tag}/{file}
  - name: img
    image: app
    upstream: registry.acme.test:5000/app
    mode: redirect
    github: acme/app
";
    let path = scratch("github", yaml);
    expect_problems(
        &path,
        &[
            (8, 13, "route \"bad\": github: expected `OWNER/REPO`"),
            (9, 11, "route \"bad\": path: with `github`, `path` declares `{tag}` and `{file}`"),
            (13, 15, "route \"both\": upstream: give `github` or `upstream`, not both"),
            (19, 13, "route \"img\": github: only applies to routes of kind `file`"),
        ],
    )
}

fn validate_syntax() -> Result<(), String> {
    let path = scratch("syntax", "version: 1\nroutes:\n  - name: app\n    image: [unclosed\n");
    let out = pullgate(&["validate", "-c", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    ensure!(out.status.code() == Some(2), "exit {:?}: {err}", out.status.code());
    ensure!(err.starts_with(&format!("{file}:5:1: ")) || err.starts_with(&format!("{file}:4:")), "no position in: {err}");
    let path = scratch("types", "version: 1\nroutes:\n  - name: app\n    redirect_user_agents: docker\n");
    let err = String::from_utf8_lossy(&pullgate(&["validate", "-c", path.to_str().unwrap()]).stderr).into_owned();
    ensure!(err.starts_with(&format!("{}:4:", path.display())) && err.contains("redirect_user_agents"), "type error: {err}");
    Ok(())
}

fn validate_example() -> Result<(), String> {
    for example in ["compose/routes.yaml", "docs/examples/routes.yaml"] {
        let path = repo_root().join(example);
        let out = pullgate(&["validate", "-c", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(stdout.lines().count() == 1 && stdout.contains(": ok: "), "{example}: summary: {stdout}");
    }
    Ok(())
}

fn render_check_nginx_error() -> Result<(), String> {
    let yaml = "version: 1\ngateway:\n  listen: [\"127.0.0.1:8080\"]\n  hosts:\n    - name: get.acme.dev\n      tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}\nroutes:\n  - name: app\n    image: app\n    upstream: http://127.0.0.2:5000/app\n";
    let path = scratch("tls", yaml);
    let out_dir = path.parent().unwrap().join("out");
    let state = path.parent().unwrap().join("state");
    let out = pullgate(&[
        "--state-dir",
        state.to_str().unwrap(),
        "render",
        "-c",
        path.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--check",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(1), "exit {:?}: {err}", out.status.code());
    ensure!(err.contains("nginx rejected the rendered config") && err.contains("/nonexistent/cert.pem"), "{err}");
    ensure!(!out_dir.join("pullgate.conf").exists(), "a rejected config was written");
    Ok(())
}

fn schema_in_sync() -> Result<(), String> {
    let out = pullgate(&["schema"]);
    ensure!(out.status.success(), "pullgate schema failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    ensure!(out.stdout.starts_with(b"{") && out.stdout.len() > 1000, "pullgate schema printed no schema");
    let file = repo_root().join("docs/routes.schema.json");
    let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
    if crate::support::update_golden()? {
        std::fs::write(&file, &out.stdout).map_err(|e| e.to_string())?;
        return Ok(());
    }
    ensure!(
        on_disk.as_bytes() == out.stdout,
        "docs/routes.schema.json is stale: run `UPDATE_GOLDEN=1 cargo test` (or `pullgate schema > docs/routes.schema.json`)"
    );
    Ok(())
}

/// nginx/nginx.conf (the example for your own nginx) and nginx/compose.conf
/// (the kit's, with the kit's routes.yaml: Lua mode, TLS-ready), each
/// pointed at a rendered include, pass `nginx -t`.
fn example_nginx_conf() -> Result<(), String> {
    let root = repo_root();
    for (name, conf, routes) in
        [("example", "nginx/nginx.conf", "tests/golden/files.yaml"), ("kit", "nginx/compose.conf", "compose/routes.yaml")]
    {
        let dir = std::env::temp_dir().join(format!("pg-cli-{}-{name}", std::process::id()));
        let out = dir.join("pullgate");
        let state = dir.join("state");
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
        let routes = root.join(routes);
        let r =
            pullgate(&["--state-dir", state.to_str().unwrap(), "render", "-c", routes.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        ensure!(r.status.success(), "render {}: {}", routes.display(), String::from_utf8_lossy(&r.stderr));
        let d = dir.display();
        // The kit's access log is on a volume at /var/log/pullgate/.
        let include = out.join("pullgate.conf");
        let rendered = std::fs::read_to_string(&include).map_err(|e| e.to_string())?;
        std::fs::write(&include, rendered.replace("/var/log/pullgate/", &format!("{d}/logs/"))).map_err(|e| e.to_string())?;
        let original = std::fs::read_to_string(root.join(conf)).map_err(|e| e.to_string())?;
        let text = original
            .replace("/etc/pullgate/rendered/", &format!("{}/", out.display()))
            .replace("/etc/pullgate/", &format!("{}/", out.display()))
            .replace("/run/nginx.pid", &format!("{d}/nginx.pid"))
            .replace("/run/pullgate/", &format!("{d}/"))
            .replace("/tmp/nginx-", &format!("{d}/tmp-"))
            .replace("/var/log/nginx/", &format!("{d}/logs/"));
        ensure!(text != original, "{conf}: its paths changed; update this test");
        std::fs::write(dir.join("nginx.conf"), text).map_err(|e| e.to_string())?;
        let t = Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .output()
            .map_err(|e| e.to_string())?;
        ensure!(t.status.success(), "nginx -t on {conf}: {}", String::from_utf8_lossy(&t.stderr));
    }
    Ok(())
}

/// ARCHITECTURE.md names every crate in sidecar/ under a heading of its own,
/// names no crate that does not exist, and every file it cites is there.
fn architecture_matches_tree() -> Result<(), String> {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).map_err(|e| e.to_string())?;
    let mut crates: Vec<String> = std::fs::read_dir(root.join("sidecar"))
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    ensure!(crates.len() >= 6, "too few crates found in sidecar/: {crates:?}");
    let mut described: Vec<String> =
        text.lines().filter_map(|l| l.strip_prefix("### `sidecar/")?.strip_suffix('`')).map(str::to_string).collect();
    described.sort();
    ensure!(described == crates, "ARCHITECTURE.md describes {described:?}, sidecar/ has {crates:?}");
    // Every path it cites in backquotes exists (ignoring globs and placeholders).
    let cited: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| {
            ["sidecar/", "templates/", "lua/", "tests/", "docs/", "nginx/"].iter().any(|p| t.starts_with(p)) && !t.contains(['*', ' ', '{'])
        })
        .collect();
    ensure!(cited.len() >= 10, "ARCHITECTURE.md cites only {} paths: {cited:?}", cited.len());
    let missing: Vec<&&str> = cited.iter().filter(|p| !root.join(p).exists()).collect();
    ensure!(missing.is_empty(), "ARCHITECTURE.md cites paths that do not exist: {missing:?}");
    Ok(())
}

/// Without `resolver`, the system's nameservers are used and `validate` says
/// so; a DNS server that does not answer is warned about, one that does is not.
fn validate_resolver() -> Result<(), String> {
    let routes = "routes:\n  - {name: app, image: app, upstream: ghcr.io/acme/app, mode: proxy}\n";
    let path = scratch("resolver-default", &format!("version: 1\n{routes}"));
    let resolv = path.with_file_name("resolv.conf");
    // Nothing listens on 127.0.0.9:53: the query is refused at once.
    std::fs::write(&resolv, "# test\nsearch example.org\nnameserver 127.0.0.9\n").map_err(|e| e.to_string())?;
    let validate = |path: &Path| {
        Command::new(PULLGATE)
            .args(["validate", "-c", path.to_str().unwrap()])
            .env("PULLGATE_RESOLV_CONF", &resolv)
            .output()
            .expect("run pullgate")
    };
    let out = validate(&path);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "default resolver: exit {:?}: {stderr}", out.status.code());
    let said = format!("resolver 127.0.0.9 (from {})", resolv.display());
    ensure!(stdout.lines().count() == 1 && stdout.contains(&said), "summary does not say {said:?}: {stdout}");
    ensure!(stderr.contains("warning: resolver 127.0.0.9 does not answer"), "no warning for a silent resolver: {stderr}");
    // Positive control: a DNS server that answers (the test's own), named in routes.yaml.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        if let Ok((n, from)) = server.recv_from(&mut buf) {
            buf[2] |= 0x80; // a response, whatever it says
            let _ = server.send_to(&buf[..n], from);
        }
    });
    let path = scratch("resolver-set", &format!("version: 1\ngateway:\n  resolver: [\"{addr}\"]\n{routes}"));
    let out = validate(&path);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "set resolver: exit {:?}: {stderr}", out.status.code());
    ensure!(stdout.contains(&format!("; resolver {addr}\n")), "summary does not name {addr}: {stdout}");
    ensure!(!stderr.contains("warning"), "a warning for an answering resolver: {stderr}");
    answering.join().map_err(|_| "the test's DNS server panicked".to_string())?;
    Ok(())
}

/// The rules of ARCHITECTURE.md that a compiler does not check: each crate
/// depends only on the stages before it, only the binary knows clap and
/// reads the environment, and `config` and `render` do no I/O and read no
/// clock outside their tests.
fn crate_layering() -> Result<(), String> {
    let root = repo_root().join("sidecar");
    // Each crate, and the pullgate crates it may depend on.
    let allowed: [(&str, &[&str]); 10] = [
        ("base", &[]),
        ("config", &[]),
        ("index", &["config"]),
        ("render", &["config", "index"]),
        ("nginx", &["base", "render"]),
        ("daemon", &["base", "config", "index", "render", "nginx"]),
        ("ship", &["base"]),
        ("analytics", &["base", "ship"]),
        ("dashboard", &["base", "analytics"]),
        ("pullgate", &["base", "config", "render", "nginx", "daemon", "ship", "analytics", "dashboard"]),
    ];
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    for (krate, may) in allowed {
        let manifest = read(&root.join(krate).join("Cargo.toml"))?;
        let deps = manifest.split("[dev-dependencies]").next().unwrap_or("");
        for line in deps.lines() {
            let Some(dep) = line.strip_prefix("pullgate-").and_then(|l| l.split(['.', ' ', '=']).next()) else { continue };
            ensure!(may.contains(&dep), "sidecar/{krate} depends on pullgate-{dep}: against the data flow (may: {may:?})");
        }
        ensure!(krate == "pullgate" || !manifest.contains("\nclap"), "sidecar/{krate} depends on clap; only the binary may");
        for file in rust_files(&root.join(krate).join("src"))? {
            let text = read(&file)?;
            // Everything before the file's unit tests.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let name = file.display();
            if !file.ends_with("pullgate/src/env.rs") {
                ensure!(!code.contains("env::var"), "{name} reads the environment; only sidecar/pullgate/src/env.rs does");
            }
            if matches!(krate, "config" | "render" | "index") {
                for banned in ["std::fs", "std::env", "SystemTime", "Instant::now", "clock::"] {
                    ensure!(!code.contains(banned), "{name} uses {banned}: config, render and index do no I/O and read no clock");
                }
            }
        }
    }
    Ok(())
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(rust_files(&p)?);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(out)
}
