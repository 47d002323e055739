//! Package indexes (`pypi`, `npm`, `helm` routes) against real upstreams the
//! tests build and serve with plain nginx: wheels from `pip wheel`, npm
//! tarballs from `npm pack`, a chart from `tar`. Real clients (pip, uv, npm,
//! curl) install through the gateway with their own hash checks; the bytes
//! match the upstream's; documents keep serving from the sidecar's cache
//! when the upstream breaks or goes away; path tricks and unknown packages
//! never redirect anywhere routes.yaml does not name; the reports count
//! exactly the downloads the clients made, by package, version and client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::ensure;
use crate::support::gateway::{curl, pullgate_in, Gateway, Reply};
use crate::support::plain_nginx::PlainNginx;
use crate::support::process::{require, run};
use crate::support::wait_until;

pub fn tests() -> Vec<(String, super::Standalone)> {
    let cases: Vec<(&str, super::Standalone)> = vec![
        ("indexes::python_index_serves_pip_and_uv", python_index),
        ("indexes::npm_registry_serves_npm_install", npm_registry),
        ("indexes::helm_repository_serves_charts", helm_repository),
        ("indexes::a_silent_upstream_holds_up_no_edit", silent_upstream),
    ];
    cases.into_iter().map(|(n, f)| (n.to_string(), f)).collect()
}

