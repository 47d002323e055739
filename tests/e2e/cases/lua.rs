//! Lua mode: several gateway nodes follow one routes.yaml through Redis,
//! target changes apply without a reload, and Redis going away changes nothing.

use std::time::{Duration, Instant};

use super::WithWorld;
use crate::ensure;
use crate::support::gateway::{curl, Gateway};
use crate::support::redis::RedisServer;
use crate::support::wait_until;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![("lua::three_nodes_follow_redis_without_reloads".to_string(), Box::new(three_nodes) as WithWorld)]
}

pub(super) const OCI_ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

pub(super) fn routes(w: &World, multi_mode: &str) -> String {
    format!(
        "  - {{name: app, image: acme/app, upstream: \"http://{a}/acme/app\"}}\n  - {{name: multi, image: acme/multi, upstream: \"http://{a}/acme/multi\", mode: {multi_mode}}}\n",
        a = w.anon.addr
    )
}

/// Status of a curl-as-curl request for acme/multi: 307 redirected, 200 proxied.
pub(super) fn multi(gw: &Gateway) -> Result<u16, String> {
    Ok(curl("GET", &format!("http://{}/v2/acme/multi/manifests/1.0", gw.host()), &[OCI_ACCEPT])?.status)
}

/// What a reload changes: nginx's worker pids (a reload starts new
/// workers; the master stays), the include as written, and the config
/// version the daemon reports serving; with the master pid, which a restart
/// would change.
pub(super) fn fingerprint(gw: &Gateway) -> Result<(String, Vec<u32>, String, String), String> {
    let pid = std::fs::read_to_string(gw.dir.join("state/nginx/nginx.pid")).map_err(|e| e.to_string())?;
    let conf = std::fs::read_to_string(gw.dir.join("state/nginx/conf/pullgate.conf")).map_err(|e| e.to_string())?;
    let workers = gw.workers();
    ensure!(!workers.is_empty(), "no nginx workers found for {}", gw.dir.display());
    let version = gw.status()?["serving_version"].as_str().unwrap_or("").to_string();
    ensure!(!version.is_empty(), "no serving version in {}'s status", gw.dir.display());
    Ok((pid, workers, conf, version))
}

/// No node reloaded or restarted since `before`, and none counts a reload.
pub(super) fn no_reload(nodes: &[Gateway], before: &[(String, Vec<u32>, String, String)], when: &str) -> Result<(), String> {
    for (i, n) in nodes.iter().enumerate() {
        let now = fingerprint(n)?;
        ensure!(now.0 == before[i].0, "{when}: node {} restarted nginx", i + 1);
        ensure!(now.1 == before[i].1, "{when}: node {} reloaded (workers {:?}, were {:?})", i + 1, now.1, before[i].1);
        ensure!(now.2 == before[i].2 && now.3 == before[i].3, "{when}: node {} serves another config", i + 1);
        let reloads = n.status()?["reloads_ok"].as_u64();
        ensure!(reloads == Some(0), "{when}: node {} counts {reloads:?} reloads", i + 1);
    }
    Ok(())
}

