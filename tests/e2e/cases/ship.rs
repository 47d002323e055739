//! Log shipping through crashes: real nginx writes the log under traffic,
//! `pullgate ship` is killed with SIGKILL again and again, and every request
//! id nginx logged still reaches the sink.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use super::WithWorld;
use crate::ensure;
use crate::support::gateway::PULLGATE;
use crate::support::load::Load;
use crate::support::process::Server;
use crate::support::wait_until;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![
        ("ship::sigkill_25_times_loses_no_request_id".to_string(), Box::new(crash_test) as WithWorld),
        ("ship::rotation_during_traffic_loses_no_request_id".to_string(), Box::new(rotation) as WithWorld),
        ("ship::bad_input_is_dead_lettered_and_shipping_goes_on".to_string(), Box::new(bad_input) as WithWorld),
    ]
}

/// Request id -> how many times it is in the sink.
fn shipped_ids(sink: &std::path::Path) -> Result<(HashMap<String, u32>, String), String> {
    let mut ids = HashMap::new();
    let mut text = String::new();
    for entry in std::fs::read_dir(sink).map_err(|e| e.to_string())?.flatten() {
        let body = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        for line in body.lines() {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("sink line {line:?}: {e}"))?;
            *ids.entry(v["id"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
        }
        text.push_str(&body);
    }
    Ok((ids, text))
}

/// Wait until every id in `expected` is in the sink; say how many are missing if not.
fn wait_all_shipped(sink: &std::path::Path, expected: &[String], shipper: &Server) -> Result<(), String> {
    wait_until(Duration::from_secs(60), "the shipper catching up", || {
        let (ids, _) = shipped_ids(sink)?;
        Ok(expected.iter().all(|id| ids.contains_key(id)))
    })
    .map(|_| ())
    .map_err(|e| {
        let (ids, _) = shipped_ids(sink).unwrap_or_default();
        let missing = expected.iter().filter(|id| !ids.contains_key(*id)).count();
        format!("{e}: {missing} of {} ids missing; shipper log:\n{}", expected.len(), shipper.log_text())
    })
}

fn crash_test(w: &World) -> Result<(), String> {
    const CRASHES: usize = 25;
    let routes = format!("  - {{name: app, image: acme/app, upstream: \"http://{}/acme/app\", mode: redirect}}\n", w.anon.addr);
    let gw = w.gateway("ship-crash", &routes)?;
    let log = gw.access_log();
    let sink = gw.dir.join("events");
    let ship = || {
        let mut cmd = Command::new(PULLGATE);
        cmd.arg("--state-dir").arg(gw.dir.join("ship-state")).args(["ship", "--log"]).arg(&log).arg("--sink-dir").arg(&sink);
        // Enrichment is not under test here: without it a restart is instant,
        // so the kills land in the middle of shipping, not during start-up.
        cmd.args(["--batch-bytes", "65536", "--geoip-dir", "none"]);
        Server::start("pullgate ship", cmd, &gw.dir.join("ship.log"))
    };

    let load = Load::start(gw.addr, "/v2/acme/app/manifests/1.0", "docker/20.10.24", 307, 1);
    let mut shipper = ship()?;
    // Kill at moments the shipper cannot predict: mid-read, mid-write, mid-checkpoint.
    let mut x: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    for _ in 0..CRASHES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(40 + x % 120));
        shipper.crash();
        shipper = ship()?;
    }
    let traffic = load.finish();
    ensure!(traffic.failures == 0 && traffic.ok > 1000, "the traffic itself failed: {traffic:?}");

    // Every id nginx logged must arrive, once the shipper has caught up.
    let logged: Vec<String> = gw.log()?.iter().filter_map(|l| l["id"].as_str().map(str::to_string)).collect();
    let start = Instant::now();
    wait_all_shipped(&sink, &logged, &shipper)?;
    let (ids, text) = shipped_ids(&sink)?;
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    // Nothing shipped carries the client's address.
    ensure!(!text.contains("127.0.0.1\"") && !text.contains("\"ip\""), "a raw address was shipped");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap_or("{}")).map_err(|e| e.to_string())?;
    ensure!(first["origin"].as_str().is_some_and(|o| o.len() == 32), "events carry no origin: {first}");
    eprintln!(
        "{} ids logged under {} SIGKILLs, all shipped ({} duplicates, caught up {:?} after the traffic)",
        logged.len(),
        CRASHES,
        duplicates,
        start.elapsed()
    );
    drop(shipper);
    Ok(())
}

fn ids_in(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_str().map(str::to_string))
        .collect()
}

