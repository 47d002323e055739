//! Live routing: edits to routes.yaml go live through `pullgate up`'s daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::WithWorld;
use crate::ensure;
use crate::support::gateway::{curl, Gateway, PULLGATE};
use crate::support::load::Load;
use crate::support::process::require;
use crate::support::wait_until;
use crate::world::World;

const DOCKER_UA: &str = "User-Agent: docker/20.10.24 go/go1.19.8";
/// The bound from an edit on disk to the change serving.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

type Case = fn(&World) -> Result<(), String>;

pub fn tests() -> Vec<(String, WithWorld)> {
    let cases: Vec<(&str, Case)> = vec![
        ("live::plain_write_serves_within_1s", |w| edit_goes_live(w, "plain", Edit::Plain)),
        ("live::atomic_rename_serves_within_1s", |w| edit_goes_live(w, "rename", Edit::Rename)),
        ("live::symlink_swap_serves_within_1s", |w| edit_goes_live(w, "symlink", Edit::SymlinkSwap)),
        ("live::broken_edits_never_go_live", broken_edits),
        ("live::unchanged_edit_is_skipped_without_reload", unchanged_edit),
        ("live::other_files_beside_routes_yaml_are_ignored", other_files_ignored),
        ("live::status_after_start_says_what_it_means_in_plain_text", status_after_start),
        ("live::edit_storm_costs_few_reloads_and_the_last_edit_wins", edit_storm),
        ("live::fifty_reloads_under_load_lose_no_request", reloads_under_load),
    ];
    cases.into_iter().map(|(n, f)| (n.to_string(), Box::new(f) as WithWorld)).collect()
}

fn route(w: &World, name: &str, image: &str) -> String {
    format!("  - {{name: {name}, image: {image}, upstream: \"http://{}/{image}\", mode: redirect}}\n", w.anon.addr)
}

/// Status of `GET /v2/IMAGE/manifests/1.0` as docker.
fn status_of(gw: &Gateway, image: &str) -> Result<u16, String> {
    Ok(curl("GET", &format!("http://{}/v2/{image}/manifests/1.0", gw.host()), &[DOCKER_UA])?.status)
}

/// A counter of the daemon's status; a missing one is an error, not 0.
fn counter(status: &Value, key: &str) -> Result<u64, String> {
    status[key].as_u64().ok_or_else(|| format!("no counter `{key}` in the status: {status}"))
}

enum Edit {
    Plain,
    Rename,
    SymlinkSwap,
}

/// A Kubernetes ConfigMap volume: routes.yaml -> ..data/routes.yaml, ..data -> ..TIMESTAMP.
fn configmap_write(dir: &Path, n: u32, yaml: &str) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let version_dir = dir.join(format!("..2026_11_22_{n:04}"));
    std::fs::create_dir_all(&version_dir).map_err(io)?;
    std::fs::write(version_dir.join("routes.yaml"), yaml).map_err(io)?;
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(version_dir.file_name().unwrap(), &tmp).map_err(io)?;
    std::fs::rename(&tmp, dir.join("..data")).map_err(io)?;
    if !dir.join("routes.yaml").exists() {
        std::os::unix::fs::symlink("..data/routes.yaml", dir.join("routes.yaml")).map_err(io)?;
    }
    Ok(())
}

