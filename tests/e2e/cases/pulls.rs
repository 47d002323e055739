//! Real clients pull through the gateway; bytes and access log are checked.

use serde_json::Value;

use super::WithWorld;
use crate::ensure;
use crate::support::clients::{podman_pull, skopeo_copy};
use crate::support::gateway::Gateway;
use crate::world::{World, CLIENTS};

/// How a scenario names the image at the gateway and where it really lives.
#[derive(Clone, Copy)]
enum Scenario {
    /// Anonymous registry, same names.
    Anon,
    /// Token registry, same names: the upstream's challenge passes through.
    TokenPassThrough,
    /// Renamed onto the token registry: the gateway's challenge and token endpoint.
    Renamed,
    /// A two-platform index, renamed onto the token registry.
    MultiArch,
    /// Anonymous registry, pulled by digest.
    ByDigest,
    /// Token registry, same names, every client redirected: which clients cope.
    ForcedRedirect,
}

impl Scenario {
    const ALL: [Scenario; 6] =
        [Scenario::Anon, Scenario::TokenPassThrough, Scenario::Renamed, Scenario::MultiArch, Scenario::ByDigest, Scenario::ForcedRedirect];

    fn name(self) -> &'static str {
        match self {
            Scenario::Anon => "anonymous",
            Scenario::TokenPassThrough => "token-pass-through",
            Scenario::Renamed => "renamed-token-flow",
            Scenario::MultiArch => "multi-arch-index",
            Scenario::ByDigest => "by-digest",
            Scenario::ForcedRedirect => "forced-redirect",
        }
    }

    /// (routes, gateway repository, pushed image key, route name)
    fn setup(self, w: &World, client: &str) -> (String, String, String, &'static str) {
        match self {
            Scenario::Anon | Scenario::ByDigest => {
                (w.routes_anon("auto"), format!("acme/{client}"), format!("anon/acme/{client}:1.0"), "acme")
            }
            Scenario::TokenPassThrough => (w.routes_authed(), format!("acme/{client}-t"), format!("authed/acme/{client}-t:1.0"), "acme-t"),
            Scenario::ForcedRedirect => (
                w.routes_authed().replace("\n    upstream:", "\n    mode: redirect\n    upstream:"),
                format!("acme/{client}-t"),
                format!("authed/acme/{client}-t:1.0"),
                "acme-t",
            ),
            Scenario::Renamed => (w.routes_renamed(), format!("apps/{client}-r"), format!("authed/acme-org/{client}-r:1.0"), "renamed"),
            Scenario::MultiArch => (w.routes_renamed(), format!("apps/{client}-m"), format!("authed/acme-org/{client}-m:1.0"), "renamed"),
        }
    }
}

/// The mode the default user-agent list gives each client.
fn expected_mode(client: &str, sc: Scenario) -> &'static str {
    match sc {
        Scenario::ForcedRedirect => "redirect",
        // The upstream needs a token the gateway handed out: a redirect would lose it.
        Scenario::Renamed | Scenario::MultiArch => "proxy",
        _ if keeps_auth_across_redirect(client) => "redirect",
        _ => "proxy",
    }
}

/// Which clients authenticate at the upstream after a cross-host redirect
/// (the default `redirect_user_agents` list is this, as user-agent patterns).
fn keeps_auth_across_redirect(client: &str) -> bool {
    matches!(client, "docker" | "ctr")
}

pub fn tests() -> Vec<(String, WithWorld)> {
    let mut v: Vec<(String, WithWorld)> = Vec::new();
    for client in CLIENTS {
        for sc in Scenario::ALL {
            v.push((format!("pull::{client}::{}", sc.name()), Box::new(move |w: &World| pull_case(w, client, sc))));
        }
    }
    v
}