fn fresh(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Python with pip, setuptools, wheel and uv that `tests/run` installs.
fn pip_python() -> Result<PathBuf, String> {
    let python = std::env::var("PULLGATE_TEST_PIP_PYTHON")
        .map_err(|_| "PULLGATE_TEST_PIP_PYTHON is not set: tests/run installs pip, wheel and uv from PyPI and sets it".to_string())?;
    let python = PathBuf::from(python);
    ensure!(python.is_file(), "PULLGATE_TEST_PIP_PYTHON={} does not exist: run tests/run", python.display());
    Ok(python)
}

/// A gateway on `routes` (a YAML list) that ships to its local sink and
/// asks its upstreams again every second; `{port}` in either text is its port.
fn gateway(dir: &Path, gateway_extra: &str, routes: &str) -> Result<Gateway, String> {
    let addr = Gateway::pick_addr();
    let port = addr.port().to_string();
    let path = dir.join("routes.yaml");
    write(&path, Gateway::yaml(addr, &gateway_extra.replace("{port}", &port), &routes.replace("{port}", &port)))?;
    Gateway::launch_with(&dir.join("gw"), addr, &path, &["--index-refresh-s", "1"], |_| {})
}

/// Every redirect the gateway answered went to one of `allowed` (prefixes).
fn redirects_only_to(gw: &Gateway, allowed: &[String]) -> Result<usize, String> {
    let mut n = 0;
    for l in gw.log()? {
        let status = l["status"].as_u64().unwrap_or(0);
        if (300..400).contains(&status) {
            let target = l["upstream"].as_str().unwrap_or("");
            ensure!(allowed.iter().any(|a| target.starts_with(a.as_str())), "a redirect to {target:?} outside {allowed:?}: {l}");
            n += 1;
        }
    }
    Ok(n)
}

/// `GET` through the gateway: no redirect outside `allowed`, and the status wanted.
fn expect(gw: &Gateway, method: &str, path: &str, status: u16, allowed: &[String]) -> Result<Reply, String> {
    let r = curl(method, &format!("http://{}{path}", gw.host()), &[])?;
    ensure!(r.status == status, "{method} {path}: {} (wanted {status}): {}", r.status, r.text());
    if let Some(location) = r.header("location") {
        ensure!(allowed.iter().any(|a| location.starts_with(a.as_str())), "{method} {path} redirects to {location}, outside {allowed:?}");
    }
    Ok(r)
}

/// Downloads in the store of `up`, by the dimensions asked for, once every
/// logged request has been ingested.
fn downloads_by(gw: &Gateway, by: &str, keys: &[&str]) -> Result<BTreeMap<Vec<String>, u64>, String> {
    let state = gw.dir.join("state");
    let logged = gw.log()?.len();
    let report = |by: &str| -> Result<Value, String> {
        let out = pullgate_in(&state, &["report", "--since", "1h", "--format", "json", "--by", by])?;
        serde_json::from_str(&out).map_err(|e| e.to_string())
    };
    wait_until(Duration::from_secs(20), "up's own ingest of every logged request", || {
        Ok(report(by)?["totals"]["requests"].as_u64() == Some(logged as u64))
    })?;
    let r = report(by)?;
    let rows = r["rows"].as_array().ok_or_else(|| format!("no rows: {r}"))?;
    Ok(rows
        .iter()
        .filter(|row| row["downloads"].as_u64().unwrap_or(0) > 0)
        .map(|row| (keys.iter().map(|k| row[*k].as_str().unwrap_or("?").to_string()).collect(), row["downloads"].as_u64().unwrap_or(0)))
        .collect())
}

fn want(rows: &[(&[&str], u64)]) -> BTreeMap<Vec<String>, u64> {
    rows.iter().map(|(k, n)| (k.iter().map(|s| s.to_string()).collect(), *n)).collect()
}

const WHEEL_10: &str = "acme_client-1.0.0-py3-none-any.whl";
const WHEEL_11: &str = "acme_client-1.1.0-py3-none-any.whl";

/// pip and uv through a `pypi` route: PEP 503 and 691, hashes kept, each file
/// a 307 to the upstream's file host; the cache serves through a broken and
/// a dead upstream.
fn python_index() -> Result<(), String> {
    let python = pip_python()?;
    let bin = python.parent().ok_or("no bin directory")?.to_path_buf();
    let dir = fresh("index-pypi")?;
    let up = dir.join("upstream");

    // Two versions of a tiny package, built into wheels by pip.
    for version in ["1.0.0", "1.1.0"] {
        let src = dir.join(format!("src-{version}"));
        write(
            &src.join("pyproject.toml"),
            format!(
                "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\
                 [project]\nname = \"acme-client\"\nversion = \"{version}\"\nrequires-python = \">=3.8\"\n"
            ),
        )?;
        write(&src.join("acme_client/__init__.py"), format!("VERSION = \"{version}\"\n"))?;
        run(Command::new(&python)
            .args(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check", "-q", "-w"])
            .arg(up.join("files"))
            .arg(&src)
            .env("PIP_CONFIG_FILE", "/dev/null"))?;
    }
    let sha = |f: &str| -> Result<String, String> { Ok(crate::support::clients::sha256_hex(&read(&up.join("files").join(f))?)) };
    let (sha10, sha11) = (sha(WHEEL_10)?, sha(WHEEL_11)?);
    // The upstream's PEP 503 page, with links relative to it as PyPI's are.
    let page = format!(
        "<!DOCTYPE html>\n<html><body>\n\
         <a href=\"../../files/{WHEEL_10}#sha256={sha10}\" data-requires-python=\"&gt;=3.8\">{WHEEL_10}</a><br/>\n\
         <a href=\"../../files/{WHEEL_11}#sha256={sha11}\" data-requires-python=\"&gt;=3.8\">{WHEEL_11}</a><br/>\n\
         </body></html>\n"
    );
    let page_path = up.join("simple/acme-client/index.html");
    write(&page_path, &page)?;
    let upstream = PlainNginx::start(
        &dir.join("upstream-nginx"),
        "127.0.0.1",
        &format!("    root {};\n    types {{ text/html html; application/octet-stream whl; }}\n", up.display()),
    )?;
    let up_url = format!("http://{}", upstream.addr);

    let routes = format!(
        "  - name: py\n    kind: pypi\n    upstream: {up_url}/simple/\n    packages: [Acme_Client]\n\
         \x20 - name: mirror\n    kind: pypi\n    path: /mirror/\n    upstream: {up_url}/simple\n    packages: [acme-client]\n    unknown: upstream\n"
    );
    let gw = gateway(&dir, "", &routes)?;
    let index = format!("http://{}/simple/", gw.host());
    let allowed = [format!("{up_url}/files/"), format!("{up_url}/simple/")];

    let pip = |args: &[&str], env: &[(&str, &str)]| -> Result<std::process::Output, String> {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "pip"]).args(args).args(["--no-cache-dir", "--disable-pip-version-check", "--index-url", &index]);
        cmd.env("PIP_CONFIG_FILE", "/dev/null").env_remove("PIP_IS_CI").env_remove("CI").current_dir(&dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().map_err(|e| format!("pip: {e}"))
    };
    let ok = |out: std::process::Output, what: &str| -> Result<(), String> {
        ensure!(out.status.success(), "{what}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    // pip download, PEP 691 JSON (pip asks for it first).
    ok(pip(&["download", "--no-deps", "-d", "dl-1", "acme-client==1.0.0"], &[])?, "pip download")?;
    ensure!(read(&dir.join("dl-1").join(WHEEL_10))? == read(&up.join("files").join(WHEEL_10))?, "pip download: the bytes differ");
    // With --require-hashes: the right hash passes, a wrong one is refused.
    write(&dir.join("ok.txt"), format!("acme-client==1.1.0 --hash=sha256:{sha11}\n"))?;
    ok(pip(&["download", "--no-deps", "--require-hashes", "-d", "dl-2", "-r", "ok.txt"], &[])?, "pip download --require-hashes")?;
    ensure!(read(&dir.join("dl-2").join(WHEEL_11))? == read(&up.join("files").join(WHEEL_11))?, "the hash-checked wheel differs");
    write(&dir.join("bad.txt"), format!("acme-client==1.1.0 --hash=sha256:{sha10}\n"))?;
    let bad = pip(&["download", "--no-deps", "--require-hashes", "-d", "dl-bad", "-r", "bad.txt"], &[])?;
    ensure!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("HASHES"),
        "pip accepted a wheel against the wrong hash: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // pip install, as a CI job (pip says so in its user agent).
    ok(pip(&["install", "--no-deps", "--target", "site-ci", "acme-client==1.1.0"], &[("PIP_IS_CI", "1")])?, "pip install")?;
    let installed = String::from_utf8_lossy(&read(&dir.join("site-ci/acme_client/__init__.py"))?).into_owned();
    ensure!(installed.contains("1.1.0"), "pip installed {installed:?}");
    // uv, which reads a wheel's metadata by range before it downloads it.
    let uv = run(Command::new(bin.join("uv"))
        .args(["pip", "install", "--no-deps", "--no-cache", "--target", "site-uv", "--python"])
        .arg(&python)
        .args(["--index-url", &index, "acme-client==1.0.0"])
        .env("UV_NO_CONFIG", "1")
        .env("UV_CACHE_DIR", dir.join("uv-cache"))
        .current_dir(&dir))?;
    let installed = String::from_utf8_lossy(&read(&dir.join("site-uv/acme_client/__init__.py"))?).into_owned();
    ensure!(installed.contains("1.0.0"), "uv installed {installed:?}: {}", String::from_utf8_lossy(&uv.stderr));
    // curl -L, by hand.
    let by_hand = run(Command::new("curl").args(["-sSfL", &format!("{index}acme-client/{WHEEL_11}")]))?;
    ensure!(by_hand.stdout == read(&up.join("files").join(WHEEL_11))?, "curl -L: the bytes differ");

    // The pages: both forms, hashes kept, every file linked on the gateway.
    let html = expect(&gw, "GET", "/simple/acme-client/", 200, &allowed)?;
    ensure!(html.text().contains(&format!("href=\"/simple/acme-client/{WHEEL_11}#sha256={sha11}\"")), "{}", html.text());
    ensure!(html.header("vary") == Some("Accept"), "no Vary: Accept");
    let json = curl("GET", &format!("{index}acme-client/"), &["Accept: application/vnd.pypi.simple.v1+json"])?;
    ensure!(json.header("content-type") == Some("application/vnd.pypi.simple.v1+json"), "{:?}", json.headers);
    let doc: Value = serde_json::from_slice(&json.body).map_err(|e| e.to_string())?;
    ensure!(doc["files"][0]["hashes"]["sha256"] == sha10.as_str() && doc["files"][0]["requires-python"] == ">=3.8", "{doc}");
    let root = expect(&gw, "GET", "/simple/", 200, &allowed)?;
    ensure!(root.text().contains("href=\"/simple/acme-client/\""), "root page: {}", root.text());

    // Path tricks and unknown packages: a 404, or a redirect routes.yaml names.
    for (method, path, status) in [
        ("GET", format!("/simple/acme-client/../../files/{WHEEL_10}"), 404),
        ("GET", format!("/simple/acme-client/%2e%2e/{WHEEL_10}"), 404),
        ("GET", format!("/simple/acme-client/{}", WHEEL_10.replace("1.0.0", "9.9.9")), 404),
        ("GET", format!("/simple/acme-client//{WHEEL_10}"), 404),
        ("GET", format!("/simple/acme-client/{WHEEL_10}%3Fx"), 404),
        ("GET", "/simple/acme-client/index.html".to_string(), 404),
        ("GET", "/simple/acme-client/page.json".to_string(), 404),
        ("GET", "/simple/other/".to_string(), 404),
        ("GET", "/simple/Acme_Client/".to_string(), 404),
        ("GET", "/simple/../routes.yaml".to_string(), 404),
        ("POST", format!("/simple/acme-client/{WHEEL_10}"), 405),
        ("HEAD", format!("/simple/acme-client/{WHEEL_10}?x=1"), 307),
        ("GET", "/mirror/other-pkg/".to_string(), 307),
        ("GET", "/mirror/Other_Pkg/".to_string(), 404),
        ("GET", "/mirror/other-pkg/evil.whl".to_string(), 404),
    ] {
        expect(&gw, method, &path, status, &allowed)?;
    }
    let unknown = curl("GET", &format!("http://{}/mirror/other-pkg/", gw.host()), &[])?;
    ensure!(unknown.header("location") == Some(&format!("{up_url}/simple/other-pkg/")), "unknown: {:?}", unknown.headers);
    let redirects = redirects_only_to(&gw, &allowed)?;
    ensure!(redirects >= 6, "only {redirects} redirects logged");

    // Downloads by package, version and client: pip's two (one as CI), uv's
    // (a HEAD, a range GET and two GETs: one download), curl's. Pages,
    // unknown packages and HEADs count nothing.
    let got = downloads_by(&gw, "route,package,version,client", &["route", "repository", "tag", "client"])?;
    let expected = want(&[
        (&["py", "acme-client", "1.0.0", "pip"], 1),
        (&["py", "acme-client", "1.0.0", "uv"], 1),
        (&["py", "acme-client", "1.1.0", "curl"], 1),
        (&["py", "acme-client", "1.1.0", "pip"], 2),
    ]);
    ensure!(got == expected, "downloads by route, package, version and client:\n got  {got:?}\n want {expected:?}");
    let classes = downloads_by(&gw, "client,class", &["client", "class"])?;
    ensure!(classes.get(&vec!["pip".to_string(), "ci".to_string()]) == Some(&1), "pip's CI install: {classes:?}");
    // The dashboard's API says the same.
    let api = curl("GET", &format!("http://{}/api/report?since=1h&by=package,version", gw.dashboard_addr), &[])?;
    let api: Value = serde_json::from_slice(&api.body).map_err(|e| format!("dashboard API: {e}: {}", api.text()))?;
    let rows = api["rows"].as_array().ok_or_else(|| format!("dashboard API: {api}"))?;
    let by_version: BTreeMap<String, u64> =
        rows.iter().map(|r| (r["tag"].as_str().unwrap_or("?").to_string(), r["downloads"].as_u64().unwrap_or(0))).collect();
    ensure!(by_version == BTreeMap::from([("1.0.0".into(), 2), ("1.1.0".into(), 3)]), "dashboard by version: {api}");

    // Unchanged upstream documents cost a 304.
    wait_until(Duration::from_secs(10), "a conditional refresh answered 304", || {
        Ok(gw.status()?["indexes"]["not_modified"].as_u64().unwrap_or(0) > 0)
    })?;
    // A broken upstream page never replaces the good one: the routes on it are stale.
    let both = serde_json::json!(["mirror", "py"]);
    write(&page_path, "{\"oops\": true}")?;
    wait_until(Duration::from_secs(10), "the broken page refused", || {
        let s = gw.status()?;
        Ok(s["indexes"]["rejected"].as_u64().unwrap_or(0) > 0 && s["index_stale"] == both)
    })?;
    wait_until(Duration::from_secs(5), "the stale warning served", || {
        Ok(curl("GET", &format!("{index}acme-client/"), &[])?.header("warning").is_some())
    })?;
    let stale = expect(&gw, "GET", "/simple/acme-client/", 200, &allowed)?;
    ensure!(stale.text().contains(WHEEL_11), "the cached page was replaced: {}", stale.text());
    ensure!(stale.header("warning").is_some_and(|w| w.starts_with("110 ")), "no stale warning: {:?}", stale.headers);
    // Fixed upstream: fresh again, the warning gone.
    write(&page_path, &page)?;
    wait_until(Duration::from_secs(10), "fresh again", || {
        Ok(curl("GET", &format!("{index}acme-client/"), &[])?.header("warning").is_none())
    })?;
    // The upstream gone: the cache keeps serving, and a render from the same
    // state (as after a restart) serves the pages kept on disk.
    drop(upstream);
    wait_until(Duration::from_secs(10), "stale while the upstream is down", || Ok(gw.status()?["index_stale"] == both))?;
    let down = expect(&gw, "GET", "/simple/acme-client/", 200, &allowed)?;
    ensure!(down.text().contains(WHEEL_10) && down.header("warning").is_some(), "while down: {:?} {}", down.headers, down.text());
    let out = dir.join("rendered-while-down");
    pullgate_in(&gw.dir.join("state"), &["render", "-c", dir.join("routes.yaml").to_str().unwrap(), "--out", out.to_str().unwrap()])?;
    let kept = String::from_utf8_lossy(&read(&out.join("index/py/acme-client/page.html"))?).into_owned();
    ensure!(kept.contains(&sha11), "the disk cache: {kept}");
    Ok(())
}

/// npm through an `npm` route: packuments (full and abbreviated) with
/// tarballs on the gateway, `integrity` and `shasum` kept; a scoped package
/// and its dependency installed by `npm install`, which checks them.
fn npm_registry() -> Result<(), String> {
    require("npm", "npm")?;
    let dir = fresh("index-npm")?;
    let up = dir.join("upstream");
    std::fs::create_dir_all(&up).map_err(|e| e.to_string())?;
    // The registry's URL layout: `/NAME` and `/@SCOPE%2fNAME` (nginx decodes it).
    let upstream = PlainNginx::start(
        &dir.join("upstream-nginx"),
        "127.0.0.1",
        &format!(
            "    root {};\n    default_type application/octet-stream;\n\
             \x20   location /tarballs/ {{ }}\n\
             \x20   location / {{ default_type application/json; try_files /packuments$uri.json =404; }}\n",
            up.display()
        ),
    )?;
    let up_url = format!("http://{}", upstream.addr);
    // Two packages packed by npm: @acme/cli depends on acme-lib.
    let mut tarballs = BTreeMap::new();
    for (name, short, deps) in [("acme-lib", "acme-lib", "{}"), ("@acme/cli", "cli", r#"{"acme-lib": "^1.0.0"}"#)] {
        let src = dir.join(format!("src-{short}"));
        write(
            &src.join("package.json"),
            format!(r#"{{"name": "{name}", "version": "1.0.0", "main": "index.js", "license": "MIT", "dependencies": {deps}}}"#),
        )?;
        write(&src.join("index.js"), format!("module.exports = {{ name: {name:?}, version: \"1.0.0\" }};\n"))?;
        let packed = run(Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&dir)
            .env("npm_config_userconfig", dir.join("no-npmrc"))
            .env("npm_config_cache", dir.join("npm-cache"))
            .current_dir(&src))?;
        let tgz_name = String::from_utf8_lossy(&packed.stdout).trim().lines().last().unwrap_or_default().to_string();
        let tgz = read(&dir.join(&tgz_name))?;
        let rel = format!("{name}/-/{short}-1.0.0.tgz");
        write(&up.join("tarballs").join(&rel), &tgz)?;
        let integrity = run(Command::new("sh")
            .arg("-c")
            .arg(format!("openssl dgst -sha512 -binary '{}' | base64 -w0", dir.join(&tgz_name).display())))?;
        let integrity = format!("sha512-{}", String::from_utf8_lossy(&integrity.stdout).trim());
        let shasum = run(Command::new("sha1sum").arg(dir.join(&tgz_name)))?;
        let shasum = String::from_utf8_lossy(&shasum.stdout).split_whitespace().next().unwrap_or("").to_string();
        let packument = serde_json::json!({
            "name": name,
            "dist-tags": {"latest": "1.0.0"},
            "time": {"modified": "2026-12-01T00:00:00.000Z", "1.0.0": "2026-12-01T00:00:00.000Z"},
            "versions": {"1.0.0": {
                "name": name, "version": "1.0.0", "main": "index.js", "license": "MIT",
                "dependencies": serde_json::from_str::<Value>(deps).unwrap_or_default(),
                "scripts": {"test": "true"},
                "dist": {"tarball": format!("{up_url}/tarballs/{rel}"), "integrity": integrity, "shasum": shasum}
            }}
        });
        write(&up.join("packuments").join(format!("{name}.json")), packument.to_string())?;
        tarballs.insert(name, (rel, tgz, integrity));
    }

    let gw = gateway(
        &dir,
        "  hosts:\n    - name: 127.0.0.1\n      public_url: http://127.0.0.1:{port}\n",
        &format!("  - name: js\n    kind: npm\n    host: 127.0.0.1\n    upstream: {up_url}/\n    packages: [\"@acme/cli\", acme-lib]\n"),
    )?;
    let registry = format!("http://{}/npm/", gw.host());
    let allowed = [format!("{up_url}/tarballs/")];

    // The packuments: tarballs on the gateway, integrity kept; the abbreviated form on request.
    let full = expect(&gw, "GET", "/npm/@acme%2fcli", 200, &allowed)?;
    let doc: Value = serde_json::from_slice(&full.body).map_err(|e| format!("{e}: {}", full.text()))?;
    let v = &doc["versions"]["1.0.0"];
    let (_, _, integrity) = &tarballs["@acme/cli"];
    ensure!(v["dist"]["tarball"] == format!("{registry}@acme/cli/-/cli-1.0.0.tgz").as_str(), "tarball: {doc}");
    ensure!(v["dist"]["integrity"] == integrity.as_str() && v["scripts"]["test"] == "true", "{doc}");
    let corgi = curl(
        "GET",
        &format!("{registry}@acme%2fcli"),
        &["Accept: application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"],
    )?;
    ensure!(corgi.header("content-type") == Some("application/vnd.npm.install-v1+json"), "{:?}", corgi.headers);
    let c: Value = serde_json::from_slice(&corgi.body).map_err(|e| e.to_string())?;
    ensure!(c["versions"]["1.0.0"]["dist"]["integrity"] == integrity.as_str() && c["versions"]["1.0.0"].get("scripts").is_none(), "{c}");

    // npm install of the scoped package: its dependency comes through the gateway too.
    let project = dir.join("project");
    write(&project.join("package.json"), r#"{"name": "consumer", "version": "0.0.0", "private": true}"#)?;
    run(Command::new("npm")
        .args(["install", "--no-fund", "--no-update-notifier", "--registry", &registry, "@acme/cli"])
        .env("npm_config_userconfig", dir.join("no-npmrc"))
        .env("npm_config_cache", dir.join("npm-cache-install"))
        .current_dir(&project))?;
    for (name, file) in [("@acme/cli", "index.js"), ("acme-lib", "index.js")] {
        let text = String::from_utf8_lossy(&read(&project.join("node_modules").join(name).join(file))?).into_owned();
        ensure!(text.contains(name), "node_modules/{name}/{file}: {text}");
    }
    // curl -L: the bytes of the upstream's tarball.
    let (rel, tgz, _) = &tarballs["acme-lib"];
    let by_hand = run(Command::new("curl").args(["-sSfL", &format!("{registry}{}", rel)]))?;
    ensure!(by_hand.stdout == *tgz, "curl -L: the tarball differs");

    for (path, status) in [
        ("/npm/unknown-pkg", 404),
        ("/npm/@acme/cli/-/cli-9.9.9.tgz", 404),
        ("/npm/@acme/cli/-/../../acme-lib/-/acme-lib-1.0.0.tgz", 404),
        ("/npm/@acme%2fcli/-/cli-1.0.0.tgz", 404),
        ("/npm/acme-lib/-/evil.tgz", 404),
        ("/npm/../routes.yaml", 404),
    ] {
        expect(&gw, "GET", path, status, &allowed)?;
    }
    redirects_only_to(&gw, &allowed)?;
    let got = downloads_by(&gw, "package,version,client", &["repository", "tag", "client"])?;
    let expected = want(&[(&["@acme/cli", "1.0.0", "npm"], 1), (&["acme-lib", "1.0.0", "npm"], 1), (&["acme-lib", "1.0.0", "curl"], 1)]);
    ensure!(got == expected, "downloads by package, version and client:\n got  {got:?}\n want {expected:?}");
    Ok(())
}

/// A Helm chart repository through a `helm` route: `index.yaml` with chart
/// URLs on the gateway and digests kept, each chart a 307 to the upstream.
/// No Helm client is packaged for Debian or PyPI: curl -L stands in, as
/// Helm would (it resolves relative chart URLs against the repository's).
fn helm_repository() -> Result<(), String> {
    let dir = fresh("index-helm")?;
    let up = dir.join("upstream");
    let mut charts = BTreeMap::new();
    for version in ["0.1.0", "0.2.0"] {
        let src = dir.join(format!("src-{version}/mychart"));
        write(&src.join("Chart.yaml"), format!("apiVersion: v2\nname: mychart\nversion: {version}\n"))?;
        write(&src.join("values.yaml"), format!("version: {version}\n"))?;
        let tgz = up.join(format!("mychart-{version}.tgz"));
        std::fs::create_dir_all(&up).map_err(|e| e.to_string())?;
        run(Command::new("tar").arg("-czf").arg(&tgz).arg("-C").arg(src.parent().unwrap()).arg("mychart"))?;
        let bytes = read(&tgz)?;
        charts.insert(version, (crate::support::clients::sha256_hex(&bytes), bytes));
    }
    let index = format!(
        "apiVersion: v1\nentries:\n  mychart:\n\
         \x20 - name: mychart\n    version: 0.2.0\n    apiVersion: v2\n    digest: {}\n    urls: [mychart-0.2.0.tgz]\n\
         \x20 - name: mychart\n    version: 0.1.0\n    apiVersion: v2\n    digest: {}\n    urls: [mychart-0.1.0.tgz]\n\
         generated: \"2026-12-01T00:00:00Z\"\n",
        charts["0.2.0"].0, charts["0.1.0"].0
    );
    write(&up.join("index.yaml"), &index)?;
    let upstream = PlainNginx::start(
        &dir.join("upstream-nginx"),
        "127.0.0.1",
        &format!("    root {};\n    types {{ application/x-yaml yaml; application/gzip tgz; }}\n", up.display()),
    )?;
    let up_url = format!("http://{}", upstream.addr);
    let gw = gateway(&dir, "", &format!("  - name: charts\n    kind: helm\n    upstream: {up_url}/\n"))?;
    let allowed = [format!("{up_url}/")];

    let served = expect(&gw, "GET", "/charts/index.yaml", 200, &allowed)?;
    let text = served.text();
    ensure!(text.contains("- mychart/mychart-0.2.0.tgz") && text.contains(&charts["0.1.0"].0), "index.yaml: {text}");
    for version in ["0.1.0", "0.2.0"] {
        // As Helm resolves a relative chart URL: against the repository's URL.
        let url = format!("http://{}/charts/mychart/mychart-{version}.tgz", gw.host());
        let got = run(Command::new("curl").args(["-sSfL", "-A", "Helm/3.16.1", &url]))?;
        ensure!(got.stdout == charts[version].1, "chart {version}: the bytes differ");
    }
    for (path, status) in [
        ("/charts/mychart/mychart-9.9.9.tgz", 404),
        ("/charts/other/other-0.1.0.tgz", 404),
        ("/charts/mychart/../index.yaml", 200),
        ("/charts/mychart/%2e%2e/mychart-0.1.0.tgz", 404),
        ("/charts/mychart-0.1.0.tgz", 404),
    ] {
        expect(&gw, "GET", path, status, &allowed)?;
    }
    redirects_only_to(&gw, &allowed)?;
    let got = downloads_by(&gw, "package,version,client", &["repository", "tag", "client"])?;
    let expected = want(&[(&["mychart", "0.1.0", "helm"], 1), (&["mychart", "0.2.0", "helm"], 1)]);
    ensure!(got == expected, "downloads by chart, version and client:\n got  {got:?}\n want {expected:?}");

    // The same route in Lua mode (the compose kit's): the index and the
    // redirects are nginx's own, beside the Lua hooks.
    let redis = crate::support::redis::RedisServer::start(&dir.join("redis"))?;
    let lua_dir = dir.join("lua");
    std::fs::create_dir_all(&lua_dir).map_err(|e| e.to_string())?;
    let lua = gateway(
        &lua_dir,
        &format!("  redis: {{url: \"redis://{}/0\", key: \"pg-index\"}}\n", redis.addr),
        &format!("  - name: charts\n    kind: helm\n    upstream: {up_url}/\n"),
    )?;
    let served = expect(&lua, "GET", "/charts/index.yaml", 200, &allowed)?;
    ensure!(served.text() == text, "Lua mode serves another index.yaml:\n{}", served.text());
    let r = expect(&lua, "GET", "/charts/mychart/mychart-0.1.0.tgz", 307, &allowed)?;
    ensure!(r.header("location") == Some(&format!("{up_url}/mychart-0.1.0.tgz")), "Lua mode: {:?}", r.headers);
    Ok(())
}

/// An index upstream that accepts connections and never answers: the
/// gateway starts after a bounded wait for it, and an edit of another route
/// goes live as fast as without it (the fetches run beside the daemon's loop).
fn silent_upstream() -> Result<(), String> {
    let dir = fresh("index-silent")?;
    // Connections complete in the kernel's backlog; nothing ever reads them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    let routes = |target: &str| {
        format!(
            "  - name: files\n    kind: file\n    path: /dl/{{file}}\n    upstream: http://127.0.0.2:9/{target}/{{file}}\n\
             \x20 - name: py\n    kind: pypi\n    upstream: http://{silent_addr}/simple/\n    packages: [acme-client]\n"
        )
    };
    let started = std::time::Instant::now();
    let gw = gateway(&dir, "", &routes("a"))?;
    let took = started.elapsed();
    ensure!(took < Duration::from_secs(12), "the gateway took {took:?} to start beside a silent index upstream");
    expect(&gw, "GET", "/simple/acme-client/", 404, &[])?;
    let location = || -> Result<String, String> {
        Ok(curl("GET", &format!("http://{}/dl/app.tgz", gw.host()), &[])?.header("location").unwrap_or_default().to_string())
    };
    ensure!(location()? == "http://127.0.0.2:9/a/app.tgz", "before the edit: {}", location()?);
    let edited = std::time::Instant::now();
    let port = gw.addr.port().to_string();
    write(&dir.join("routes.yaml"), Gateway::yaml(gw.addr, "", &routes("b").replace("{port}", &port)))?;
    let live = wait_until(Duration::from_secs(10), "the edit served", || Ok(location()? == "http://127.0.0.2:9/b/app.tgz"))?;
    println!("silent index upstream: start {took:?}, edit serving after {live:?}");
    ensure!(live < Duration::from_secs(2), "the edit took {live:?} beside a silent index upstream (since {edited:?})");
    drop(silent);
    Ok(())
}
