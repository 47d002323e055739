//! Analytics end to end: real clients pull through the real gateway, the
//! shipper writes the local sink, `pullgate analytics ingest` reads it, and
//! `pullgate report` counts each client's pulls, checks and downloads.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::WithWorld;
use crate::ensure;
use crate::support::clients::{podman_pull, skopeo_copy};
use crate::support::gateway::{curl, Gateway, PULLGATE};
use crate::support::wait_until;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![("analytics::real_clients_are_counted_by_the_rules".to_string(), Box::new(real_clients) as WithWorld)]
}

/// The window the test ingests with, and the pause before each re-pull:
/// longer, so that a re-pull is an action of its own.
const WINDOW_S: u64 = 2;
const REPULL_AFTER: Duration = Duration::from_secs(3);

fn pullgate(state: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(PULLGATE).arg("--state-dir").arg(state).args(args).output().map_err(|e| e.to_string())?;
    ensure!(out.status.success(), "pullgate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

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
    skopeo_copy(&format!("{host}/acme/skopeo:1.0"), &work.join("s1"), false)?;
    skopeo_copy(&format!("{host}/acme/multi:1.0"), &work.join("s2"), true)?;
    // podman: a pull, and after the window a re-pull (it GETs the tag and the config blob again).
    podman_pull(&format!("{host}/acme/podman:1.0"), &work.join("p"))?;
    std::thread::sleep(REPULL_AFTER);
    podman_pull(&format!("{host}/acme/podman:1.0"), &work.join("p"))?;
    // containerd's ctr: one pull.
    engine.ctr_pull("analytics", &format!("{host}/acme/ctr:1.0"))?;
    // docker: a pull, and after the window a re-pull when up to date: a HEAD only.
    engine.docker_repull(&format!("{host}/acme/docker:1.0"), REPULL_AFTER)?;
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
    let window = WINDOW_S.to_string();
    let said = pullgate(&state, &["analytics", "ingest", "--window-s", &window])?;
    ensure!(said.contains(&format!("ingested {} events", shipped())), "ingest said: {said}");
    let report = |extra: &[&str]| -> Result<Value, String> {
        let mut args = vec!["report", "--since", "1h", "--window-s", &window, "--format", "json"];
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
    pullgate(&state, &["analytics", "ingest", "--window-s", &window])?;
    ensure!(report(&["--by", "client"])? == r, "a second ingest changed the report");
    let db2 = dir.join("again.db");
    let db2 = db2.to_str().unwrap();
    pullgate(&state, &["analytics", "ingest", "--window-s", &window, "--db", db2])?;
    ensure!(report(&["--by", "client", "--db", db2])? == r, "another store from the same sink differs");
    // The table and CSV forms carry the same numbers.
    let csv = pullgate(&state, &["report", "--since", "1h", "--window-s", &window, "--by", "client", "--format", "csv"])?;
    ensure!(
        csv.lines().next() == Some("client,requests,pulls,version_checks,downloads,unique_origins,unique_ips")
            && csv.lines().any(|l| l.starts_with("docker,") && l.contains(",1,1,1,1,1")),
        "csv:\n{csv}"
    );
    let table = pullgate(&state, &["report", "--since", "1h", "--by", "client"])?;
    ensure!(table.lines().any(|l| l.starts_with("total ")), "table:\n{table}");
    eprintln!("analytics: {} requests; by client: {got:?}\n{table}", logged.len());
    Ok(())
}
