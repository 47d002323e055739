//! Rendered config: golden files, determinism, `nginx -t`, hostile input.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use {pullgate_config as config, pullgate_nginx as nginx, pullgate_render as render};

use super::cli::repo_root;
use super::Standalone;
use crate::ensure;

pub fn tests() -> Vec<(String, Standalone)> {
    let cases: Vec<(&str, Standalone)> = vec![
        ("render::golden_files", golden),
        ("render::is_deterministic", deterministic),
        ("render::golden_configs_pass_nginx_t", golden_nginx_t),
        ("render::hostile_values_are_rejected_or_inert", hostile),
    ];
    cases.into_iter().map(|(n, f)| (n.to_string(), f)).collect()
}

fn goldens() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("tests/golden"))
        .expect("tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn render_file(path: &std::path::Path) -> Result<render::Rendered, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let c = config::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    render::render(&c).map_err(|e| e.to_string())
}

/// Every generated file of a golden input: the include (`NAME.conf`) and,
/// in Lua mode, the route table as published at stamp 0 (`NAME.tsv`). The
/// Lua files are copies of `lua/`, not generated, and are not compared.
fn golden() -> Result<(), String> {
    let update = crate::support::update_golden()?;
    let mut compared = 0;
    for input in goldens() {
        let rendered = render_file(&input)?;
        let tsv = input.with_extension("tsv");
        let mut outputs = vec![(input.with_extension("conf"), rendered.files[0].1.clone())];
        match &rendered.table {
            Some(table) => outputs.push((tsv, table.text(0))),
            None => ensure!(!tsv.exists(), "{} exists but {} renders no route table", tsv.display(), input.display()),
        }
        for (want_path, got) in outputs {
            compared += 1;
            if update {
                std::fs::write(&want_path, &got).map_err(|e| e.to_string())?;
                continue;
            }
            let want = std::fs::read_to_string(&want_path).map_err(|e| format!("{}: {e}", want_path.display()))?;
            if want != got {
                let line = want.lines().zip(got.lines()).position(|(a, b)| a != b).unwrap_or(want.lines().count().min(got.lines().count()));
                return Err(format!(
                    "{} differs from its rendering at line {} (run with UPDATE_GOLDEN=1 to accept):\n  want: {:?}\n  got:  {:?}",
                    want_path.display(),
                    line + 1,
                    want.lines().nth(line),
                    got.lines().nth(line)
                ));
            }
        }
    }
    // Four inputs, one of them in Lua mode: five files.
    ensure!(compared >= 5, "only {compared} golden files compared");
    Ok(())
}

fn deterministic() -> Result<(), String> {
    for input in goldens() {
        ensure!(render_file(&input)? == render_file(&input)?, "{} renders differently twice", input.display());
    }
    // Route order in the file does not matter for the maps either.
    let yaml = |order: &[usize]| {
        let routes = [
            "  - {name: a, image: a, upstream: http://127.0.0.2:5000/a}\n",
            "  - {name: b, image: b/*, upstream: http://127.0.0.2:5000/b/*}\n",
            "  - {name: c, image: c, upstream: http://127.0.0.2:5000/c}\n",
        ];
        format!("version: 1\nroutes:\n{}", order.iter().map(|i| routes[*i]).collect::<String>())
    };
    let render = |y: &str| render::render(&config::parse(y, "t").map_err(|e| e.to_string())?).map_err(|e| e.to_string());
    let (x, y) = (render(&yaml(&[0, 1, 2]))?, render(&yaml(&[2, 0, 1]))?);
    ensure!(
        x.files[0].1.lines().filter(|l| l.contains("\"_/")).collect::<Vec<_>>()
            == y.files[0].1.lines().filter(|l| l.contains("\"_/")).collect::<Vec<_>>(),
        "map entries depend on route order"
    );
    Ok(())
}

/// The nginx the tests run: `$PULLGATE_NGINX`, else the one on `PATH`.
fn checker() -> nginx::Nginx {
    let mut n = nginx::Nginx::locate(std::env::var_os("PATH").as_deref());
    if let Some(b) = std::env::var_os("PULLGATE_NGINX") {
        n.binary = b.to_string_lossy().into_owned();
    }
    n
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("pg-render-{}", std::process::id()))
}

