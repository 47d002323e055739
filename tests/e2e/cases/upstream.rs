//! The gateway's own account on an upstream (`credentials`): a private
//! repository on the tests' token-auth registry, which the anonymous path
//! cannot read, pulled through the gateway by skopeo with the account taken
//! from a file and from the environment. The secret is in no log, no
//! status, and the rendered include is readable by its owner only.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::cases::WithWorld;
use crate::ensure;
use crate::support::clients::skopeo_copy;
use crate::support::gateway::{curl, Gateway};
use crate::support::oci::Layout;
use crate::support::plain_nginx::PlainNginx;
use crate::support::process::run;
use crate::support::token_server::{self, PRIVATE_TOKEN, PRIVATE_USER};
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    let private: WithWorld = Box::new(private_repository_through_the_gateways_account);
    let limited: WithWorld = Box::new(rate_limits_reach_the_client);
    vec![
        ("upstream::private_repository_through_the_gateways_account".to_string(), private),
        ("upstream::rate_limits_reach_the_client".to_string(), limited),
    ]
}

/// An upstream over its limit: its 429 and `ratelimit-*` headers reach a
/// client of a proxied route unchanged (no fallback, no rewrite).
fn rate_limits_reach_the_client(w: &World) -> Result<(), String> {
    let dir = w.dir("upstream-limited");
    let limited = PlainNginx::start(
        &dir.join("upstream"),
        "127.0.0.1",
        "    location /v2/ {\n\
         \x20     add_header ratelimit-limit \"100;w=21600\" always;\n\
         \x20     add_header ratelimit-remaining \"0;w=21600\" always;\n\
         \x20     add_header Retry-After 3600 always;\n\
         \x20     return 429 '{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"pull rate limit\"}]}';\n\
         \x20   }\n",
    )?;
    let routes = format!(
        "  - name: limited\n    image: limited/app\n    upstream: http://{}/limited/app\n    auth: none\n    mode: proxy\n",
        limited.addr
    );
    // Shipping on: the shipper counts the upstream's 429s.
    let addr = Gateway::pick_addr();
    let routes_path = dir.join("routes.yaml");
    std::fs::write(&routes_path, Gateway::yaml(addr, "", &routes)).map_err(|e| e.to_string())?;
    let gw = Gateway::launch_with(&dir.join("gw"), addr, &routes_path, &[], |_| {})?;
    let r = curl(
        "GET",
        &format!("http://{}/v2/limited/app/manifests/1.0", gw.host()),
        &["Accept: application/vnd.oci.image.manifest.v1+json"],
    )?;
    ensure!(r.status == 429, "the client got {} for the upstream's 429: {}", r.status, r.text());
    ensure!(
        r.header("ratelimit-limit") == Some("100;w=21600")
            && r.header("ratelimit-remaining") == Some("0;w=21600")
            && r.header("retry-after") == Some("3600"),
        "rate-limit headers: {:?}",
        r.headers
    );
    ensure!(r.text().contains("TOOMANYREQUESTS"), "body: {}", r.text());
    let logged = gw.log_for("/v2/limited/app/manifests/1.0")?;
    ensure!(logged.iter().any(|l| l["status"] == 429 && l["mode"] == "proxy" && l["route"] == "limited"), "logged: {logged:?}");
    let metrics = || -> Result<String, String> { Ok(curl("GET", &format!("http://{}/metrics", gw.status_addr), &[])?.text()) };
    crate::support::wait_until(std::time::Duration::from_secs(10), "the 429 counted in /metrics", || {
        Ok(metrics()?.contains("pullgate_upstream_throttled_total{route=\"limited\"} 1"))
    })?;
    Ok(())
}

fn private_repository_through_the_gateways_account(w: &World) -> Result<(), String> {
    let dir = w.dir("upstream-credentials");
    // A private image, pushed with the account.
    let layout = Layout::new(dir.join("layout"))?;
    let layer = layout.layer("secret.bin", 4711, 4096);
    let manifest = layout.manifest("amd64", &[layer]);
    layout.tag("1.0", &manifest);
    let account = format!("{PRIVATE_USER}:{PRIVATE_TOKEN}");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", "--dest-creds", &account])
        .arg(format!("oci:{}:1.0", layout.dir.display()))
        .arg(format!("docker://{}/private/app:1.0", w.authed.addr)))?;

    let route = |extra: &str| {
        format!(
            "  - name: private\n    image: private/app\n    upstream: http://{}/private/app\n    auth:\n      realm: {}\n      service: {}\n{extra}",
            w.authed.addr,
            w.token.realm(),
            token_server::SERVICE
        )
    };
    // Without the account: the registry refuses the anonymous token.
    let anonymous = w.gateway("upstream-anonymous", &route(""))?;
    let refused = skopeo_copy(&format!("{}/private/app:1.0", anonymous.host()), &dir.join("anonymous"), false);
    ensure!(refused.is_err(), "the private repository was readable anonymously through the gateway");

    // With the account from a file (mode 0600, as a secret is kept).
    let secret = dir.join("registry-account");
    std::fs::write(&secret, format!("{account}\n")).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    let from_file = w.gateway("upstream-file", &route(&format!("    credentials: {{file: {}}}\n", secret.display())))?;
    let layers = skopeo_copy(&format!("{}/private/app:1.0", from_file.host()), &dir.join("from-file"), false)?;
    ensure!(!layers.is_empty(), "no layer pulled");
    let include = from_file.dir.join("state/nginx/conf/pullgate.conf");
    let mode = std::fs::metadata(&include).map_err(|e| e.to_string())?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the include holding the account is mode {mode:o}, not 600");

    // With the account from the sidecar's environment.
    let addr = Gateway::pick_addr();
    let routes = dir.join("routes-env.yaml");
    std::fs::write(&routes, Gateway::yaml(addr, "", &route("    credentials: {env: PULLGATE_TEST_REGISTRY_ACCOUNT}\n")))
        .map_err(|e| e.to_string())?;
    // Not set: the gateway does not start, and says which variable is missing.
    ensure!(Gateway::launch(&dir.join("env-unset"), addr, &routes, &[]).is_err(), "started without its account");
    let said = std::fs::read_to_string(dir.join("env-unset/up.log")).map_err(|e| e.to_string())?;
    ensure!(said.contains("PULLGATE_TEST_REGISTRY_ACCOUNT is not set"), "without the variable it said: {said}");
    let from_env = Gateway::launch_with(&dir.join("env-gw"), addr, &routes, &["--no-ship"], |cmd| {
        cmd.env("PULLGATE_TEST_REGISTRY_ACCOUNT", &account);
    })?;
    skopeo_copy(&format!("{}/private/app:1.0", from_env.host()), &dir.join("from-env"), false)?;

    // The secret is in nothing the gateway logs or shows.
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&account)
    };
    for gw in [&from_file, &from_env] {
        let mut said = std::fs::read_to_string(gw.access_log()).map_err(|e| e.to_string())?;
        said.push_str(&std::fs::read_to_string(gw.dir.join("up.log")).unwrap_or_default());
        said.push_str(&gw.status()?.to_string());
        ensure!(!said.contains(PRIVATE_TOKEN) && !said.contains(&encoded), "the account's secret is in a log or the status");
    }
    Ok(())
}