pub(super) fn all_serve(nodes: &[Gateway], want: u16, limit: Duration) -> Result<Vec<Duration>, String> {
    let start = Instant::now();
    let mut took = vec![None; nodes.len()];
    while start.elapsed() < limit && took.iter().any(Option::is_none) {
        for (i, n) in nodes.iter().enumerate() {
            if took[i].is_none() && multi(n)? == want {
                took[i] = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    took.into_iter().enumerate().map(|(i, t)| t.ok_or_else(|| format!("node {} did not serve {want} within {limit:?}", i + 1))).collect()
}

fn three_nodes(w: &World) -> Result<(), String> {
    let dir = w.dir("lua-nodes");
    let redis_dir = dir.join("redis");
    let mut redis = Some(RedisServer::start(&redis_dir)?);
    let redis_addr = redis.as_ref().unwrap().addr;
    let extra = format!("  redis: {{url: \"redis://{redis_addr}/0\", key: \"pg-test\"}}\n");
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let addr = Gateway::pick_addr();
        let node_dir = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
        let path = node_dir.join("routes.yaml");
        std::fs::write(&path, Gateway::yaml(addr, &extra, &routes(w, "redirect"))).map_err(|e| e.to_string())?;
        nodes.push(Gateway::launch(&node_dir.join("gw"), addr, &path, &[])?);
    }
    all_serve(&nodes, 307, Duration::from_secs(5))?;
    let before: Vec<_> = nodes.iter().map(fingerprint).collect::<Result<_, _>>()?;

    // A target change, made once, on node 1.
    let edit = |mode: &str| -> Result<Instant, String> {
        let n1 = &nodes[0];
        let path = n1.dir.parent().unwrap().join("routes.yaml");
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, Gateway::yaml(n1.addr, &extra, &routes(w, mode))).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok(Instant::now())
    };
    edit("proxy")?;
    let took = all_serve(&nodes, 200, Duration::from_secs(3))?;
    ensure!(took.iter().all(|t| *t < Duration::from_secs(1)), "the change took {took:?} to reach the nodes (bound: 1 s each)");
    eprintln!("a target change made on node 1 served on the three nodes after {took:?}");
    // ... with no reload anywhere: same master, same workers, same config.
    no_reload(&nodes, &before, "after the target change")?;
    wait_until(Duration::from_secs(2), "node 1 recording the publish", || Ok(nodes[0].status()?["tables_published"] == 1))?;
    let s = nodes[0].status()?;
    ensure!(s["reloads_ok"] == 0 && s["redis"]["ok"] == true, "node 1 status: {s}");
    let line = nodes[1].log()?.into_iter().rev().find(|l| l["uri"] == "/v2/acme/multi/manifests/1.0").ok_or("node 2 logged nothing")?;
    ensure!(
        line["route"] == "multi"
            && line["mode"] == "proxy"
            && line["upstream"].as_str().is_some_and(|u| u.contains("/v2/acme/multi/manifests/1.0")),
        "node 2 log: {line}"
    );

    // Redis goes away: every node keeps serving the routes it has.
    drop(redis.take());
    std::thread::sleep(Duration::from_millis(1500));
    for (i, n) in nodes.iter().enumerate() {
        ensure!(multi(n)? == 200, "node {} stopped serving without Redis", i + 1);
        let app = curl("GET", &format!("http://{}/v2/acme/app/manifests/1.0", n.host()), &["User-Agent: docker/20.10.24"])?;
        ensure!(app.status == 307, "node {}: app answered {} without Redis", i + 1, app.status);
    }
    // A change while Redis is down reaches node 1 through its own file ...
    edit("redirect")?;
    all_serve(&nodes[..1], 307, Duration::from_secs(3)).map_err(|e| format!("node 1 without Redis: {e}"))?;
    ensure!(multi(&nodes[1])? == 200 && multi(&nodes[2])? == 200, "nodes 2 and 3 changed without Redis");
    no_reload(&nodes, &before, "after the edit while Redis was down")?;
    // ... and the others once Redis is back (empty: node 1 publishes again).
    redis = Some(RedisServer::start_at(&redis_dir, redis_addr)?);
    let took = all_serve(&nodes, 307, Duration::from_secs(5))?;
    no_reload(&nodes, &before, "after converging")?;
    eprintln!("three nodes converged {took:?} after Redis came back; no reload on any node");
    // Positive control: a structural change (a new route) does reload node 1,
    // and the fingerprint shows it.
    let n1 = &nodes[0];
    let path = n1.dir.parent().unwrap().join("routes.yaml");
    let more =
        format!("{}  - {{name: extra, image: acme/extra, upstream: \"http://{}/acme/extra\"}}\n", routes(w, "redirect"), w.anon.addr);
    std::fs::write(&path, Gateway::yaml(n1.addr, &extra, &more)).map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(5), "node 1 reloading for a new route", || Ok(n1.status()?["reloads_ok"] == 1))?;
    let after = fingerprint(n1)?;
    ensure!(after.1 != before[0].1 && after.3 != before[0].3, "a reload left the workers and version unchanged: {:?}", after.1);
    drop(redis);
    Ok(())
}
