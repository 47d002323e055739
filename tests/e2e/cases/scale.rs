//! Beyond one machine: the ClickHouse store (Debian's clickhouse-server,
//! on loopback) gives the reports and the dashboard the embedded store
//! gives for the same events, with one ingester or several at once.

use std::process::Command;

use serde_json::Value;

use super::analytics::synth;
use crate::ensure;
use crate::support::clickhouse::{ClickHouseServer, PASSWORD, READER, READER_PASSWORD, USER};
use crate::support::gateway::{curl, pullgate_in as pullgate, PULLGATE};
use crate::support::process::{free_port, wait_for_port, Server};

pub fn tests() -> Vec<(String, super::Standalone)> {
    vec![("scale::clickhouse_counts_as_sqlite_with_two_ingesters_at_once".to_string(), clickhouse_as_sqlite as super::Standalone)]
}

pub fn with_world() -> Vec<(String, super::WithWorld)> {
    vec![("scale::three_nodes_one_store_a_node_lost_and_back".to_string(), Box::new(three_nodes) as super::WithWorld)]
}

const SINCE: &str = "2026-03-01";
const UNTIL: &str = "2026-04-01";

/// Reports that cover every dimension, filter and granularity.
const QUERIES: &[&[&str]] = &[
    &[],
    &["--granularity", "day"],
    &["--granularity", "hour", "--top", "10"],
    &["--granularity", "week", "--by", "client"],
    &["--granularity", "month", "--by", "class,poller"],
    &["--by", "route,repository,tag"],
    &["--by", "client,client_version,os,arch"],
    &["--by", "country,asn,as_org,cloud"],
    &["--by", "weekday,hour"],
    &["--by", "digest", "--top", "5"],
    &["--by", "tag", "--repository", "acme/app"],
    &["--by", "repository", "--client", "docker", "--weekday", "tue"],
    &["--since", "2026-03-03T13:00", "--until", "2026-03-05T07:00", "--by", "class"],
];