fn golden_nginx_t() -> Result<(), String> {
    for input in goldens() {
        let rendered = render_file(&input)?;
        // Log directories named by a golden need not exist here.
        let text = rendered.files[0].1.replace("access_log \"/var/log/pullgate/", "access_log \"logs/");
        let rendered = render::Rendered { files: vec![(rendered.files[0].0.clone(), text.clone())], ..rendered };
        // TLS files named by a golden do not exist here; those configs are checked without them.
        if text.contains("ssl_certificate") {
            let stripped: String =
                text.lines().filter(|l| !l.contains("ssl_certificate") && !l.contains(" ssl;")).map(|l| format!("{l}\n")).collect();
            let rendered = render::Rendered { files: vec![(rendered.files[0].0.clone(), stripped)], ..rendered };
            checker().check(&rendered, &scratch()).map_err(|e| format!("{}: {e}", input.display()))?;
        } else {
            checker().check(&rendered, &scratch()).map_err(|e| format!("{}: {e}", input.display()))?;
        }
    }
    Ok(())
}

/// Where a hostile value goes: a YAML template with `@@` for the value.
const FIELDS: &[(&str, &str, bool)] = &[
    // (name, template, nginx -t can run on it: file paths that do not exist cannot)
    ("route.name", "routes:\n  - {name: @@, image: app, upstream: http://127.0.0.2:5000/app}\n", true),
    ("route.host", "routes:\n  - {name: app, host: @@, image: app, upstream: http://127.0.0.2:5000/app}\n", true),
    ("route.image", "routes:\n  - {name: app, image: @@, upstream: http://127.0.0.2:5000/app}\n", true),
    ("route.upstream", "routes:\n  - {name: app, image: app, upstream: @@}\n", true),
    ("route.mode", "routes:\n  - {name: app, image: app, upstream: http://127.0.0.2:5000/app, mode: @@}\n", true),
    ("route.redirect_user_agents", "routes:\n  - {name: app, image: app, upstream: http://127.0.0.2:5000/app, redirect_user_agents: [@@]}\n", true),
    ("route.fallback", "routes:\n  - {name: app, image: app, upstream: http://127.0.0.2:5000/app, fallback: [@@], auth: none}\n", true),
    ("route.auth.realm", "routes:\n  - {name: app, image: x, upstream: http://127.0.0.2:5000/app, auth: {realm: @@, service: s}}\n", true),
    ("route.auth.service", "routes:\n  - {name: app, image: x, upstream: http://127.0.0.2:5000/app, auth: {realm: \"http://127.0.0.4:1/t\", service: @@}}\n", true),
    ("file.path", "routes:\n  - {name: f, kind: file, path: @@, upstream: \"http://127.0.0.2:5000/{file}\"}\n", true),
    ("file.upstream", "routes:\n  - {name: f, kind: file, path: \"/d/{file}\", upstream: @@}\n", true),
    ("gateway.listen", "gateway: {listen: [@@]}\nroutes: []\n", false),
    ("gateway.resolver", "gateway: {resolver: [@@]}\nroutes: []\n", true),
    ("gateway.access_log", "gateway: {access_log: @@}\nroutes: []\n", false),
    ("gateway.trusted_ca", "gateway: {trusted_ca: @@}\nroutes: []\n", false),
    ("host.name", "gateway: {hosts: [{name: @@}]}\nroutes: []\n", true),
    ("host.public_url", "gateway: {hosts: [{name: a.dev, public_url: @@}]}\nroutes: [{name: app, host: a.dev, image: x, upstream: http://127.0.0.2:5000/app, auth: none}]\n", true),
    ("host.tls.cert", "gateway: {hosts: [{name: a.dev, tls: {cert: @@, key: /k.pem}}]}\nroutes: []\n", false),
];

/// Benign values that render, to compare the structure against.
fn benign(field: &str) -> &'static str {
    match field {
        "route.name" => "app",
        "route.host" => "a.dev",
        "route.image" => "app",
        "route.upstream" => "http://127.0.0.2:5000/app",
        "route.mode" => "proxy",
        "route.redirect_user_agents" => "^docker/",
        "route.fallback" => "http://127.0.0.3:5000/app",
        "route.auth.realm" => "http://127.0.0.4:1/t",
        "route.auth.service" => "s",
        "file.path" => "/d/{file}",
        "file.upstream" => "http://127.0.0.2:5000/{file}",
        "gateway.listen" => "127.0.0.1:8080",
        "gateway.resolver" => "127.0.0.53",
        "gateway.access_log" => "logs/a.log",
        "gateway.trusted_ca" => "/etc/ssl/certs/ca-certificates.crt",
        "host.name" => "a.dev",
        "host.public_url" => "https://a.dev",
        "host.tls.cert" => "/c.pem",
        _ => unreachable!(),
    }
}

