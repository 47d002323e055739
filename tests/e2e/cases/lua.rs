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

const OCI_ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

fn routes(w: &World, multi_mode: &str) -> String {
    format!(
        "  - {{name: app, image: acme/app, upstream: \"http://{a}/acme/app\"}}\n  - {{name: multi, image: acme/multi, upstream: \"http://{a}/acme/multi\", mode: {multi_mode}}}\n",
        a = w.anon.addr
    )
}

/// Status of a curl-as-curl request for acme/multi: 307 redirected, 200 proxied.
fn multi(gw: &Gateway) -> Result<u16, String> {
    Ok(curl("GET", &format!("http://{}/v2/acme/multi/manifests/1.0", gw.host()), &[OCI_ACCEPT])?.status)
}

/// nginx's master pid and worker pids, and the include as written.
fn fingerprint(gw: &Gateway) -> Result<(String, Vec<u32>, String), String> {
    let pid = std::fs::read_to_string(gw.dir.join("state/nginx/nginx.pid")).map_err(|e| e.to_string())?;
    let conf = std::fs::read_to_string(gw.dir.join("state/nginx/conf/pullgate.conf")).map_err(|e| e.to_string())?;
    Ok((pid, gw.workers(), conf))
}

fn all_serve(nodes: &[Gateway], want: u16, limit: Duration) -> Result<Vec<Duration>, String> {
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
    for (i, n) in nodes.iter().enumerate() {
        ensure!(fingerprint(n)? == before[i], "node {} reloaded (pid, workers or config changed)", i + 1);
    }
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
    // ... and the others once Redis is back (empty: node 1 publishes again).
    redis = Some(RedisServer::start_at(&redis_dir, redis_addr)?);
    let took = all_serve(&nodes, 307, Duration::from_secs(5))?;
    for (i, n) in nodes.iter().enumerate() {
        ensure!(fingerprint(n)?.0 == before[i].0, "node {} restarted nginx", i + 1);
    }
    eprintln!("three nodes converged {took:?} after Redis came back; no reload on any node");
    drop(redis);
    Ok(())
}
