//! Analytics end to end: real clients pull through the real gateway, the
//! shipper writes the local sink, `pullgate analytics ingest` reads it, and
//! `pullgate report` counts each client's pulls, checks and downloads.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::cli::repo_root;
use super::WithWorld;
use crate::ensure;
use crate::support::clients::{podman_pull, skopeo_copy};
use crate::support::gateway::{curl, pullgate_in as pullgate, Gateway, PULLGATE};
use crate::support::wait_until;
use crate::world::World;

/// Tests that need no upstream.
pub fn standalone() -> Vec<(String, super::Standalone)> {
    vec![("analytics::synthetic_logs_match_their_truth".to_string(), synthetic as super::Standalone)]
}

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![
        ("analytics::real_clients_are_counted_by_the_rules".to_string(), Box::new(real_clients) as WithWorld),
        ("analytics::two_nodes_through_cloudwatch_count_each_request_once".to_string(), Box::new(two_nodes) as WithWorld),
    ]
}

/// The window the test ingests with, and the pause before each re-pull:
/// longer, so that a re-pull is an action of its own.
const WINDOW_S: u64 = 2;
const REPULL_AFTER: Duration = Duration::from_secs(3);

fn real_clients(w: &World) -> Result<(), String> {
    let engine = w.engine.as_ref().map_err(|e| format!("no container engine: {e}"))?;
    let dir = w.dir("analytics-clients");
    let addr = Gateway::pick_addr();
    let routes = dir.join("routes.yaml");
    std::fs::write(&routes, Gateway::yaml(addr, "", &w.routes_anon("auto"))).map_err(|e| e.to_string())?;
    // Shipping on, to the local sink under state/events.
    let gw = Gateway::launch_with(&dir, addr, &routes, &[], |_| {})?;
    let host = gw.host();
    let work = dir.join("clients");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    // skopeo: a single-platform image and a two-platform index (all platforms).
    skopeo_copy(&format!("{host}/acme/skopeo-a:1.0"), &work.join("s1"), false)?;
    skopeo_copy(&format!("{host}/acme/multi:1.0"), &work.join("s2"), true)?;
    // podman: a pull, and after the window a re-pull (it GETs the tag and the config blob again).
    podman_pull(&format!("{host}/acme/podman-a:1.0"), &work.join("p"))?;
    std::thread::sleep(REPULL_AFTER);
    podman_pull(&format!("{host}/acme/podman-a:1.0"), &work.join("p"))?;
    // containerd's ctr: one pull.
    engine.ctr_pull("analytics", &format!("{host}/acme/ctr-a:1.0"))?;
    // docker: a pull, and after the window a re-pull when up to date: a HEAD only.
    engine.docker_repull(&format!("{host}/acme/docker-a:1.0"), REPULL_AFTER)?;
    // curl: a version check by hand.
    let r = curl("HEAD", &format!("http://{host}/v2/acme/app/manifests/1.0"), &["Accept: application/vnd.oci.image.manifest.v1+json"])?;
    ensure!(r.status == 200, "curl HEAD: {}", r.status);

    // Everything nginx logged reaches the sink, then the store.
    let logged: Vec<String> = gw.log()?.iter().filter_map(|l| l["id"].as_str().map(str::to_string)).collect();
    let sink = dir.join("state/events");
    let shipped = || -> usize {
        std::fs::read_dir(&sink)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().lines().count())
            .sum()
    };
    wait_until(Duration::from_secs(20), "every request shipped", || Ok(shipped() >= logged.len()))?;
    let state = dir.join("state");
    // `up` ingests by itself into state/analytics.db (60 s window: each
    // re-pull, 3 s later, joins its pull there).
    let auto = |args: &[&str]| -> Result<Value, String> {
        let mut all = vec!["report", "--since", "1h", "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&pullgate(&state, &all)?).map_err(|e| e.to_string())
    };
    wait_until(Duration::from_secs(15), "up's own ingest", || Ok(auto(&[])?["totals"]["requests"] == logged.len()))?;
    let t = auto(&[])?["totals"].clone();
    ensure!(t["pulls"] == 5 && t["version_checks"] == 1 && t["downloads"] == 5 && t["unique_origins"] == 5, "up's own ingest: {t}");
    // The test's own store, with a window shorter than the pause before each re-pull.
    let manual = dir.join("manual.db");
    let manual = manual.to_str().unwrap();
    let window = WINDOW_S.to_string();
    let said = pullgate(&state, &["analytics", "ingest", "--window-s", &window, "--db", manual])?;
    ensure!(said.contains(&format!("ingested {} events", shipped())), "ingest said: {said}");
    let report = |extra: &[&str]| -> Result<Value, String> {
        let mut args = vec!["report", "--since", "1h", "--window-s", &window, "--format", "json", "--db", manual];
        args.extend_from_slice(extra);
        serde_json::from_str(&pullgate(&state, &args)?).map_err(|e| e.to_string())
    };
    let r = report(&["--by", "client"])?;
    let got: BTreeMap<String, (u64, u64, u64, u64)> = r["rows"]
        .as_array()
        .ok_or("no rows")?
        .iter()
        .map(|row| {
            let n = |k: &str| row[k].as_u64().unwrap_or(u64::MAX);
            (row["client"].as_str().unwrap_or("?").to_string(), (n("pulls"), n("version_checks"), n("downloads"), n("unique_origins")))
        })
        .collect();
    // (pulls, version checks, downloads, unique origins) per client family.
    let want: BTreeMap<String, (u64, u64, u64, u64)> = [
        ("containerd", (1, 0, 1, 1)),
        ("curl", (0, 1, 0, 1)),
        ("docker", (1, 1, 1, 1)),
        ("podman", (2, 0, 2, 1)),
        ("skopeo", (2, 0, 2, 1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ensure!(got == want, "report by client:\n got  {got:?}\n want {want:?}\n{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    let t = &r["totals"];
    ensure!(
        t["pulls"] == 6 && t["version_checks"] == 2 && t["downloads"] == 6 && t["unique_origins"] == 5 && t["unique_ips"] == 1,
        "totals: {t}"
    );
    ensure!(t["requests"] == logged.len(), "totals count {} requests, nginx logged {}", t["requests"], logged.len());

    // A second ingest, and a fresh store fed the same sink twice: the same report.
    pullgate(&state, &["analytics", "ingest", "--window-s", &window, "--db", manual])?;
    ensure!(report(&["--by", "client"])? == r, "a second ingest changed the report");
    let db2 = dir.join("again.db");
    let db2 = db2.to_str().unwrap();
    pullgate(&state, &["analytics", "ingest", "--window-s", &window, "--db", db2])?;
    let other: Value = serde_json::from_str(&pullgate(
        &state,
        &["report", "--since", "1h", "--window-s", &window, "--format", "json", "--by", "client", "--db", db2],
    )?)
    .map_err(|e| e.to_string())?;
    ensure!(other == r, "another store from the same sink differs");
    // The table and CSV forms carry the same numbers.
    let csv = pullgate(&state, &["report", "--since", "1h", "--by", "client", "--format", "csv", "--db", manual])?;
    ensure!(
        csv.lines().next() == Some("client,requests,pulls,version_checks,downloads,unique_origins,unique_ips")
            && csv.lines().any(|l| l.starts_with("docker,") && l.contains(",1,1,1,1,1")),
        "csv:\n{csv}"
    );
    let table = pullgate(&state, &["report", "--since", "1h", "--by", "client", "--db", manual])?;
    ensure!(table.lines().any(|l| l.starts_with("total ")), "table:\n{table}");
    // `up` ingests into its own store and serves the dashboard over it: once
    // every request is in, its API gives what `report` gives from that store.
    let own = || -> Result<Value, String> {
        serde_json::from_str(&pullgate(&state, &["report", "--since", "1h", "--by", "client", "--format", "json"])?)
            .map_err(|e| e.to_string())
    };
    wait_until(Duration::from_secs(20), "up's own store to hold every request", || Ok(own()?["totals"]["requests"] == logged.len()))?;
    let reply = curl("GET", &format!("http://{}/api/report?since=1h&by=client", gw.dashboard_addr), &[])?;
    let api: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
    ensure!(api == own()?, "up's dashboard API: {api}\n against its store's report {}", own()?);
    eprintln!("analytics: {} requests; by client: {got:?}\n{table}", logged.len());
    Ok(())
}

/// `tests/synth/access_log.py`: a log with known truth.
pub(super) fn synth(dir: &std::path::Path, name: &str, lines: usize, days: u32, seed: u32) -> Result<(std::path::PathBuf, Value), String> {
    synth_with(dir, name, lines, days, seed, &[])
}

fn synth_with(
    dir: &std::path::Path,
    name: &str,
    lines: usize,
    days: u32,
    seed: u32,
    more: &[&str],
) -> Result<(std::path::PathBuf, Value), String> {
    crate::support::process::require("python3", "python3")?;
    let log = dir.join(format!("{name}.log"));
    let truth = dir.join(format!("{name}.truth.json"));
    let out = Command::new("python3")
        .arg(repo_root().join("tests/synth/access_log.py"))
        .args(["--lines", &lines.to_string(), "--days", &days.to_string(), "--seed", &seed.to_string(), "--truth"])
        .arg(&truth)
        .args(more)
        .stdout(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "the generator failed: {}", String::from_utf8_lossy(&out.stderr));
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&truth).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok((log, truth))
}

const COUNTERS: [&str; 6] = ["requests", "pulls", "version_checks", "downloads", "unique_origins", "unique_ips"];

fn counters(v: &Value) -> Vec<u64> {
    COUNTERS.iter().map(|k| v[k].as_u64().unwrap_or(u64::MAX)).collect()
}

/// Import and report with a state directory of its own.
struct Analytics {
    state: std::path::PathBuf,
}

impl Analytics {
    fn new(dir: &std::path::Path, name: &str) -> Analytics {
        Analytics { state: dir.join(name) }
    }

    fn import(&self, files: &[&std::path::Path]) -> Result<String, String> {
        let mut args = vec!["analytics", "import", "--geoip-dir", "none"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        pullgate(&self.state, &args)
    }

    fn report(&self, extra: &[&str]) -> Result<Value, String> {
        let mut args = vec!["report", "--since", "2026-03-01", "--until", "2026-04-01", "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&pullgate(&self.state, &args)?).map_err(|e| e.to_string())
    }
}

/// Synthetic logs with known truth (pollers, CI, multi-arch, cri-o double
/// fetches, HEAD-then-GET, 404s, DNT, IPv6 /64 neighbours, a week of days):
/// every counter exact, by day and by weekday; again after a second import,
/// from gzip, from shuffled pieces, after a SIGKILL mid-import; and nothing
/// under the state directory holds an address or a secret from the log.
fn synthetic() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("pg-synth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (log, truth) = synth(&dir, "week", 30_000, 7, 7)?;
    let a = Analytics::new(&dir, "a");
    let said = a.import(&[&log])?;
    ensure!(
        said.contains("30000 events (30000 new), 0 dead letters") || said.contains(&format!("{} events", truth["lines"])),
        "import said: {said}"
    );
    let r = a.report(&["--granularity", "day"])?;
    ensure!(counters(&r["totals"]) == counters(&truth["totals"]), "totals {} against the truth {}", r["totals"], truth["totals"]);
    let days: BTreeMap<String, Vec<u64>> = r["rows"]
        .as_array()
        .ok_or("no rows")?
        .iter()
        .map(|row| (row["period"].as_str().unwrap_or("").to_string(), counters(row)))
        .collect();
    let truth_days: BTreeMap<String, Vec<u64>> = truth["days"]
        .as_object()
        .ok_or("no days in the truth")?
        .iter()
        .map(|(d, c)| (d.clone(), COUNTERS.iter().map(|k| if *k == "requests" { u64::MAX } else { c[k].as_u64().unwrap_or(0) }).collect()))
        .collect();
    // Rows count the requests of their actions; compare everything else.
    let strip =
        |m: &BTreeMap<String, Vec<u64>>| -> BTreeMap<String, Vec<u64>> { m.iter().map(|(k, v)| (k.clone(), v[1..].to_vec())).collect() };
    ensure!(strip(&days) == strip(&truth_days), "by day:\n got  {days:?}\n want {truth_days:?}");
    ensure!(days.len() == 7, "{} days", days.len());
    // Every Tuesday: the one Tuesday of the week (2026-03-02 is a Monday).
    let tue = a.report(&["--weekday", "tue"])?;
    ensure!(
        counters(&tue["totals"])[1..] == truth_days["2026-03-03"][1..],
        "tuesdays: {} against {:?}",
        tue["totals"],
        truth_days["2026-03-03"]
    );

    // The pollers (a HEAD every 5 minutes), and nothing else, are flagged.
    let pollers = a.report(&["--by", "poller"])?;
    let flagged: Vec<&Value> = pollers["rows"].as_array().ok_or("no rows")?.iter().filter(|r| r["poller"] == "yes").collect();
    ensure!(
        flagged.len() == 1
            && flagged[0]["version_checks"] == truth["pollers"]["version_checks"]
            && flagged[0]["unique_origins"].as_u64() == truth["pollers"]["origins"].as_u64().map(|n| n * 7)
            && flagged[0]["pulls"] == 0,
        "pollers: {pollers} against {}",
        truth["pollers"]
    );
    // Classes: Docker Desktop engines are laptops, cloud kernels and cluster runtimes servers.
    let classes = a.report(&["--by", "class,client"])?;
    let has = |class: &str, client: &str| {
        classes["rows"].as_array().is_some_and(|rows| rows.iter().any(|r| r["class"] == class && r["client"] == client))
    };
    ensure!(has("laptop", "docker") && has("server", "docker") && has("server", "cri-o") && has("unknown", "skopeo"), "classes: {classes}");
    // A few origins do not dominate this traffic; the shares are consistent.
    let c = &r["concentration"];
    let share = |k: &str| c[k].as_f64().unwrap_or(-1.0);
    ensure!(
        c["origins"].as_u64().unwrap_or(0) > 100
            && 0.0 < share("top_10")
            && share("top_10") <= share("top_20")
            && share("top_20") < 0.5
            && share("top_1_percent") < 0.5,
        "concentration: {c}"
    );
    // Docker Hub's usage export columns, hourly, adding up to the same pulls and checks.
    let hub = pullgate(&a.state, &["report", "--since", "2026-03-01", "--until", "2026-04-01", "--format", "dockerhub-csv"])?;
    let mut lines = hub.lines();
    ensure!(lines.next() == Some("datehour,repository,tag,digest,version_checks,pulls"), "dockerhub-csv header: {hub:.200}");
    let (mut checks, mut pulls) = (0u64, 0u64);
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        ensure!(f.len() == 6 && f[0].len() == 19 && f[0].ends_with(":00:00"), "dockerhub-csv line: {l}");
        checks += f[4].parse::<u64>().map_err(|e| e.to_string())?;
        pulls += f[5].parse::<u64>().map_err(|e| e.to_string())?;
    }
    ensure!(
        Some(pulls) == truth["totals"]["pulls"].as_u64() && Some(checks) == truth["totals"]["version_checks"].as_u64(),
        "dockerhub-csv sums: {pulls} pulls, {checks} checks"
    );

    // Idempotent: importing again counts nothing twice.
    let said = a.import(&[&log])?;
    ensure!(said.contains("(0 new)"), "a second import: {said}");
    ensure!(a.report(&["--granularity", "day"])? == r, "a second import changed the report");

    // gzip, and the lines shuffled across three files imported out of order.
    let gz = dir.join("week.log.gz");
    let status =
        Command::new("sh").arg("-c").arg(format!("gzip -c {} > {}", log.display(), gz.display())).status().map_err(|e| e.to_string())?;
    ensure!(status.success(), "gzip failed");
    let b = Analytics::new(&dir, "b");
    b.import(&[&gz])?;
    ensure!(b.report(&["--granularity", "day"])? == r, "the gzip import differs");
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    // Requests with DNT/GPC are grouped by the shipper as it reads them (in
    // log order, as nginx writes them): they stay in order, in the first piece.
    let (dnt, mut lines): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.contains(r#""dnt":"1""#));
    ensure!(!dnt.is_empty(), "the log has no DNT requests");
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    for i in (1..lines.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lines.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let parts: Vec<std::path::PathBuf> = lines
        .chunks(lines.len() / 3 + 1)
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.join(format!("part{i}.log"));
            let dnt = if i == 0 { dnt.join("\n") + "\n" } else { String::new() };
            std::fs::write(&p, chunk.join("\n") + "\n" + &dnt).map(|_| p)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    // One run (the salts of old days go when a run ends: a day is imported in one run).
    let c = Analytics::new(&dir, "c");
    let reversed: Vec<&std::path::Path> = parts.iter().rev().map(|p| p.as_path()).collect();
    c.import(&reversed)?;
    ensure!(c.report(&["--granularity", "day"])? == r, "shuffled pieces imported out of order differ");

    // SIGKILL in the middle of an import, then the import again: nothing lost or doubled.
    let (big, big_truth) = synth(&dir, "big", 160_000, 3, 11)?;
    let k = Analytics::new(&dir, "k");
    let mut child = Command::new(PULLGATE)
        .arg("--state-dir")
        .arg(&k.state)
        .args(["analytics", "import", "--geoip-dir", "none"])
        .arg(&big)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Killed once at least one batch is in the store, and before the last.
    let committed = || -> Result<u64, String> { Ok(k.report(&[]).map(|r| r["totals"]["requests"].as_u64().unwrap_or(0)).unwrap_or(0)) };
    wait_until(Duration::from_secs(60), "a first batch committed", || Ok(committed()? > 0))?;
    child.kill().map_err(|e| e.to_string())?;
    let _ = child.wait();
    let before = committed()?;
    let total = big_truth["lines"].as_u64().unwrap_or(0);
    ensure!(before > 0 && before < total, "killed with {before} of {total} requests in the store: the resume is not tested");
    let said = k.import(&[&big])?;
    ensure!(said.contains(&format!("({} new)", total - before)), "the resumed import: {said} (had {before} of {total})");
    let got = k.report(&[])?;
    ensure!(
        counters(&got["totals"]) == counters(&big_truth["totals"]),
        "after a SIGKILL: {} against {}",
        got["totals"],
        big_truth["totals"]
    );
    eprintln!("synthetic: {} and {} lines exact; SIGKILL with {before} in the store, then: {said}", truth["lines"], big_truth["lines"]);

    // Above the exact threshold (4096 a day): uniques from HyperLogLog
    // sketches within 2%, the other counters still exact.
    let (many, many_truth) = synth_with(&dir, "many", 100_000, 1, 5, &["--ipv6", "0.6"])?;
    let h = Analytics::new(&dir, "h");
    h.import(&[&many])?;
    let got = h.report(&[])?;
    let (g, t) = (counters(&got["totals"]), counters(&many_truth["totals"]));
    ensure!(g[..4] == t[..4], "above the threshold: {} against {}", got["totals"], many_truth["totals"]);
    for (i, name) in [(4, "unique_origins"), (5, "unique_ips")] {
        let err = (g[i] as f64 - t[i] as f64).abs() / t[i] as f64;
        ensure!(t[i] > 4096 && err < 0.02, "{name}: {} against {} ({:.2}% off)", g[i], t[i], err * 100.0);
    }
    eprintln!("above the threshold: unique origins {} for {}, unique IPs {} for {}", g[4], t[4], g[5], t[5]);

    // Nothing under the state directories holds an address or a secret of the log.
    for state in [&a.state, &b.state, &c.state, &k.state, &h.state] {
        for file in walk(state)? {
            let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&bytes);
            for needle in ["203.0.113.", "192.0.2.", "198.51.100.", "2001:db8", "SECRET-"] {
                ensure!(!text.contains(needle), "{} holds {needle:?}", file.display());
            }
        }
    }
    // Positive control: the raw log does hold them.
    ensure!(text.contains("203.0.113.") && text.contains("2001:db8") && text.contains("SECRET-"), "the log lacks what the scan looks for");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Two gateway nodes ship to two streams of one CloudWatch Logs group
/// (moto); one ingest of the group counts each node's requests once, and a
/// second ingest (which reads the overlap again) changes nothing.
fn two_nodes(w: &World) -> Result<(), String> {
    const GROUP: &str = "pullgate-analytics";
    let dir = w.dir("analytics-cloudwatch");
    let moto = crate::support::moto::Moto::start(&dir.join("moto"))?;
    let mut nodes = Vec::new();
    for n in 1..=2 {
        let node = dir.join(format!("node{n}"));
        std::fs::create_dir_all(&node).map_err(|e| e.to_string())?;
        let addr = Gateway::pick_addr();
        let routes = node.join("routes.yaml");
        std::fs::write(&routes, Gateway::yaml(addr, "", &w.routes_anon("auto"))).map_err(|e| e.to_string())?;
        let stream = format!("node-{n}");
        let args = ["--cloudwatch-group", GROUP, "--cloudwatch-stream", stream.as_str(), "--geoip-dir", "none"];
        nodes.push(Gateway::launch_with(&node, addr, &routes, &args, |cmd| crate::support::moto::aws_env(cmd, &moto.endpoint()))?);
    }
    let work = dir.join("clients");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    skopeo_copy(&format!("{}/acme/skopeo:1.0", nodes[0].host()), &work.join("s"), false)?;
    podman_pull(&format!("{}/acme/podman:1.0", nodes[1].host()), &work.join("p"))?;
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    for (node, repo) in [(&nodes[0], "app"), (&nodes[1], "multi")] {
        let r = curl("HEAD", &format!("http://{}/v2/acme/{repo}/manifests/1.0", node.host()), &[accept])?;
        ensure!(r.status == 200, "curl HEAD: {}", r.status);
    }
    let logged: usize = nodes.iter().map(|n| n.log().map(|l| l.len())).sum::<Result<usize, String>>()?;

    let state = dir.join("ingest");
    let ingest = || {
        let mut cmd = Command::new(PULLGATE);
        cmd.arg("--state-dir").arg(&state).args(["analytics", "ingest", "--cloudwatch-group", GROUP, "--since", "1h"]);
        crate::support::moto::aws_env(&mut cmd, &moto.endpoint());
        let out = cmd.output().map_err(|e| e.to_string())?;
        ensure!(out.status.success(), "ingest: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let report = || -> Result<Value, String> {
        serde_json::from_str(&pullgate(&state, &["report", "--since", "1h", "--by", "client", "--format", "json"])?)
            .map_err(|e| e.to_string())
    };
    // The shippers deliver within a few seconds; ingest until every request is in.
    wait_until(Duration::from_secs(30), "every node's requests ingested from CloudWatch", || {
        ingest()?;
        Ok(report()?["totals"]["requests"].as_u64() == Some(logged as u64))
    })?;
    let r = report()?;
    let t = &r["totals"];
    // Each node keys origins with its own daily salt: curl, seen by both,
    // is two origins until nodes share their salts (docs/analytics.md).
    ensure!(
        t["pulls"] == 2 && t["version_checks"] == 2 && t["downloads"] == 2 && t["unique_origins"] == 4 && t["unique_ips"] == 2,
        "two nodes: {r}"
    );
    let said = ingest()?;
    ensure!(said.contains(" 0 new"), "a second ingest: {said}");
    ensure!(report()? == r, "a second ingest changed the report");
    // Each node's own store (`up` ingests the group it ships to) counts both nodes too.
    let own = dir.join("node1/state");
    wait_until(Duration::from_secs(60), "node 1's own store to hold both nodes' requests", || {
        let mine: Value = serde_json::from_str(&pullgate(&own, &["report", "--since", "1h", "--by", "client", "--format", "json"])?)
            .map_err(|e| e.to_string())?;
        Ok(mine["totals"] == r["totals"])
    })?;
    eprintln!("two nodes: {logged} requests through CloudWatch, each once, in the ingester's and in node 1's own store: {t}");
    Ok(())
}