fn rotation(w: &World) -> Result<(), String> {
    let routes = format!("  - {{name: app, image: acme/app, upstream: \"http://{}/acme/app\", mode: redirect}}\n", w.anon.addr);
    let gw = w.gateway("ship-rotation", &routes)?;
    let log = gw.access_log();
    let sink = gw.dir.join("events");
    let mut cmd = Command::new(PULLGATE);
    cmd.arg("--state-dir").arg(gw.dir.join("ship-state")).args(["ship", "--log"]).arg(&log).arg("--sink-dir").arg(&sink);
    cmd.args(["--geoip-dir", "none"]);
    let shipper = Server::start("pullgate ship", cmd, &gw.dir.join("ship.log"))?;
    let master: i32 =
        std::fs::read_to_string(gw.dir.join("state/nginx/nginx.pid")).map_err(|e| e.to_string())?.trim().parse().map_err(|_| "no pid")?;
    let load = Load::start(gw.addr, "/v2/acme/app/manifests/1.0", "docker/20.10.24", 307, 1);
    let pause = || std::thread::sleep(Duration::from_millis(700));
    pause();
    // logrotate's default: rename, then USR1 so that nginx reopens its log.
    let renamed = log.with_extension("log.1");
    std::fs::rename(&log, &renamed).map_err(|e| e.to_string())?;
    // SAFETY: kill(2) on the gateway's nginx master.
    unsafe { libc::kill(master, libc::SIGUSR1) };
    pause();
    // copytruncate: copy, then truncate in place (nginx appends with O_APPEND).
    let copied = log.with_extension("log.2");
    std::fs::copy(&log, &copied).map_err(|e| e.to_string())?;
    std::fs::OpenOptions::new().write(true).open(&log).and_then(|f| f.set_len(0)).map_err(|e| e.to_string())?;
    pause();
    // truncate to zero, no copy.
    std::fs::OpenOptions::new().write(true).open(&log).and_then(|f| f.set_len(0)).map_err(|e| e.to_string())?;
    pause();
    let traffic = load.finish();
    ensure!(traffic.failures == 0 && traffic.ok > 1000, "the traffic itself failed: {traffic:?}");
    std::thread::sleep(Duration::from_millis(300));

    let must: Vec<String> = ids_in(&renamed).into_iter().chain(ids_in(&log)).collect();
    let copy_only = ids_in(&copied);
    wait_all_shipped(&sink, &must, &shipper)?;
    let (ids, _) = shipped_ids(&sink)?;
    let window = copy_only.iter().filter(|id| !ids.contains_key(*id)).count();
    eprintln!(
        "rotation: {} ids in the renamed and live files, all shipped; copytruncate copy held {}, {} of them only there (its window)",
        must.len(),
        copy_only.len(),
        window
    );
    Ok(())
}

fn bad_input(w: &World) -> Result<(), String> {
    let dir = w.dir("ship-bad-input");
    let log = dir.join("access.log");
    let sink = dir.join("events");
    // Line 2 comes from a public address: it is shipped with its country, without the address.
    let line = |n: u32| {
        let ip = if n == 2 { "1.0.0.1" } else { "198.51.100.7" };
        format!(
            r#"{{"ts":"1795347790.{n:03}","id":"{n:032x}","ip":"{ip}","host":"h","method":"GET","uri":"/v2/","status":200,"bytes":2,"rt":0.001,"ua":"docker/27","accept":"*/*","auth":"bearer","range":"","dnt":"","route":"","upstream":"","mode":"local"}}"#
        )
    };
    let mut text: Vec<u8> = Vec::new();
    text.extend(format!("{}\n", line(1)).as_bytes());
    text.extend(b"\x00\x01\x02 binary garbage \xff\n");
    text.extend(b"{\"ts\":\"1\",\"id\":\"\xe9t\xe9\"}\n");
    text.extend(vec![b'x'; 1 << 20]);
    text.push(b'\n');
    text.extend(br#"{"ts":"1795347790.5","id":"00000000000000000000000000000009"}"#);
    text.push(b'\n');
    text.extend(format!("{}\n", line(2)).as_bytes());
    std::fs::write(&log, &text).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(PULLGATE);
    cmd.arg("--state-dir").arg(dir.join("state")).args(["ship", "--log"]).arg(&log).arg("--sink-dir").arg(&sink);
    let shipper = Server::start("pullgate ship", cmd, &dir.join("ship.log"))?;
    wait_until(Duration::from_secs(20), "the valid lines shipping", || Ok(shipped_ids(&sink).map(|(ids, _)| ids.len()).unwrap_or(0) == 2))?;
    // It keeps going after the bad lines.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{}\n", line(3)).as_bytes()))
        .map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(20), "a later line shipping", || Ok(shipped_ids(&sink).map(|(ids, _)| ids.len()).unwrap_or(0) == 3))?;
    let dead = std::fs::read_to_string(dir.join("state/ship/dead-letters.jsonl")).map_err(|e| e.to_string())?;
    let reasons: Vec<String> =
        dead.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["reason"].as_str().map(str::to_string)).collect();
    ensure!(reasons.len() == 4, "dead letters: {reasons:?}");
    for (want, n) in [("not UTF-8", 2), ("over the bound", 1), ("not a schema v1 line", 1)] {
        let found = reasons.iter().filter(|r| r.contains(want)).count();
        ensure!(found == n, "{found} dead letters for {want:?}, expected {n}: {reasons:?}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("state/ship/dead-letters.jsonl")).map_err(|e| e.to_string())?.permissions(),
    );
    ensure!(mode & 0o777 == 0o600, "dead letters are readable by others: {mode:o}");
    let (_, shipped) = shipped_ids(&sink)?;
    ensure!(!shipped.contains("198.51.100.7") && !shipped.contains("1.0.0.1"), "a raw address was shipped");
    let second = shipped.lines().find(|l| l.contains(&format!("{:032x}", 2))).ok_or("line 2 was not shipped")?;
    let second: serde_json::Value = serde_json::from_str(second).map_err(|e| e.to_string())?;
    ensure!(second["country"] == "AU" && second["origin"].is_string(), "line 2 shipped as {second}");
    drop(shipper);
    Ok(())
}