fn clickhouse_as_sqlite() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("pg-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ch = ClickHouseServer::start(&dir.join("clickhouse"))?;
    let account = dir.join("store-account");
    std::fs::write(&account, format!("{USER}:{PASSWORD}\n")).map_err(|e| e.to_string())?;
    let account = account.to_str().unwrap().to_string();
    let (log, truth) = synth(&dir, "week", 30_000, 7, 11)?;

    // Importers key origins with the day's salt, which each state directory
    // makes its own: give every one the same salts, as the shipper gives
    // every event it ships one origin whichever ingester reads it.
    for state in ["sqlite", "one", "two-a", "two-b"] {
        let salts = dir.join(state).join("ship/salts");
        std::fs::create_dir_all(&salts).map_err(|e| e.to_string())?;
        // 2026-03-02 is day 20514; the log spans a week from it.
        for day in 20_500..20_530u32 {
            let salt: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(31) ^ (day as u8)).collect();
            std::fs::write(salts.join(format!("{day}.salt")), salt).map_err(|e| e.to_string())?;
        }
    }
    let sqlite = dir.join("sqlite");
    let one = ["--store".to_string(), ch.store("one"), "--store-account-file".to_string(), account.clone()];
    let two = ["--store".to_string(), ch.store("two"), "--store-account-file".to_string(), account.clone()];
    let import = |state: &std::path::Path, files: &[&std::path::Path], store: &[String]| -> Result<String, String> {
        let mut args = vec!["analytics", "import", "--geoip-dir", "none"];
        args.extend(store.iter().map(String::as_str));
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        pullgate(state, &args)
    };
    import(&sqlite, &[&log], &[])?;
    let said = import(&dir.join("one"), &[&log], &one)?;
    ensure!(said.contains("dead letters"), "import into ClickHouse said: {said}");

    // Two importers at once, into a third store, over pieces that overlap
    // (a fifth of the log is read by both): each request counts once.
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    let lines: Vec<&str> = text.lines().collect();
    let (a_end, b_start) = (lines.len() * 3 / 5, lines.len() * 2 / 5);
    let piece = |name: &str, part: &[&str]| -> Result<std::path::PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, part.join("\n") + "\n").map_err(|e| e.to_string())?;
        Ok(p)
    };
    let (pa, pb) = (piece("a.log", &lines[..a_end])?, piece("b.log", &lines[b_start..])?);
    let spawn = |state: &str, file: &std::path::Path| {
        Command::new(PULLGATE)
            .arg("--state-dir")
            .arg(dir.join(state))
            .args(["analytics", "import", "--geoip-dir", "none"])
            .args(&two)
            .arg(file)
            .output()
    };
    let (ra, rb) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("two-a", &pa));
        let b = s.spawn(|| spawn("two-b", &pb));
        (a.join(), b.join())
    });
    for r in [ra, rb] {
        let out = r.map_err(|_| "an importer thread panicked".to_string())?.map_err(|e| e.to_string())?;
        ensure!(out.status.success(), "an importer at once: {}", String::from_utf8_lossy(&out.stderr));
    }

    let report = |state: &str, store: &[String], q: &[&str]| -> Result<Value, String> {
        let mut args = vec!["report", "--format", "json"];
        if !q.contains(&"--since") {
            args.extend(["--since", SINCE, "--until", UNTIL]);
        }
        args.extend_from_slice(q);
        args.extend(store.iter().map(String::as_str));
        let text = pullgate(&dir.join(state), &args)?;
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    };
    let mut rows = 0;
    for q in QUERIES {
        let want = report("sqlite", &[], q)?;
        rows += want["rows"].as_array().map_or(0, Vec::len);
        for (name, store) in [("one ingester", &one), ("two ingesters at once", &two)] {
            let got = report("one", store, q)?;
            ensure!(got == want, "{q:?}, ClickHouse with {name}:\n{got}\n SQLite:\n{want}");
        }
    }
    let totals = report("sqlite", &[], &[])?["totals"].clone();
    for k in ["requests", "pulls", "version_checks", "downloads", "unique_origins", "unique_ips"] {
        ensure!(totals[k] == truth["totals"][k], "{k}: {} against the truth {}", totals[k], truth["totals"][k]);
    }
    ensure!(rows > 200, "the queries compared only {rows} rows");
    // The overlap was written twice and is kept once.
    let kept = ch.query("SELECT count() FROM two.requests FINAL")?;
    ensure!(
        totals["requests"].as_u64().map(|n| n.to_string()).as_deref() == Some(kept.trim()),
        "ClickHouse keeps {} requests, the log has {}",
        kept.trim(),
        totals["requests"]
    );

    // The dashboard's API over either store.
    let serve = |name: &str, store: &[String]| -> Result<(Server, std::net::SocketAddr), String> {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        let mut cmd = Command::new(PULLGATE);
        cmd.arg("--state-dir").arg(dir.join(name)).args(["serve", "--listen", &addr.to_string()]).args(store);
        let mut server = Server::start("pullgate serve", cmd, &dir.join(format!("serve-{name}.log")))?;
        wait_for_port(&mut server, addr)?;
        Ok((server, addr))
    };
    let (_a, on_sqlite) = serve("sqlite", &[])?;
    let (_b, on_clickhouse) = serve("two", &two)?;
    for path in [
        format!("/api/report?since={SINCE}&until={UNTIL}&by=client"),
        format!("/api/report?since={SINCE}&until={UNTIL}&granularity=day&repository=acme/app"),
    ] {
        let get = |addr| -> Result<Value, String> {
            let r = curl("GET", &format!("http://{addr}{path}"), &[])?;
            ensure!(r.status == 200, "{path}: {}", r.status);
            serde_json::from_slice(&r.body).map_err(|e| e.to_string())
        };
        let (a, b) = (get(on_sqlite)?, get(on_clickhouse)?);
        ensure!(a == b, "{path}: the dashboard over SQLite\n{a}\n over ClickHouse\n{b}");
    }

    // A reader's account (readonly = 2) reports from the store it cannot write.
    let reader = dir.join("reader-account");
    std::fs::write(&reader, format!("{READER}:{READER_PASSWORD}\n")).map_err(|e| e.to_string())?;
    let as_reader = ["--store".to_string(), ch.store("two"), "--store-account-file".to_string(), reader.to_str().unwrap().to_string()];
    ensure!(report("reader", &as_reader, &[])? == report("sqlite", &[], &[])?, "a reader's report differs");
    // ... and cannot create a store (the account really is read-only).
    let mut cannot = as_reader.clone();
    cannot[1] = ch.store("nothing");
    ensure!(report("reader", &cannot, &[]).is_err(), "a read-only account created a store");

    // A wrong password is said as the server's refusal, without the password.
    let bad = dir.join("bad-account");
    std::fs::write(&bad, format!("{USER}:not-{PASSWORD}\n")).map_err(|e| e.to_string())?;
    let out = Command::new(PULLGATE)
        .arg("--state-dir")
        .arg(dir.join("bad"))
        .args(["report", "--store", &ch.store("one"), "--store-account-file"])
        .arg(&bad)
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && err.contains(&ch.store("one").replace("clickhouse://", "http://")), "a wrong password: {err}");
    ensure!(!err.contains(PASSWORD), "the error shows the password: {err}");
    // An account in the address is refused before anything is sent.
    let url = format!("clickhouse://{USER}:{PASSWORD}@{}/one", ch.http);
    let out = Command::new(PULLGATE).arg("--state-dir").arg(dir.join("bad")).args(["report", "--store", &url]).output();
    let out = out.map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success() && err.contains("would be logged"), "an account in the address: {err}");
    eprintln!(
        "scale: {} queries, {rows} rows, the same from SQLite and from ClickHouse written by one and by two ingesters; totals {totals}",
        QUERIES.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Three gateway nodes (each its own nginx, sidecar and state, on its own
/// loopback address) share one Redis, one CloudWatch Logs group (moto, a
/// stream per node) and one ClickHouse store, which every node's sidecar
/// ingests the whole group into: three ingesters over the same events.
/// Real clients pull through all three; node 2 is killed (SIGKILL, nginx
/// and all) under traffic and comes back; a target change made on node 1
/// reaches all three through Redis with no reload; and the report counts
/// every request nginx logged on any node exactly once.
fn three_nodes(w: &crate::world::World) -> Result<(), String> {
    use super::lua::{all_serve, fingerprint, no_reload, routes};
    use crate::support::clients::{podman_pull, skopeo_copy};
    use crate::support::gateway::Gateway;
    use crate::support::redis::RedisServer;
    use crate::support::wait_until;
    use std::time::Duration;

    const GROUP: &str = "pullgate-three";
    let dir = w.dir("scale-three");
    let redis = RedisServer::start(&dir.join("redis"))?;
    let moto = crate::support::moto::Moto::start(&dir.join("moto"))?;
    let ch = ClickHouseServer::start(&dir.join("clickhouse"))?;
    let account = dir.join("store-account");
    std::fs::write(&account, format!("{USER}:{PASSWORD}\n")).map_err(|e| e.to_string())?;
    let store = ch.store("three");
    let extra = format!("  redis: {{url: \"redis://{}/0\", key: \"pg-three\"}}\n", redis.addr);
    let addrs: Vec<_> = (0..3).map(|_| Gateway::pick_addr()).collect();
    let launch = |i: usize| -> Result<Gateway, String> {
        let node = dir.join(format!("node{}", i + 1));
        let routes_path = node.join("routes.yaml");
        // Nodes 1 and 2 name the store by flags, node 3 in routes.yaml.
        let analytics = format!("analytics:\n  store: \"{store}\"\n  account: {{file: \"{}\"}}\n", account.display());
        let (flags, in_yaml) = if i < 2 { (true, String::new()) } else { (false, analytics) };
        if !routes_path.exists() {
            std::fs::create_dir_all(&node).map_err(|e| e.to_string())?;
            let yaml = Gateway::yaml(addrs[i], &extra, &routes(w, "redirect")) + &in_yaml;
            std::fs::write(&routes_path, yaml).map_err(|e| e.to_string())?;
        }
        let stream = format!("node-{}", i + 1);
        let mut args = vec!["--cloudwatch-group", GROUP, "--cloudwatch-stream", &stream, "--geoip-dir", "none"];
        if flags {
            args.extend(["--store", &store, "--store-account-file", account.to_str().unwrap()]);
        }
        Gateway::launch_with(&node.join("gw"), addrs[i], &routes_path, &args, |cmd| crate::support::moto::aws_env(cmd, &moto.endpoint()))
    };
    let mut nodes: Vec<Option<Gateway>> = (0..3).map(|i| launch(i).map(Some)).collect::<Result<_, _>>()?;
    let node = |nodes: &[Option<Gateway>], i: usize| -> Result<String, String> {
        nodes[i].as_ref().map(Gateway::host).ok_or_else(|| format!("node {} is down", i + 1))
    };

    // Real clients, one node each.
    let work = dir.join("clients");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    skopeo_copy(&format!("{}/acme/app:1.0", node(&nodes, 0)?), &work.join("s"), false)?;
    podman_pull(&format!("{}/acme/multi:1.0", node(&nodes, 1)?), &work.join("p"))?;
    let head = curl("HEAD", &format!("http://{}/v2/acme/app/manifests/1.0", node(&nodes, 2)?), &[super::lua::OCI_ACCEPT])?;
    ensure!(head.status == 200, "curl HEAD through node 3: {}", head.status);

    // Traffic on all three while node 2 dies and comes back.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let hosts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let (sent, answered) = std::thread::scope(|s| -> Result<(u32, u32), String> {
        let load = s.spawn(|| {
            let (mut sent, mut answered) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for h in &hosts {
                    sent += 1;
                    let ua = "User-Agent: containerd/1.7.24";
                    if curl("GET", &format!("http://{h}/v2/acme/app/manifests/1.0"), &[ua]).is_ok_and(|r| r.status == 307) {
                        answered += 1;
                    }
                }
            }
            (sent, answered)
        });
        std::thread::sleep(Duration::from_millis(1500));
        if let Some(gw) = nodes[1].take() {
            gw.crash();
        }
        std::thread::sleep(Duration::from_millis(1500));
        let back = launch(1);
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let counts = load.join().map_err(|_| "the load thread panicked".to_string())?;
        nodes[1] = Some(back?);
        Ok(counts)
    })?;
    ensure!(answered < sent && answered > 30, "node 2's loss shows in the traffic: {answered} of {sent} answered");
    let nodes: Vec<Gateway> = nodes.into_iter().map(|n| n.ok_or("a node is down")).collect::<Result<_, _>>()?;

    // A target change made on node 1 reaches all three without a reload.
    let before: Vec<_> = nodes.iter().map(fingerprint).collect::<Result<_, _>>()?;
    let path = dir.join("node1/routes.yaml");
    std::fs::write(path.with_extension("new"), Gateway::yaml(addrs[0], &extra, &routes(w, "proxy"))).map_err(|e| e.to_string())?;
    std::fs::rename(path.with_extension("new"), &path).map_err(|e| e.to_string())?;
    let took = all_serve(&nodes, 200, Duration::from_secs(3))?;
    no_reload(&nodes, &before, "after the target change")?;

    // Every request logged on any node, once, in the shared store.
    let logged: usize = nodes.iter().map(|n| n.log().map(|l| l.len())).sum::<Result<usize, String>>()?;
    let report = |args: &[&str]| -> Result<Value, String> {
        let mut all = vec!["report", "--since", "1h", "--format", "json", "--store", &store, "--store-account-file"];
        all.push(account.to_str().unwrap());
        all.extend_from_slice(args);
        serde_json::from_str(&pullgate(&dir.join("reader"), &all)?).map_err(|e| e.to_string())
    };
    let mut last = Value::Null;
    let waited = wait_until(Duration::from_secs(90), "every logged request in the shared store", || {
        last = report(&[])?["totals"].clone();
        let done = last["requests"].as_u64() == Some(logged as u64);
        if !done {
            // Each report is a process and a few ClickHouse queries: leave the ingesters room.
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(done)
    })
    .map_err(|e| {
        let stored = ch.query("SELECT count() FROM three.requests FINAL").unwrap_or_else(|e| e);
        format!(
            "{e}: the store's report has {last}, its requests table {} rows, the nodes logged {logged}\n{}",
            stored.trim(),
            what_nodes_say(&nodes)
        )
    })?;
    let r = report(&["--by", "client"])?;
    let pulls = |client: &str| -> u64 {
        r["rows"].as_array().into_iter().flatten().find(|row| row["client"] == client).and_then(|row| row["pulls"].as_u64()).unwrap_or(0)
    };
    ensure!(pulls("skopeo") == 1 && pulls("podman") == 1, "pulls by client: {r}");
    // Stays exact: three ingesters read the group again every 10 s.
    std::thread::sleep(Duration::from_secs(12));
    ensure!(report(&[])?["totals"]["requests"].as_u64() == Some(logged as u64), "a later ingest changed the count");
    let kept = ch.query("SELECT count() FROM three.requests FINAL")?;
    let written = ch.query("SELECT count() FROM three.requests")?;
    ensure!(kept.trim() == logged.to_string(), "ClickHouse keeps {} request ids, the nodes logged {logged}", kept.trim());
    // A pool of ingesters splitting the group by stream, at once, into another database.
    let pool = ch.store("pool");
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=3)
            .map(|n| {
                let (pool, account, moto) = (&pool, &account, &moto);
                let state = dir.join(format!("pool-{n}"));
                s.spawn(move || {
                    let mut cmd = Command::new(PULLGATE);
                    cmd.arg("--state-dir").arg(&state).args(["analytics", "ingest", "--cloudwatch-group", GROUP]);
                    cmd.args(["--cloudwatch-stream-prefix", &format!("node-{n}"), "--since", "1h", "--store", pool]);
                    cmd.arg("--store-account-file").arg(account);
                    crate::support::moto::aws_env(&mut cmd, &moto.endpoint());
                    cmd.output()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    for out in outs {
        let out = out.map_err(|_| "a pool ingester panicked".to_string())?.map_err(|e| e.to_string())?;
        ensure!(out.status.success(), "a pool ingester: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pooled: Value = serde_json::from_str(&pullgate(
        &dir.join("reader"),
        &["report", "--since", "1h", "--format", "json", "--store", &pool, "--store-account-file", account.to_str().unwrap()],
    )?)
    .map_err(|e| e.to_string())?;
    ensure!(
        pooled["totals"] == report(&[])?["totals"],
        "a pool split by stream: {}\n against the nodes' store {}",
        pooled["totals"],
        report(&[])?["totals"]
    );
    eprintln!(
        "three nodes: {logged} requests logged ({answered} of {sent} answered while node 2 was lost and back), each once in the store \
         ({} rows written by three ingesters, {} kept) {:?} after the traffic; a target change reached the nodes in {took:?}, no reload",
        written.trim(),
        kept.trim(),
        waited
    );
    Ok(())
}

/// For a failure's message: what each node's shipper counted and what its
/// sidecar warned of (the AWS SDK's notes on absent config files left out).
fn what_nodes_say(nodes: &[crate::support::gateway::Gateway]) -> String {
    let mut said = String::new();
    for (i, n) in nodes.iter().enumerate() {
        let metrics = curl("GET", &format!("http://{}/metrics", n.status_addr), &[]).map(|r| r.text()).unwrap_or_else(|e| e);
        let shipped: Vec<&str> = metrics
            .lines()
            .filter(|l| ["shipped", "dead_lettered", "retries", "lag_bytes", "ship_up"].iter().any(|k| l.contains(k)))
            .collect();
        let log = std::fs::read_to_string(n.dir.join("up.log")).unwrap_or_else(|e| e.to_string());
        let warned: Vec<&str> =
            log.lines().filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && !l.contains("aws_runtime::env_config")).collect();
        said += &format!("node {}: {}\n  {}\n", i + 1, shipped.join(", "), warned.join("\n  "));
    }
    said
}