fn edit_goes_live(w: &World, name: &str, how: Edit) -> Result<(), String> {
    let dir = w.dir(&format!("live-{name}"));
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
    let addr = Gateway::pick_addr();
    let before = Gateway::yaml(addr, "", &route(w, "app", "acme/app"));
    let after = Gateway::yaml(addr, "", &format!("{}{}", route(w, "app", "acme/app"), route(w, "multi", "acme/multi")));
    let path: PathBuf = conf.join("routes.yaml");
    let write = |yaml: &str, n: u32| -> Result<(), String> {
        match how {
            Edit::Plain => std::fs::write(&path, yaml).map_err(|e| e.to_string()),
            Edit::Rename => {
                // An editor's atomic save: a new file renamed over the old one.
                let tmp = conf.join(".routes.yaml.swp");
                std::fs::write(&tmp, yaml).map_err(|e| e.to_string())?;
                std::fs::rename(&tmp, &path).map_err(|e| e.to_string())
            }
            Edit::SymlinkSwap => configmap_write(&conf, n, yaml),
        }
    };
    write(&before, 1)?;
    let gw = Gateway::launch(&dir, addr, &path, &[])?;
    ensure!(status_of(&gw, "acme/multi")? == 404, "acme/multi served before the edit");
    let version = gw.status()?["serving_version"].clone();

    let edited = Instant::now();
    write(&after, 2)?;
    wait_until(Duration::from_secs(5), "the edit serving", || Ok(status_of(&gw, "acme/multi")? == 307))?;
    let took = edited.elapsed();
    ensure!(took < LIVE_WITHIN, "the edit took {took:?} to serve (bound: {LIVE_WITHIN:?})");
    ensure!(status_of(&gw, "acme/app")? == 307, "the old route stopped serving");
    // nginx serves the new config a moment before the daemon has verified and recorded it.
    wait_until(Duration::from_secs(2), "the daemon recording the reload", || Ok(counter(&gw.status()?, "reloads_ok")? >= 1))?;
    let s = gw.status()?;
    ensure!(s["serving_version"] != version, "status after the edit: {s}");
    eprintln!("{name}: edit serving after {took:?}");
    Ok(())
}

fn broken_edits(w: &World) -> Result<(), String> {
    let dir = w.dir("live-broken");
    let addr = Gateway::pick_addr();
    let good = Gateway::yaml(addr, "", &route(w, "app", "acme/app"));
    let path = dir.join("routes.yaml");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(&path, &good).map_err(|e| e.to_string())?;
    let gw = Gateway::launch(&dir, addr, &path, &[])?;
    let version = gw.status()?["serving_version"].clone();
    let file = path.display().to_string();
    let broken: [(&str, String, String); 3] = [
        ("YAML error", format!("{good}  - {{name: x, image: [\n"), format!("{file}:")),
        (
            "invalid field",
            format!("{good}  - {{name: bad, image: acme/multi, upstream: \"ftp://{}/acme/multi\"}}\n", w.anon.addr),
            format!("{file}:6:46: route \"bad\": upstream: only `http://` and `https://` are supported"),
        ),
        (
            "config nginx rejects",
            good.replace(
                "routes:\n",
                "  hosts:\n    - {name: tls.example, tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}}\nroutes:\n",
            ) + &route(w, "multi", "acme/multi"),
            "nginx rejected the rendered config".to_string(),
        ),
    ];
    for (i, (what, yaml, expected)) in broken.iter().enumerate() {
        std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
        wait_until(Duration::from_secs(5), "a recorded failure", || Ok(counter(&gw.status()?, "reloads_failed")? > i as u64))
            .map_err(|e| format!("{what}: no failure recorded: {e}"))?;
        let s = gw.status()?;
        let error = s["last_error"].as_str().unwrap_or("");
        ensure!(error.contains(expected.as_str()), "{what}: last_error {error:?} does not contain {expected:?}");
        ensure!(s["serving_version"] == version, "{what}: the serving version changed: {s}");
        ensure!(status_of(&gw, "acme/app")? == 307, "{what}: the previous routes stopped serving");
        ensure!(status_of(&gw, "acme/multi")? == 404, "{what}: part of the broken edit went live");
    }
    // pullgate status tells a person what is wrong.
    let out = Command::new(PULLGATE).args(["status", "--status", &gw.status_addr.to_string()]).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("the previous config keeps serving") && text.contains("nginx rejected"),
        "pullgate status:\n{text}"
    );
    // A good edit after the broken ones goes live and clears the error.
    std::fs::write(&path, format!("{good}{}", route(w, "multi", "acme/multi"))).map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(5), "the fixed edit serving", || Ok(status_of(&gw, "acme/multi")? == 307))?;
    // nginx serves it a moment before the daemon has verified and recorded it.
    wait_until(Duration::from_secs(2), "the daemon recording the fix", || Ok(counter(&gw.status()?, "reloads_ok")? >= 1))?;
    let s = gw.status()?;
    ensure!(s["last_error"].is_null() && s["serving_version"] != version, "after the fix: {s}");
    let metrics = curl("GET", &format!("http://{}/metrics", gw.status_addr), &[])?.text();
    for line in [
        "pullgate_reloads_total{result=\"failed\"} 3",
        "pullgate_reload_failures_total{stage=\"check\"} 1",
        "pullgate_reload_failures_total{stage=\"validate\"} 2",
        "pullgate_config_error 0",
    ] {
        ensure!(metrics.lines().any(|l| l == line), "metrics lack `{line}`:\n{metrics}");
    }
    Ok(())
}

