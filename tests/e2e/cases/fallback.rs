//! Fallback upstreams: a dead primary registry does not stop pulls.

use std::time::{Duration, Instant};

use super::WithWorld;
use crate::ensure;
use crate::support::clients::skopeo_copy;
use crate::support::gateway::Gateway;
use crate::support::oci;
use crate::support::registry::Registry;
use crate::support::wait_until;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    vec![("fallback::primary_dies_mid_series_and_returns".to_string(), Box::new(primary_dies) as WithWorld)]
}

fn route_upstream(gw: &Gateway) -> Result<String, String> {
    Ok(gw.status()?["route_upstreams"]["dual"].as_str().unwrap_or("").to_string())
}

fn primary_dies(w: &World) -> Result<(), String> {
    let dir = w.dir("fallback");
    // Registries of this test's own: it stops one.
    let primary_dir = dir.join("primary");
    let mut primary = Some(Registry::start("primary registry", "127.0.0.7", &primary_dir, None)?);
    let primary_addr = primary.as_ref().unwrap().addr;
    let mirror = Registry::start("mirror registry", "127.0.0.8", &dir.join("mirror"), None)?;
    // The same image on both, as dual publishing does.
    let pushed = oci::push_simple(&dir.join("layouts-a"), &primary_addr.to_string(), "dual/app", "1.0", 4242)?;
    let mirrored = oci::push_simple(&dir.join("layouts-b"), &mirror.addr.to_string(), "dual/app", "1.0", 4242)?;
    ensure!(pushed.digest == mirrored.digest, "the two registries hold different images");

    let routes = format!(
        "  - name: dual\n    image: dual/app\n    upstream: http://{primary_addr}/dual/app\n    fallback: [\"http://{}/dual/app\"]\n    auth: none\n",
        mirror.addr
    );
    let addr = Gateway::pick_addr();
    let path = dir.join("routes.yaml");
    std::fs::write(&path, Gateway::yaml(addr, "", &routes)).map_err(|e| e.to_string())?;
    let gw = Gateway::launch(&dir.join("gw"), addr, &path, &["--health-interval-ms", "200", "--health-timeout-ms", "500"])?;
    // A second gateway whose health checks never come round during the test:
    // its pulls after the kill can only succeed through nginx's own failover.
    let addr2 = Gateway::pick_addr();
    let path2 = dir.join("routes-static.yaml");
    std::fs::write(&path2, Gateway::yaml(addr2, "", &routes)).map_err(|e| e.to_string())?;
    let static_gw = Gateway::launch(&dir.join("gw-static"), addr2, &path2, &["--health-interval-ms", "600000"])?;
    let primary_origin = format!("http://{primary_addr}");
    let mirror_origin = format!("http://{}", mirror.addr);
    ensure!(route_upstream(&gw)? == primary_origin, "not served from the primary at start: {}", gw.status()?);

    let mut pulls = 0;
    let mut pull_from = |g: &Gateway, phase: &str| -> Result<(), String> {
        pulls += 1;
        let reference = format!("{}/dual/app:1.0", g.host());
        let blobs =
            skopeo_copy(&reference, &dir.join(format!("copy-{pulls}")), false).map_err(|e| format!("pull {pulls} ({phase}): {e}"))?;
        ensure!(blobs.contains(&pushed.layers()[0]), "pull {pulls} ({phase}) lacks the layer");
        Ok(())
    };
    for _ in 0..5 {
        pull_from(&gw, "primary up")?;
        pull_from(&static_gw, "primary up")?;
    }
    // Kill the primary in the middle of the series; pulls go on without a gap.
    let killed_at = Instant::now();
    drop(primary.take());
    for _ in 0..5 {
        pull_from(&gw, "primary down")?;
        pull_from(&static_gw, "primary down, no health check")?;
    }
    let nginx_log = std::fs::read_to_string(dir.join("gw-static/up.log")).unwrap_or_default();
    ensure!(
        nginx_log.contains("Connection refused) while connecting to upstream") && route_upstream(&static_gw)? == primary_origin,
        "the static gateway did not fail over by itself (status {})",
        static_gw.status()?
    );
    let switched = wait_until(Duration::from_secs(5), "switch to the mirror", || Ok(route_upstream(&gw)? == mirror_origin))?;
    for _ in 0..5 {
        pull_from(&gw, "served from the mirror")?;
    }
    let down_for = killed_at.elapsed();
    // The primary comes back with its data: traffic returns to it.
    primary = Some(Registry::start_at("primary registry", primary_addr, &primary_dir, None)?);
    let back = wait_until(Duration::from_secs(5), "switch back to the primary", || Ok(route_upstream(&gw)? == primary_origin))?;
    let log_mark = gw.log()?.len();
    for _ in 0..5 {
        pull_from(&gw, "primary back")?;
    }
    let after: Vec<_> =
        gw.log()?.into_iter().skip(log_mark).filter(|l| l["uri"].as_str().is_some_and(|u| u.contains("/manifests/"))).collect();
    ensure!(
        !after.is_empty() && after.iter().all(|l| l["upstream"].as_str().is_some_and(|u| u.starts_with(&primary_origin))),
        "pulls after the primary came back did not go to it: {after:?}"
    );
    let metrics = crate::support::gateway::curl("GET", &format!("http://{}/metrics", gw.status_addr), &[])?.text();
    ensure!(metrics.contains(&format!("pullgate_upstream_healthy{{upstream=\"{primary_origin}\"}} 1")), "metrics:\n{metrics}");
    eprintln!(
        "{pulls} pulls, none failed; primary down {down_for:?}, switched to the mirror after {switched:?}, back {back:?} after restart"
    );
    drop(primary);
    Ok(())
}
