//! `pullgate run`: the sidecar for an nginx that pullgate does not start.

use std::process::Command;
use std::time::Duration;

use super::WithWorld;
use crate::ensure;
use crate::support::gateway::{curl, Gateway, PULLGATE};
use crate::support::process::{free_port, wait_for_http, wait_for_port, Server};
use crate::support::wait_until;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![("sidecar::run_keeps_an_external_nginx_in_step".to_string(), Box::new(external_nginx) as WithWorld)]
}

fn route(w: &World, name: &str, image: &str) -> String {
    format!("  - {{name: {name}, image: {image}, upstream: \"http://{}/{image}\", mode: redirect}}\n", w.anon.addr)
}

fn external_nginx(w: &World) -> Result<(), String> {
    let dir = w.dir("sidecar-run");
    let out = dir.join("pullgate");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
    // The operator's own nginx.conf, including what pullgate renders (empty at first).
    std::fs::write(out.join("pullgate.conf"), "").map_err(|e| e.to_string())?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr notice;\nevents {{}}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/pullgate/pullgate.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
    let _nginx = Server::start("the operator's nginx", cmd, &dir.join("nginx.log"))?;
    wait_until(Duration::from_secs(10), "nginx writing its pid file", || Ok(dir.join("nginx.pid").exists()))?;

    let addr = Gateway::pick_addr();
    let path = dir.join("routes.yaml");
    std::fs::write(&path, Gateway::yaml(addr, "", &route(w, "app", "acme/app"))).map_err(|e| e.to_string())?;
    let status_addr = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let mut run = Command::new(PULLGATE);
    run.arg("--state-dir").arg(dir.join("state")).args(["run", "--no-dashboard", "-c"]).arg(&path).arg("--out").arg(&out);
    run.arg("--pid-file").arg(dir.join("nginx.pid")).args(["--status-listen", &status_addr]);
    // It ships the operator's access log too (routes.yaml names it relative to nginx's prefix).
    let access_log = dir.join("logs/pullgate.access.log");
    run.arg("--access-log").arg(&access_log).args(["--geoip-dir", "none"]);
    let mut sidecar = Server::start("pullgate run", run, &dir.join("run.log"))?;
    // The first apply reloads the operator's nginx into serving the routes.
    wait_for_http(&mut sidecar, addr)?;
    wait_for_port(&mut sidecar, status_addr.parse().unwrap())?;
    let get = |image: &str| -> Result<u16, String> {
        Ok(curl("GET", &format!("http://{addr}/v2/{image}/manifests/1.0"), &["User-Agent: docker/20.10.24"])?.status)
    };
    ensure!(get("acme/app")? == 307, "the first apply is not serving");
    // An edit goes live through SIGHUP and verification.
    let tmp = dir.join(".routes.yaml.new");
    std::fs::write(&tmp, Gateway::yaml(addr, "", &format!("{}{}", route(w, "app", "acme/app"), route(w, "multi", "acme/multi"))))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(5), "the edit serving", || Ok(get("acme/multi")? == 307))?;
    // The daemon records the reload a moment after nginx serves it.
    let status = || -> Result<String, String> { Ok(curl("GET", &format!("http://{status_addr}/status"), &[])?.text()) };
    wait_until(Duration::from_secs(2), "the daemon recording the reload", || Ok(status()?.contains("\"reloads_ok\": 2")))
        .map_err(|e| format!("{e}; status: {}", status().unwrap_or_default()))?;
    // Every request nginx logged reaches the local sink, by id, and the status says so.
    let ids_of = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_str().map(str::to_string)).collect()
    };
    let logged = ids_of(&std::fs::read_to_string(&access_log).map_err(|e| e.to_string())?);
    ensure!(logged.len() >= 2, "nginx logged {} requests", logged.len());
    wait_until(Duration::from_secs(10), "the access log shipped", || {
        let s: serde_json::Value = serde_json::from_str(&status()?).map_err(|e| e.to_string())?;
        Ok(s["shipping"]["shipped"].as_u64().unwrap_or(0) as usize >= logged.len() && s["shipping"]["lag_bytes"] == 0)
    })
    .map_err(|e| format!("{e}; status: {}", status().unwrap_or_default()))?;
    let sink = std::fs::read_to_string(dir.join("state/events/events-000001.jsonl")).map_err(|e| e.to_string())?;
    let shipped = ids_of(&sink);
    let missing: Vec<&String> = logged.difference(&shipped).collect();
    ensure!(missing.is_empty(), "{} of {} logged ids are not in the local sink: {missing:?}", missing.len(), logged.len());
    let unknown: Vec<&String> = shipped.difference(&logged).collect();
    ensure!(unknown.is_empty(), "the local sink holds ids nginx never logged: {unknown:?}");
    ensure!(!sink.contains("\"ip\""), "the local sink holds raw addresses");
    Ok(())
}