fn unchanged_edit(w: &World) -> Result<(), String> {
    let routes = route(w, "app", "acme/app");
    let gw = w.gateway("live-unchanged", &routes)?;
    let workers = gw.workers();
    ensure!(!workers.is_empty(), "no nginx workers found");
    let path = gw.dir.join("routes.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    std::fs::write(&path, format!("# a comment changes nothing\n{text}\n\n")).map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(5), "the unchanged edit counted", || Ok(counter(&gw.status()?, "skipped_unchanged")? >= 1))?;
    let s = gw.status()?;
    ensure!(counter(&s, "reloads_ok")? == 0 && counter(&s, "reloads_failed")? == 0, "an unchanged edit reloaded: {s}");
    ensure!(gw.workers() == workers, "nginx workers changed: {workers:?} -> {:?}", gw.workers());
    Ok(())
}

fn other_files_ignored(w: &World) -> Result<(), String> {
    let gw = w.gateway("live-other-files", &route(w, "app", "acme/app"))?;
    // A log written next to routes.yaml (pullgate up > up.log), an editor's swap file.
    for i in 0..20 {
        std::fs::write(gw.dir.join("notes.log"), format!("line {i}\n")).map_err(|e| e.to_string())?;
        std::fs::write(gw.dir.join(".routes.yaml.swp"), format!("{i}")).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = gw.status()?;
    ensure!(counter(&s, "watch_events")? == 0 && counter(&s, "watch_batches")? == 0, "other files drove the watcher: {s}");
    // Positive control: the watcher is alive, and routes.yaml itself drives it.
    let path = gw.dir.join("routes.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(3), "a write of routes.yaml seen by the watcher", || {
        let s = gw.status()?;
        Ok(counter(&s, "watch_events")? >= 1 && counter(&s, "watch_batches")? >= 1)
    })?;
    Ok(())
}

fn edit_storm(w: &World) -> Result<(), String> {
    const EDITS: usize = 60;
    let dir = w.dir("live-storm");
    let addr = Gateway::pick_addr();
    let path = dir.join("routes.yaml");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let variant = |i: usize| {
        // Each edit a different config; the last one routes acme/multi.
        let last = if i + 1 == EDITS { route(w, "multi", "acme/multi") } else { route(w, &format!("v{i}"), &format!("storm/v{i}")) };
        Gateway::yaml(addr, "", &format!("{}{last}", route(w, "app", "acme/app")))
    };
    std::fs::write(&path, variant(0)).map_err(|e| e.to_string())?;
    let gw = Gateway::launch(&dir, addr, &path, &[])?;
    for i in 1..EDITS {
        let tmp = dir.join(".routes.yaml.new");
        std::fs::write(&tmp, variant(i)).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_until(Duration::from_secs(5), "the last edit serving", || Ok(status_of(&gw, "acme/multi")? == 307))
        .map_err(|e| format!("the last edit never served: {e}"))?;
    std::thread::sleep(Duration::from_millis(600));
    let s = gw.status()?;
    let reloads = counter(&s, "reloads_ok")?;
    ensure!((1..=6).contains(&reloads), "{} edits in {} ms cost {reloads} reloads: {s}", EDITS - 1, EDITS * 5);
    ensure!(counter(&s, "reloads_failed")? == 0 && status_of(&gw, "storm/v1")? == 404, "an intermediate edit is serving: {s}");
    Ok(())
}

fn reloads_under_load(w: &World) -> Result<(), String> {
    require("wrk", "wrk")?;
    const RELOADS: u64 = 50;
    let dir = w.dir("live-load");
    let addr = Gateway::pick_addr();
    let a = Gateway::yaml(addr, "", &route(w, "app", "acme/app"));
    let b = Gateway::yaml(addr, "", &format!("{}{}", route(w, "app", "acme/app"), route(w, "multi", "acme/multi")));
    let path = dir.join("routes.yaml");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(&path, &a).map_err(|e| e.to_string())?;
    let gw = Gateway::launch(&dir, addr, &path, &["--debounce-ms", "10", "--min-reload-interval-ms", "20"])?;
    let workers = gw.workers().len();

    // wrk on fresh connections (Connection: close): nothing may fail, not even a connect.
    // It runs until the reloads are done, then SIGINT makes it print its report.
    let url = format!("http://{}/v2/acme/app/manifests/1.0", gw.host());
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d120s", "-H", DOCKER_UA, "-H", "Connection: close", &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("wrk: {e}"))?;
    // Keep-alive clients that behave like Go's transport (docker, containerd).
    let keepalive = Load::start(addr, "/v2/acme/app/manifests/1.0", "docker/20.10.24", 307, 4);
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let reloads = (|| {
        for i in 1..=RELOADS {
            // Atomic writes: plain writes have their own test, and a half-written file is a (reported) broken edit.
            let tmp = dir.join(".routes.yaml.new");
            std::fs::write(&tmp, if i % 2 == 1 { &b } else { &a }).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
            wait_until(Duration::from_secs(5), "the reload going live", || Ok(counter(&gw.status()?, "reloads_ok")? >= i))
                .map_err(|e| format!("reload {i} did not go live: {e}"))?;
        }
        Ok::<(), String>(())
    })();
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let kept = keepalive.finish();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(wrk.id() as i32, libc::SIGINT) };
    let out = wrk.wait_with_output().map_err(|e| format!("wrk: {e}"))?;
    reloads?;
    let report = String::from_utf8_lossy(&out.stdout);
    let requests: u64 = report.lines().find_map(|l| l.trim().split_once(" requests in").and_then(|(n, _)| n.parse().ok())).unwrap_or(0);
    ensure!(requests > 1000, "wrk made only {requests} requests:\n{report}");
    ensure!(!report.contains("Socket errors"), "connection errors during reloads:\n{report}");
    ensure!(!report.contains("Non-2xx or 3xx"), "failed requests during reloads:\n{report}");
    ensure!(kept.failures == 0 && kept.ok > 1000, "keep-alive clients: {kept:?}");
    // Old workers finish once their connections close.
    wait_until(Duration::from_secs(10), "old workers exiting", || Ok(gw.workers().len() == workers))
        .map_err(|_| format!("old nginx workers did not exit: {} workers, expected {workers}", gw.workers().len()))?;
    let s = gw.status()?;
    ensure!(counter(&s, "reloads_ok")? == RELOADS && counter(&s, "reloads_failed")? == 0, "{s}");
    eprintln!(
        "{RELOADS} reloads in {took:?}: wrk {requests} requests on fresh connections, none failed; \
         keep-alive {} ok, {} retried after an idle-connection close, 0 failed",
        kept.ok, kept.stale_retries
    );
    Ok(())
}

/// Right after start `pullgate status` says the config was loaded at start
/// and nothing has changed since; logs written to a file carry no colour
/// codes, while a terminal gets them.
fn status_after_start(w: &World) -> Result<(), String> {
    let gw = w.gateway("status-after-start", &w.routes_anon("redirect"))?;
    let out = Command::new(PULLGATE).args(["status", "--status", &gw.status_addr.to_string()]).output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "pullgate status: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        text.contains("the config loaded at start") && text.contains("reloads:  none since start") && !text.contains("last ok"),
        "status right after start:\n{text}"
    );
    let log = std::fs::read_to_string(gw.dir.join("up.log")).map_err(|e| e.to_string())?;
    ensure!(log.contains("starting nginx"), "up.log holds no log lines: {log}");
    ensure!(!log.contains('\x1b'), "colour codes in a log written to a file:\n{log}");
    // Positive control: on a terminal (script(1) gives it one), the same lines are coloured.
    require("script", "bsdutils")?;
    let dir = gw.dir.join("tty");
    let cmd = format!("{PULLGATE} --state-dir {} ship --log {}/none.log --sink null", dir.display(), dir.display());
    let out = Command::new("timeout").args(["3", "script", "-qefc", &cmd, "/dev/null"]).output().map_err(|e| e.to_string())?;
    let tty = String::from_utf8_lossy(&out.stdout);
    ensure!(tty.contains("shipping") && tty.contains('\x1b'), "no colour on a terminal: {tty:?}");
    Ok(())
}