fn pull_case(w: &World, client: &str, sc: Scenario) -> Result<(), String> {
    let test = format!("{client}-{}", sc.name());
    let (routes, repo, key, route) = sc.setup(w, client);
    let gw = w.gateway(&test, &routes)?;
    let outcome = fetch(w, &gw, client, sc, &repo, &key, &test);
    if matches!(sc, Scenario::ForcedRedirect) && !keeps_auth_across_redirect(client) {
        // Evidence for the default list: the gateway redirected this client,
        // and the client then lost its token at the upstream.
        return match outcome {
            Err(e) if e.contains("unauthorized") => {
                let lines = gw.log_for(&format!("/v2/{repo}/manifests/"))?;
                let first = lines.first().ok_or_else(|| format!("{client} failed before asking the gateway for a manifest: {e}"))?;
                ensure!(
                    first["status"] == 307 && first["mode"] == "redirect" && first["route"] == route,
                    "{client} failed ({e}), but not after a redirect: the gateway answered {first}"
                );
                Ok(())
            }
            Err(e) => Err(format!("{client} failed differently than by losing its token: {e}")),
            Ok(_) => Err(format!("{client} now keeps auth across redirects: add it to DEFAULT_REDIRECT_USER_AGENTS")),
        };
    }
    let pushed = w.image(&key);
    let digest = outcome?;
    ensure!(digest == pushed.digest, "{client} got {digest}, pushed {}", pushed.digest);
    check_log(&gw, &repo, route, expected_mode(client, sc))?;
    if matches!(sc, Scenario::Renamed | Scenario::MultiArch) {
        let upstream_scope = format!("repository:{}:pull", pushed.repo);
        ensure!(w.token.scopes_seen().contains(&upstream_scope), "the token server never saw {upstream_scope}");
    }
    Ok(())
}

/// Pull `repo` through `gw` with `client`; the digest it got.
fn fetch(w: &World, gw: &Gateway, client: &str, sc: Scenario, repo: &str, key: &str, test: &str) -> Result<String, String> {
    let pushed = w.image(key);
    let reference = match sc {
        Scenario::ByDigest => format!("{}/{repo}@{}", gw.host(), pushed.digest),
        _ => format!("{}/{repo}:1.0", gw.host()),
    };
    let dir = w.work.join("t").join(test);
    Ok(match client {
        "skopeo" => {
            let all = matches!(sc, Scenario::MultiArch);
            let blobs = skopeo_copy(&reference, &dir.join("copy"), all)?;
            for (_, _, layers) in if all { &pushed.platforms[..] } else { &pushed.platforms[..1] } {
                for l in layers {
                    ensure!(blobs.contains(l), "layer {l} missing from skopeo's copy ({blobs:?})");
                }
            }
            let manifest = std::fs::read(dir.join("copy/manifest.json")).map_err(|e| e.to_string())?;
            format!("sha256:{}", crate::support::clients::sha256_hex(&manifest))
        }
        "podman" => podman_pull(&reference, &dir.join("p"))?,
        "ctr" => w.engine.as_ref().map_err(|e| format!("no container engine: {e}"))?.ctr_pull(test, &reference)?,
        "docker" => w.engine.as_ref().map_err(|e| format!("no container engine: {e}"))?.docker_pull(&reference)?,
        _ => unreachable!(),
    })
}

/// Manifest requests for `repo` were logged with the route, the mode and a 2xx/3xx status.
fn check_log(gw: &Gateway, repo: &str, route: &str, mode: &str) -> Result<(), String> {
    let lines = gw.log_for(&format!("/v2/{repo}/manifests/"))?;
    let served: Vec<&Value> = lines.iter().filter(|l| l["status"].as_u64().is_some_and(|s| (200..400).contains(&s))).collect();
    ensure!(!served.is_empty(), "no served manifest request for {repo} in the access log: {lines:?}");
    for l in served {
        ensure!(l["route"] == route, "route {} != {route}: {l}", l["route"]);
        ensure!(l["mode"] == mode, "mode {} != {mode}: {l}", l["mode"]);
        let upstream = l["upstream"].as_str().unwrap_or("");
        ensure!(upstream.starts_with("http://127.0.0."), "upstream not logged: {l}");
    }
    Ok(())
}
