//! The dashboard end to end: a synthetic week (plus a hostile user agent)
//! imported by the real binary, `pullgate serve` over that store, and curl:
//! the API gives what `pullgate report` gives, the page shows the same
//! totals and escapes what it shows, badges exist for routed repositories
//! only, and filters in the URL narrow every number.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::cli::repo_root;
use crate::ensure;
use crate::support::browser::Browser;
use crate::support::gateway::{curl, pullgate_in as pullgate, Reply, PULLGATE};
use crate::support::process::{free_port, wait_for_port, Server};

pub fn tests() -> Vec<(String, super::Standalone)> {
    vec![("dashboard::api_page_and_badges_agree_with_the_report".to_string(), api_page_and_badges as super::Standalone)]
}

fn get(addr: std::net::SocketAddr, path: &str) -> Result<Reply, String> {
    curl("GET", &format!("http://{addr}{path}"), &[])
}

fn json(r: &Reply) -> Result<Value, String> {
    serde_json::from_slice(&r.body).map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)))
}

const HOSTILE_UA: &str = "<script>alert(1)</script>/1.0";
/// For a spreadsheet opening the CSV: a formula, with quotes.
const FORMULA_UA: &str = "=cmd|' /C calc'!A0 \"quoted\"";

fn api_page_and_badges() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("pg-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // A week ending yesterday, so that the default range (30 days) holds it.
    let start = Command::new("date").args(["-u", "-d", "8 days ago", "+%Y-%m-%d"]).output().map_err(|e| e.to_string())?;
    let start = String::from_utf8_lossy(&start.stdout).trim().to_string();
    let log = dir.join("week.log");
    let out = Command::new("python3")
        .arg(repo_root().join("tests/synth/access_log.py"))
        .args(["--lines", "20000", "--days", "7", "--seed", "4", "--start", &start])
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "the generator failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    // A client whose agent is markup: the page must show it as text.
    let first = text.lines().next().ok_or("an empty log")?;
    let v: Value = serde_json::from_str(first).map_err(|e| e.to_string())?;
    let ts = v["ts"].as_str().ok_or("no ts")?.to_string();
    for (i, ua) in [HOSTILE_UA, FORMULA_UA].iter().enumerate() {
        let line = serde_json::json!({"ts": ts, "id": format!("{:032x}", 0xdead_beef_u64 + i as u64), "ip": format!("198.51.100.{}", 90 + i),
            "host": "get.acme.dev", "method": "GET", "uri": "/v2/acme/app/manifests/1.0", "status": 200, "bytes": 512, "rt": 0.001,
            "ua": ua, "accept": "*/*", "auth": "none", "range": "", "dnt": "", "route": "acme", "upstream": "", "mode": "proxy"});
        text.push_str(&format!("{line}\n"));
    }
    std::fs::write(&log, text).map_err(|e| e.to_string())?;
    let state = dir.join("state");
    let said = pullgate(&state, &["analytics", "import", "--geoip-dir", "none", log.to_str().unwrap()])?;
    ensure!(said.contains("0 dead letters"), "import: {said}");
    let routes = dir.join("routes.yaml");
    std::fs::write(
        &routes,
        "version: 1\ngateway:\n  resolver: [\"127.0.0.53\"]\nroutes:\n  - name: acme\n    image: acme/app\n    upstream: http://127.0.0.2:5000/acme/app\n    auth: none\n",
    )
    .map_err(|e| e.to_string())?;

    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
    let mut cmd = Command::new(PULLGATE);
    cmd.arg("--state-dir").arg(&state).args(["serve", "--listen", &addr.to_string(), "-c"]).arg(&routes);
    let mut server = Server::start("pullgate serve", cmd, &dir.join("serve.log"))?;
    wait_for_port(&mut server, addr)?;

    // The API is the report: the same library, the same numbers.
    let cli: Value = serde_json::from_str(&pullgate(&state, &["report", "--since", "30d", "--by", "client", "--format", "json"])?)
        .map_err(|e| e.to_string())?;
    let api = json(&get(addr, "/api/report?range=30d&by=client")?)?;
    ensure!(api["totals"] == cli["totals"] && api["rows"] == cli["rows"], "API {api}\n against the report {cli}");
    let pulls = cli["totals"]["pulls"].as_u64().ok_or("no pulls")?;
    ensure!(pulls > 1000, "the week has {pulls} pulls");
    let by_repo: Value =
        serde_json::from_str(&pullgate(&state, &["report", "--since", "30d", "--repository", "acme/app", "--format", "json"])?)
            .map_err(|e| e.to_string())?;
    let app_pulls = by_repo["totals"]["pulls"].as_u64().ok_or("no pulls")?;

    // CSV of a breakdown, with a header row.
    let csv = get(addr, "/api/report.csv?range=30d&by=country")?;
    let csv_text = String::from_utf8_lossy(&csv.body);
    ensure!(
        csv.status == 200 && csv_text.starts_with("country,requests,pulls,version_checks,downloads,unique_origins,unique_ips\n"),
        "CSV: {csv_text:.300}"
    );
    // A value that a spreadsheet would run is defused; no cell starts a formula.
    let versions = String::from_utf8_lossy(&get(addr, "/api/report.csv?range=30d&by=client,client_version")?.body).into_owned();
    ensure!(versions.contains(",'=cmd|"), "the formula agent is not defused in the CSV:\n{versions}");
    ensure!(
        versions.lines().all(|l| l.split(',').all(|cell| !cell.trim_start_matches('"').starts_with(['=', '+', '@']))),
        "a CSV cell starts a formula:\n{versions}"
    );
    ensure!(get(addr, "/api/report?range=5y")?.status == 400, "a bad range is a 400");
    let spec = json(&get(addr, "/api/openapi.json")?)?;
    ensure!(spec["openapi"] == "3.0.3" && spec["paths"]["/api/report"].is_object(), "OpenAPI: {spec:.300}");

    // The page: the same totals, every widget, everything it shows escaped, no script.
    let page = get(addr, "/")?;
    let html = String::from_utf8_lossy(&page.body).into_owned();
    ensure!(page.status == 200 && page.header("content-type").is_some_and(|c| c.starts_with("text/html")), "page: {}", page.status);
    ensure!(page.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")), "no CSP on the page");
    for widget in ["version checks", "unique origins", "Repositories", "Client versions", "Countries", "Weekday by hour", "Concentration"] {
        ensure!(html.contains(widget), "the page lacks {widget:?}");
    }
    ensure!(html.contains(&format!("<span class=\"total\">{pulls}</span>")), "the page's pull total is not {pulls}");
    ensure!(
        !html.contains("<script") && (html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;")),
        "the hostile agent is not escaped on the page"
    );
    ensure!(html.contains("repository=acme/app"), "a bar does not link to its filter");
    ensure!(!html.contains("id=\"empty\""), "the page says it is empty");
    // The synthetic pollers (HEAD every 5 minutes) show beside the concentration.
    let pollers = pullgate(&state, &["report", "--since", "30d", "--by", "poller", "--format", "json"])?;
    let pollers: Value = serde_json::from_str(&pollers).map_err(|e| e.to_string())?;
    let polled = pollers["rows"].as_array().and_then(|r| r.iter().find(|r| r["poller"] == "yes")).ok_or("no pollers in the data")?;
    let share = polled["version_checks"].as_f64().unwrap_or(0.0) * 100.0 / cli["totals"]["version_checks"].as_f64().unwrap_or(1.0);
    ensure!(html.contains(&format!("made {share:.0}% of the version checks")), "the page does not say pollers made {share:.0}%");
    // A filter in the URL narrows every number.
    let app = String::from_utf8_lossy(&get(addr, "/?range=30d&repository=acme/app")?.body).into_owned();
    ensure!(
        app.contains(&format!("<span class=\"total\">{app_pulls}</span>")) && app_pulls < pulls,
        "filtered page: not {app_pulls} pulls"
    );
    ensure!(app.contains("repository = acme/app"), "the filter in force is not shown");

    // Badges: a routed repository's real count; not for one routes.yaml does not serve, though it has data.
    let badge = get(addr, "/badge/acme/app/pulls.svg?period=30d")?;
    let svg = String::from_utf8_lossy(&badge.body).into_owned();
    let shown = if app_pulls >= 1000 { format!("{:.1}k", app_pulls as f64 / 1000.0).replace(".0k", "k") } else { app_pulls.to_string() };
    ensure!(
        badge.status == 200
            && badge.header("content-type").is_some_and(|c| c.starts_with("image/svg+xml"))
            && svg.contains(&format!(">{shown}/30d<")),
        "badge ({}): {svg:.400} (wanted {shown})",
        badge.status
    );
    ensure!(badge.header("cache-control").is_some_and(|c| c.contains("max-age")), "the badge is not cacheable");
    ensure!(get(addr, "/badge/acme/base/pulls.svg")?.status == 404, "a badge for a repository routes.yaml does not serve");
    ensure!(get(addr, "/badge/acme/app/stars.svg")?.status == 404, "a badge for an unknown metric");

    // Prometheus counters by repository.
    let metrics = String::from_utf8_lossy(&get(addr, "/metrics")?.body).into_owned();
    let line = format!("pullgate_pulls_total{{repository=\"acme/app\"}} {}", {
        let all: Value =
            serde_json::from_str(&pullgate(&state, &["report", "--since", "2000-01-01", "--repository", "acme/app", "--format", "json"])?)
                .map_err(|e| e.to_string())?;
        all["totals"]["pulls"].as_u64().unwrap_or(0)
    });
    ensure!(metrics.contains(&line), "metrics lack {line:?}:\n{metrics:.500}");

    // In a real browser (Chromium over the DevTools protocol): the page
    // renders its charts and bars with no error (no script to run, the CSP
    // allows none), and a click on a bar filters the view by its value.
    let mut b = Browser::start(&dir)?;
    b.navigate(&format!("http://{addr}/?range=30d"))?;
    let seen = b.eval("[document.querySelectorAll('section.series svg polyline').length, document.querySelectorAll('.breakdown tr a').length, document.querySelector('.total').textContent]")?;
    ensure!(
        seen[0] == 8 && seen[1].as_u64().unwrap_or(0) >= 10 && seen[2].as_str() == Some(pulls.to_string().as_str()),
        "the browser sees {seen}"
    );
    let width = b.eval("document.querySelector('section.series svg').getBoundingClientRect().width")?;
    ensure!(width.as_f64().is_some_and(|w| w > 300.0), "the chart is {width} px wide");
    // Each chart's points are the API's values by day.
    let daily = json(&get(addr, "/api/report?range=30d&granularity=day")?)?;
    for (i, key, word) in [
        (0, "pulls", "pulls"),
        (1, "version_checks", "version checks"),
        (2, "downloads", "downloads"),
        (3, "unique_origins", "unique origins"),
    ] {
        let titles = b.eval(&format!(
            "Array.from(document.querySelectorAll('section.series')[{i}].querySelectorAll('circle title')).map(t => t.textContent)"
        ))?;
        let points: Vec<(String, u64)> = titles
            .as_array()
            .ok_or("no points")?
            .iter()
            .filter_map(|t| {
                let (period, rest) = t.as_str()?.split_once(": ")?;
                Some((period.to_string(), rest.strip_suffix(&format!(" {word}"))?.parse().ok()?))
            })
            .collect();
        ensure!(points.len() >= 28, "{word}: {} points", points.len());
        for row in daily["rows"].as_array().ok_or("no rows")? {
            let (period, want) = (row["period"].as_str().unwrap_or(""), row[key].as_u64().unwrap_or(u64::MAX));
            let shown = points.iter().find(|(p, _)| p == period).map(|(_, n)| *n);
            ensure!(shown == Some(want), "{word} on {period}: the chart shows {shown:?}, the API {want}");
        }
    }
    // A click on a client's bar narrows the URL and the numbers.
    let client = b.eval("document.querySelector('#by-client tr a span').textContent")?;
    let client = client.as_str().ok_or("no client bar")?.to_string();
    b.click_and_wait("#by-client tr a")?;
    let after = b.eval("[location.search, document.querySelector('.total').textContent]")?;
    let want = json(&get(addr, &format!("/api/report?range=30d&client={client}"))?)?["totals"]["pulls"].clone();
    ensure!(
        after[0].as_str().is_some_and(|q| q.contains(&format!("client={client}")))
            && after[1].as_str() == Some(want.to_string().as_str())
            && want != pulls,
        "after a click on {client}: {after}, the API says {want}"
    );
    b.navigate(&format!("http://{addr}/?range=30d"))?;
    b.click_and_wait("#by-repository tr a[href*='acme/app']")?;
    let after = b.eval("[location.search, document.querySelector('.total').textContent, document.querySelector('.filter').textContent]")?;
    ensure!(
        after[0].as_str().is_some_and(|q| q.contains("repository=acme/app"))
            && after[1].as_str() == Some(app_pulls.to_string().as_str())
            && after[2].as_str().is_some_and(|f| f.contains("acme/app")),
        "after a click on acme/app: {after}"
    );
    // The 7d switch: a week's numbers.
    b.navigate(&format!("http://{addr}/?range=30d"))?;
    b.click_and_wait("nav a[href*='range=7d']")?;
    let week = b.eval("[location.search, document.querySelector('.total').textContent]")?;
    let want = json(&get(addr, "/api/report?range=7d")?)?["totals"]["pulls"].clone();
    ensure!(
        week[0].as_str().is_some_and(|q| q.contains("range=7d")) && week[1].as_str() == Some(want.to_string().as_str()),
        "after 7d: {week}, the API says {want}"
    );
    ensure!(b.errors.is_empty(), "the browser reported errors or failed requests: {:?}", b.errors);
    b.navigate(&format!("http://{addr}/?range=30d"))?;
    let shot = dir.join("dashboard.png");
    b.screenshot(&shot)?;
    let png = std::fs::read(&shot).map_err(|e| e.to_string())?;
    ensure!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "the screenshot is {} bytes", png.len());
    if std::env::var_os("PULLGATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, repo_root().join("docs/dashboard.png")).map_err(|e| e.to_string())?;
    }
    drop(b);

    // schemathesis against the OpenAPI document: no 5xx, every response as documented.
    let st = Command::new("st")
        .current_dir(&dir) // its cache goes with the test's files
        .args(["run", &format!("http://{addr}/api/openapi.json"), "--no-color", "-n", "25", "--seed", "20261203"])
        .args(["-c", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"])
        .output()
        .map_err(|e| format!("schemathesis (`st`; tests/run installs it from PyPI): {e}"))?;
    let said = String::from_utf8_lossy(&st.stdout).into_owned();
    let summary = said.lines().find(|l| l.contains("generated")).unwrap_or("").trim().to_string();
    ensure!(st.status.success() && summary.contains("passed") && !summary.contains("failed"), "schemathesis: {said}");
    eprintln!("schemathesis: {summary}");

    // A token: needed beyond loopback; with one, everything but badges asks for it.
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret-token-of-24-chars\n").map_err(|e| e.to_string())?;
    let open_port = free_port("0.0.0.0");
    let refused = Command::new(PULLGATE)
        .arg("--state-dir")
        .arg(&state)
        .args(["serve", "--listen", &format!("0.0.0.0:{open_port}"), "-c"])
        .arg(&routes)
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("no token"),
        "a dashboard beyond loopback with no token: {:?} {}",
        refused.status.code(),
        String::from_utf8_lossy(&refused.stderr)
    );
    let mut cmd = Command::new(PULLGATE);
    cmd.arg("--state-dir")
        .arg(&state)
        .args(["serve", "--listen", &format!("0.0.0.0:{open_port}"), "--token-file"])
        .arg(&token_file)
        .arg("-c")
        .arg(&routes);
    let mut guarded = Server::start("pullgate serve (token)", cmd, &dir.join("serve-token.log"))?;
    let at: std::net::SocketAddr = format!("127.0.0.1:{open_port}").parse().unwrap();
    wait_for_port(&mut guarded, at)?;
    for path in ["/", "/api/report", "/api/report.csv", "/metrics", "/api/openapi.json"] {
        ensure!(get(at, path)?.status == 401, "{path} without the token");
    }
    ensure!(
        curl("GET", &format!("http://{at}/api/report"), &["Authorization: Bearer wrong-token-of-24-chars!"])?.status == 401,
        "a wrong token"
    );
    let with = curl("GET", &format!("http://{at}/api/report?range=30d&by=client"), &["Authorization: Bearer s3cret-token-of-24-chars"])?;
    ensure!(with.status == 200 && json(&with)?["totals"] == cli["totals"], "with the token: {}", with.status);
    ensure!(get(at, "/badge/acme/app/pulls.svg")?.status == 200, "a badge needs no token");
    let login = get(at, "/login?token=s3cret-token-of-24-chars")?;
    let cookie = login.header("set-cookie").unwrap_or("").to_string();
    ensure!(login.status == 303 && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "login: {} {cookie}", login.status);
    let jar = format!("Cookie: {}", cookie.split(';').next().unwrap_or(""));
    ensure!(curl("GET", &format!("http://{at}/"), &[&jar])?.status == 200, "the page with the login cookie");
    drop(guarded);

    // An empty store: the page says what to do.
    let empty_state = dir.join("empty");
    let empty_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
    let mut cmd = Command::new(PULLGATE);
    cmd.arg("--state-dir").arg(&empty_state).args(["serve", "--listen", &empty_addr.to_string(), "-c"]).arg(&routes);
    let mut empty = Server::start("pullgate serve (empty)", cmd, &dir.join("serve-empty.log"))?;
    wait_for_port(&mut empty, empty_addr)?;
    let e = String::from_utf8_lossy(&get(empty_addr, "/")?.body).into_owned();
    ensure!(e.contains("id=\"empty\"") && e.contains("docker pull"), "the empty page: {e:.300}");
    std::thread::sleep(Duration::from_millis(10));
    eprintln!("dashboard: {pulls} pulls ({app_pulls} of acme/app) alike in the API, the page, the badge and the report");
    drop((server, empty));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