/// The shape of nginx config: every `;`, `{` and `}` outside quotes and comments,
/// and how many tokens stand between them. A value that adds a directive changes it.
fn shape(conf: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let (mut tokens, mut in_token, mut quote, mut escaped, mut comment) = (0usize, false, None::<char>, false, false);
    for c in conf.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '#' if !in_token => comment = true,
            '"' | '\'' if !in_token => {
                quote = Some(c);
                tokens += 1;
            }
            ';' | '{' | '}' => {
                out.push((tokens, c));
                tokens = 0;
                in_token = false;
            }
            c if c.is_whitespace() => in_token = false,
            _ => {
                if !in_token {
                    tokens += 1;
                }
                in_token = true;
            }
        }
    }
    out
}

fn hostile_string() -> impl Strategy<Value = String> {
    let nasty = prop::sample::select(vec![
        ";",
        "{",
        "}",
        "$",
        "\"",
        "'",
        "\\",
        " ",
        "\n",
        "\r\n",
        "#",
        "%",
        "..",
        "//",
        "@",
        "*",
        "?",
        "&",
        "=",
        ":",
        "/",
        "\t",
        "\u{0}",
        "é",
        "ß",
        "${host}",
        "\";return 302 http://evil/;#",
        "}server{",
        "~*",
        "(?<x>.)",
        "|",
        "^",
        "a",
        "0",
        "-",
        ".",
        "_",
    ]);
    let base = prop::sample::select(vec![
        "app",
        "acme/app",
        "127.0.0.2:5000/app",
        "http://127.0.0.2:5000/app",
        "/d/{file}",
        "a.dev",
        "^docker/",
        "logs/x.log",
        "8080",
    ]);
    (base, prop::collection::vec((nasty, any::<bool>()), 1..4)).prop_map(|(base, parts)| {
        let mut s = base.to_string();
        for (p, front) in parts {
            if front {
                s.insert_str(0, p)
            } else {
                s.push_str(p)
            }
        }
        s
    })
}

fn hostile() -> Result<(), String> {
    let dir = scratch();
    let checked = std::cell::Cell::new(0usize);
    let cases = std::env::var("PULLGATE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let mut runner = TestRunner::new(PropConfig { cases, failure_persistence: None, ..PropConfig::default() });
    let strategy = (0..FIELDS.len(), hostile_string());
    let result = runner.run(&strategy, |(i, value)| {
        let (field, template, nginx_checkable) = FIELDS[i];
        let yaml = |v: &str| format!("version: 1\n{}", template.replace("@@", &serde_json::to_string(v).unwrap()));
        let Ok(config) = config::parse(&yaml(&value), "hostile.yaml") else { return Ok(()) };
        // Accepted: it must render (a filter refusing it means the grammar has a gap) ...
        let rendered =
            render::render(&config).map_err(|e| TestCaseError::fail(format!("{field}={value:?} validated but did not render: {e}")))?;
        let baseline =
            config::parse(&yaml(benign(field)), "benign.yaml").map_err(|e| TestCaseError::fail(format!("benign {field}: {e}")))?;
        let baseline = render::render(&baseline).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // ... with the same directives as a benign value ...
        if shape(&rendered.files[0].1) != shape(&baseline.files[0].1) {
            return Err(TestCaseError::fail(format!("{field}={value:?} changed the structure of the config")));
        }
        // ... and nginx must accept it.
        if nginx_checkable {
            checker().check(&rendered, &dir).map_err(|e| TestCaseError::fail(format!("{field}={value:?}: {e}")))?;
            checked.set(checked.get() + 1);
        }
        Ok(())
    });
    result.map_err(|e| e.to_string())?;
    eprintln!("hostile values: {cases} cases, {} accepted and passed nginx -t", checked.get());
    ensure!(checked.get() > 0, "no hostile-looking value was accepted, so nginx -t never ran: the generator is too narrow");
    Ok(())
}
