//! The deployment kit (compose/) on the machine's Docker engine, driven by
//! docker-compose 1.29 as users drive Compose: images built from a local
//! Debian base (debootstrap, `docker import`), the kit brought up with its
//! own compose file plus a test-only upstream registry, a real `docker pull`
//! over TLS through the published port, the report and the dashboard in the
//! kit, live edits, the sidecar restarted and killed under load, and
//! `down -v`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cases::Standalone;
use crate::ensure;
use crate::support::gateway::curl;
use crate::support::load::Load;
use crate::support::moto::{messages, Moto};
use crate::support::process::{free_port, require, run};
use crate::support::{oci, wait_until};

pub fn tests() -> Vec<(String, Standalone)> {
    vec![("compose::kit_serves_pulls_tls_edits_and_restarts".into(), kit_serves_pulls_tls_edits_and_restarts as Standalone)]
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

const BASE: &str = "pullgate-test/debian:bookworm-slim";
const IMAGE: &str = "pullgate-test/pullgate:e2e";
const REDIS_IMAGE: &str = "pullgate-test/redis:e2e";
const REGISTRY_IMAGE: &str = "pullgate-test/registry:e2e";

fn text(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The base image and the kit's images; cached by the engine between runs
/// (the layers before the binary's do not change).
fn build_images(root: &Path) -> Result<(), String> {
    run(Command::new(root.join("compose/base-image")).arg(BASE))?;
    // The binary these tests run, as compose/build would put a release one.
    let dist = root.join("compose/dist/pullgate");
    std::fs::create_dir_all(dist.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::copy(crate::support::gateway::PULLGATE, &dist).map_err(|e| format!("copying the binary: {e}"))?;
    run(Command::new("strip").arg("--strip-debug").arg(&dist))?;
    run(Command::new("docker-compose")
        .current_dir(root.join("compose"))
        .args(["-f", "docker-compose.yml", "build", "--quiet"])
        .env("BASE_IMAGE", BASE)
        .env("PULLGATE_IMAGE", IMAGE)
        .env("PULLGATE_REDIS_IMAGE", REDIS_IMAGE))?;
    // The images a new binary replaced: a run leaves no 60 MB layer behind.
    for title in ["pullgate", "pullgate-redis"] {
        let _ = Command::new("docker")
            .args(["image", "prune", "--force", "--filter"])
            .arg(format!("label=org.opencontainers.image.title={title}"))
            .output();
    }
    run(Command::new("docker")
        .args(["build", "--quiet", "-t", REGISTRY_IMAGE, "--build-arg"])
        .arg(format!("BASE_IMAGE={BASE}"))
        .arg("-f")
        .arg(root.join("tests/e2e/compose/registry.Dockerfile"))
        .arg(root.join("tests/e2e/compose")))?;
    Ok(())
}

/// One project of the kit; `down -v` when dropped.
struct Kit {
    root: PathBuf,
    project: String,
    env: Vec<(&'static str, String)>,
    certs_d: PathBuf,
}

impl Kit {
    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(self.root.join("compose"))
            .args(["--no-ansi", "-p", &self.project, "-f", "docker-compose.yml", "-f"])
            .arg(self.root.join("tests/e2e/compose/test.yml"));
        // Only what the test sets: a variable of the caller's shell would override .env.
        cmd.env_clear();
        for keep in ["PATH", "HOME", "DOCKER_HOST"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (*k, v)));
        cmd
    }

    fn exec(&self, service: &str, args: &[&str]) -> Result<String, String> {
        run(self.compose().args(["exec", "-T", service]).args(args)).map(text)
    }

    /// Every container's health (or state, for one without a healthcheck).
    fn health(&self) -> Result<Vec<(String, String)>, String> {
        let ids = text(run(self.compose().args(["ps", "-q"]))?);
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let format = "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}";
        let out = text(run(Command::new("docker").args(["inspect", "--format", format]).args(&ids))?);
        Ok(out.lines().filter_map(|l| l.split_once(' ')).map(|(n, s)| (n.to_string(), s.to_string())).collect())
    }

    /// What `docker compose up --wait` does in Compose v2: every healthcheck passes.
    fn wait_healthy(&self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = Vec::new();
        while start.elapsed() < limit {
            last = self.health()?;
            if last.len() == 6 && last.iter().all(|(_, s)| s == "healthy" || s == "running") {
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs = self.compose().args(["logs", "--tail", "30"]).output().map(text).unwrap_or_default();
        Err(format!("the kit was not healthy within {limit:?}: {last:?}\n{logs}"))
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        if std::env::var_os("PULLGATE_TEST_KEEP_KIT").is_some() {
            eprintln!("compose: left running for a look: docker-compose -p {} ...", self.project);
            return;
        }
        let _ = self.compose().args(["down", "-v", "--remove-orphans", "--timeout", "5"]).output();
        let _ = std::fs::remove_dir_all(&self.certs_d);
    }
}

/// A CA, and a certificate for `ip` signed by it (openssl, as a user would).
fn make_certs(dir: &Path, ip: &str) -> Result<(), String> {
    let ssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args)).map(|_| ());
    ssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pullgate test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ])?;
    ssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={ip}"), "-keyout", "gateway.key", "-out", "gateway.csr"])?;
    std::fs::write(dir.join("san.ext"), format!("subjectAltName=IP:{ip},DNS:localhost\n")).map_err(|e| e.to_string())?;
    ssl(&[
        "x509",
        "-req",
        "-in",
        "gateway.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "gateway.crt",
    ])?;
    // The kit's user (uid 10001) reads the key (docs/compose.md); a test key may be world-readable.
    run(Command::new("chmod").arg("0644").arg(dir.join("gateway.key")))?;
    Ok(())
}

fn routes(ip: &str, https_port: u16, files_version: &str, moved_version: &str) -> String {
    format!(
        r#"version: 1
gateway:
  listen: ["8080"]
  tls_listen: ["8443"]
  access_log: /var/log/pullgate/access.log
  acme_webroot: /var/www/acme
  redis:
    url: redis://redis:6379
  hosts:
    - name: "{ip}"
      public_url: "https://{ip}:{https_port}"
      tls:
        cert: /etc/pullgate/tls/gateway.crt
        key: /etc/pullgate/tls/gateway.key
        redirect_http: true
routes:
  - name: tiny
    host: "{ip}"
    image: test/tiny
    upstream: http://upstream:5000/test/tiny
    mode: proxy
  - name: files
    kind: file
    path: /dl/{{file}}
    upstream: https://files.example.org/{files_version}/{{file}}
  - name: moved
    host: load
    image: test/moved
    upstream: http://registry-a.example:5000/test/moved-{moved_version}
    mode: redirect
    auth: none
"#
    )
}

/// Replace a file as editors do: write beside it, then rename over it.
fn replace(path: &Path, contents: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| e.to_string())
}

fn location(url: &str) -> Result<Option<String>, String> {
    Ok(curl("GET", url, &["Host: load"])?.header("location").map(str::to_string))
}

/// A renamed image's manifest, with a token as a client has after the
/// gateway's challenge (the upstream, not the gateway, checks it).
fn manifest_location(url: &str) -> Result<Option<String>, String> {
    Ok(curl("GET", url, &["Host: load", "Authorization: Bearer test", "User-Agent: docker/28.2.2"])?.header("location").map(str::to_string))
}

/// Request ids nginx logged, and the ids the sink holds.
fn logged_and_shipped(kit: &Kit) -> Result<(Vec<String>, std::collections::HashSet<String>), String> {
    let log = kit.exec("nginx", &["sh", "-c", "cat /var/log/pullgate/access.log.1 /var/log/pullgate/access.log 2>/dev/null || true"])?;
    let logged =
        log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| v["id"].as_str().map(String::from)).collect();
    let sink = kit.exec("sidecar", &["sh", "-c", "cat /var/lib/pullgate/events/* 2>/dev/null || true"])?;
    let shipped =
        sink.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| v["id"].as_str().map(String::from)).collect();
    Ok((logged, shipped))
}

fn kit_serves_pulls_tls_edits_and_restarts() -> Result<(), String> {
    for (tool, package) in
        [("docker", "docker.io"), ("docker-compose", "docker-compose"), ("debootstrap", "debootstrap"), ("openssl", "openssl")]
    {
        require(tool, package)?;
    }
    run(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]))
        .map_err(|e| format!("the compose kit needs a running Docker engine (systemctl start docker): {e}"))?;
    let root = repo_root();
    let started = Instant::now();
    build_images(&root)?;
    eprintln!("compose: images ready in {:.1?}", started.elapsed());

    // The engine reaches the published ports on the default bridge's
    // address (docker0): not loopback, so TLS is required, not assumed.
    let docker0 = text(run(Command::new("ip").args(["-4", "-o", "addr", "show", "dev", "docker0"]))?);
    let ip = docker0.split_whitespace().skip_while(|w| *w != "inet").nth(1).and_then(|a| a.split('/').next()).unwrap_or("").to_string();
    ensure!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "no address on docker0: {docker0:?}");
    let (http_port, https_port, dash_port, up_port) =
        (free_port("0.0.0.0"), free_port("0.0.0.0"), free_port("127.0.0.1"), free_port("127.0.0.1"));
    let work = std::env::temp_dir().join(format!("pg-compose-{}", std::process::id()));
    let (config_dir, tls_dir) = (work.join("config"), work.join("tls"));
    for d in [&config_dir, &tls_dir] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    run(Command::new("chmod").args(["0755"]).arg(&work).arg(&config_dir).arg(&tls_dir))?;
    make_certs(&tls_dir, &ip)?;
    let routes_file = config_dir.join("routes.yaml");
    std::fs::write(&routes_file, routes(&ip, https_port, "v1", "v1")).map_err(|e| e.to_string())?;

    // Only .env.example copied: the shipped files are a valid project.
    let env_file = work.join("env");
    std::fs::copy(root.join("compose/.env.example"), &env_file).map_err(|e| e.to_string())?;
    run(Command::new("docker-compose").current_dir(root.join("compose")).arg("--env-file").arg(&env_file).args([
        "-f",
        "docker-compose.yml",
        "config",
        "-q",
    ]))
    .map_err(|e| format!("docker-compose config with .env.example: {e}"))?;

    let certs_d = PathBuf::from(format!("/etc/docker/certs.d/{ip}:{https_port}"));
    std::fs::create_dir_all(&certs_d).map_err(|e| e.to_string())?;
    std::fs::copy(tls_dir.join("ca.crt"), certs_d.join("ca.crt")).map_err(|e| e.to_string())?;
    let mut kit = Kit {
        root: root.clone(),
        project: format!("pgtest{}", std::process::id()),
        env: vec![
            ("PULLGATE_IMAGE", IMAGE.into()),
            ("PULLGATE_REDIS_IMAGE", REDIS_IMAGE.into()),
            ("PULLGATE_TEST_REGISTRY_IMAGE", REGISTRY_IMAGE.into()),
            ("PULLGATE_HTTP_PORT", http_port.to_string()),
            ("PULLGATE_HTTPS_PORT", https_port.to_string()),
            ("PULLGATE_DASHBOARD_PORT", format!("127.0.0.1:{dash_port}")),
            ("PULLGATE_TEST_UPSTREAM_PORT", up_port.to_string()),
            ("PULLGATE_CONFIG_DIR", config_dir.display().to_string()),
            ("PULLGATE_TLS_DIR", tls_dir.display().to_string()),
            // Small, so that the test sees the sidecar rotate under load.
            ("PULLGATE_ROTATE_LOG_BYTES", "200000".into()),
        ],
        certs_d,
    };

    // Up, detached, then what `up --wait` would wait for.
    let up = Instant::now();
    run(kit.compose().args(["up", "-d", "--no-build"]))?;
    let detached = up.elapsed();
    let files = format!("http://127.0.0.1:{http_port}/dl/app.tar.gz");
    wait_until(Duration::from_secs(60), "the first redirect", || Ok(location(&files).ok().flatten().is_some()))?;
    let serving = up.elapsed();
    kit.wait_healthy(Duration::from_secs(120))?;
    eprintln!(
        "compose: `up -d` returned after {detached:.1?}; serving after {serving:.1?}; every healthcheck passing after {:.1?}",
        up.elapsed()
    );
    for image in [IMAGE, REDIS_IMAGE] {
        let size = text(run(Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", image]))?);
        eprintln!("compose: image {image}: {:.1} MB", size.trim().parse::<f64>().unwrap_or(0.0) / 1e6);
    }
    // Non-root where the service allows it: all of them.
    for service in ["nginx", "sidecar", "dashboard", "redis"] {
        let uid = kit.exec(service, &["id", "-u"])?;
        ensure!(uid.trim() != "0", "{service} runs as root");
    }

    // The upstream, loaded with a test image.
    let upstream = format!("127.0.0.1:{up_port}");
    wait_until(Duration::from_secs(20), "the upstream registry", || {
        Ok(curl("GET", &format!("http://{upstream}/v2/"), &[]).is_ok_and(|r| r.status == 200))
    })?;
    let pushed = oci::push_simple(&work, &upstream, "test/tiny", "1", 7)?;

    // A real docker pull over TLS, the CA trusted through certs.d only.
    let reference = format!("{ip}:{https_port}/test/tiny:1");
    run(Command::new("docker").args(["pull", "--quiet", &reference]))?;
    let digests =
        text(run(Command::new("docker").args(["image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", &reference]))?);
    let _ = run(Command::new("docker").args(["rmi", "--force", &reference]));
    ensure!(digests.contains(&pushed.digest), "docker pulled {digests:?}, not {}", pushed.digest);

    // Plain HTTP on the TLS host: a redirect to HTTPS, but for the ACME challenge.
    let r = curl("GET", &format!("http://{ip}:{http_port}/v2/test/tiny/manifests/1?x=1"), &[])?;
    let want = format!("https://{ip}:{https_port}/v2/test/tiny/manifests/1?x=1");
    ensure!(
        r.status == 301 && r.header("location") == Some(want.as_str()),
        "plain HTTP: {} {:?}, want 301 to {want}",
        r.status,
        r.header("location")
    );
    run(Command::new("docker")
        .args(["run", "--rm", "-v", &format!("{}_acme:/var/www/acme", kit.project), "--entrypoint", "sh", IMAGE, "-c"])
        .arg("mkdir -p /var/www/acme/.well-known/acme-challenge && echo proof-42 > /var/www/acme/.well-known/acme-challenge/t0k3n"))?;
    let r = curl("GET", &format!("http://{ip}:{http_port}/.well-known/acme-challenge/t0k3n"), &[])?;
    ensure!(r.status == 200 && r.text().trim() == "proof-42", "ACME challenge: {} {:?}", r.status, r.text());

    // The report in the kit shows exactly that pull; the dashboard's API and badge too.
    let report = || -> Result<Value, String> {
        let out = kit.exec("sidecar", &["pullgate", "report", "--since", "1h", "--format", "json", "--by", "repository"])?;
        serde_json::from_str(&out).map_err(|e| format!("report: {e}: {out}"))
    };
    wait_until(Duration::from_secs(30), "the pull in the report", || Ok(report()?["totals"]["pulls"] == 1))?;
    let r = report()?;
    let tiny = r["rows"].as_array().and_then(|rows| rows.iter().find(|row| row["repository"] == "test/tiny"));
    ensure!(tiny.is_some_and(|row| row["pulls"] == 1 && row["unique_origins"] == 1), "report: {r}");
    let token = kit.exec("dashboard", &["cat", "/var/lib/pullgate/dashboard.token"])?.trim().to_string();
    ensure!(token.len() >= 32, "no dashboard token: {token:?}");
    let api = format!("http://127.0.0.1:{dash_port}/api/report?since=1h&by=repository");
    let denied = curl("GET", &api, &[])?;
    ensure!(denied.status == 401, "the API answered {} without the token", denied.status);
    let r = curl("GET", &api, &[&format!("Authorization: Bearer {token}")])?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("API: {e}: {}", r.text()))?;
    ensure!(r.status == 200 && v["totals"]["pulls"] == 1, "dashboard API: {} {v}", r.status);
    let badge = curl("GET", &format!("http://127.0.0.1:{dash_port}/badge/test/tiny/pulls.svg"), &[])?;
    ensure!(badge.status == 200 && badge.text().contains("pulls: 1/"), "badge: {} {}", badge.status, badge.text());

    // An edit on the host is served within 1 s: an image moved to another
    // repository, which reaches nginx through Redis (no reload).
    let manifest = format!("http://127.0.0.1:{http_port}/v2/test/moved/manifests/1.0");
    let moved = |v: &str| format!("http://registry-a.example:5000/v2/test/moved-{v}/manifests/1.0");
    ensure!(manifest_location(&manifest)?.as_deref() == Some(moved("v1").as_str()), "before the edit: {:?}", manifest_location(&manifest)?);
    replace(&routes_file, &routes(&ip, https_port, "v1", "v2"))?;
    let took = wait_until(Duration::from_secs(5), "the edit served", || {
        Ok(manifest_location(&manifest)?.as_deref() == Some(moved("v2").as_str()))
    })?;
    eprintln!("compose: edit on the host to served redirect (Redis): {took:?}");
    ensure!(took <= Duration::from_secs(1), "the edit took {took:?} to be served (bound: 1 s)");
    // A file route's target is in nginx's config: a checked reload, within 2 s.
    ensure!(location(&files)?.as_deref() == Some("https://files.example.org/v1/app.tar.gz"), "before the edit: {:?}", location(&files)?);
    replace(&routes_file, &routes(&ip, https_port, "v2", "v2"))?;
    let took = wait_until(Duration::from_secs(5), "the edit served", || {
        Ok(location(&files)?.as_deref() == Some("https://files.example.org/v2/app.tar.gz"))
    })?;
    eprintln!("compose: edit on the host to served redirect (reload): {took:?}");
    ensure!(took <= Duration::from_secs(2), "the edit took {took:?} to be served (bound: 2 s)");
    // A broken edit changes nothing.
    replace(&routes_file, &routes(&ip, https_port, "v3", "v3").replace("kind: file", "kind: fiel"))?;
    std::thread::sleep(Duration::from_secs(2));
    ensure!(location(&files)?.as_deref() == Some("https://files.example.org/v2/app.tar.gz"), "a broken edit changed what is served");
    ensure!(manifest_location(&manifest)?.as_deref() == Some(moved("v2").as_str()), "a broken edit changed what is served");
    let status = kit.exec("sidecar", &["pullgate", "status", "--json"])?;
    let status: Value = serde_json::from_str(&status).map_err(|e| format!("status: {e}: {status}"))?;
    ensure!(
        status["last_error"].as_str().is_some_and(|e| e.contains("fiel")),
        "the sidecar's status does not report the broken edit: {status}"
    );
    replace(&routes_file, &routes(&ip, https_port, "v2", "v2"))?;

    // Under load: restart the sidecar, then kill it. nginx answers every
    // request, and every request it logged reaches the sink.
    let addr: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let load = Load::start(addr, "/dl/app.tar.gz", "curl/8.0", 307, 1);
    std::thread::sleep(Duration::from_secs(2));
    run(kit.compose().args(["restart", "sidecar"]))?;
    kit.wait_healthy(Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));
    run(kit.compose().args(["kill", "-s", "KILL", "sidecar"]))?;
    std::thread::sleep(Duration::from_secs(2));
    // `kill` counts as stopped by hand: up brings it back, as an operator would.
    run(kit.compose().args(["up", "-d", "--no-build", "sidecar"]))?;
    kit.wait_healthy(Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));
    let report = load.finish();
    ensure!(report.failures == 0 && report.ok > 100, "under load: {report:?}");
    let (mut missing, mut logged_n, mut shipped_n) = (Vec::new(), 0, 0);
    wait_until(Duration::from_secs(30), "every logged request in the sink", || {
        let (logged, shipped) = logged_and_shipped(&kit)?;
        (logged_n, shipped_n) = (logged.len(), shipped.len());
        missing = logged.into_iter().filter(|id| !shipped.contains(id)).collect();
        Ok(missing.is_empty())
    })
    .map_err(|e| format!("{e}: {} of {logged_n} logged ids are not in the sink, e.g. {:?}", missing.len(), missing.first()))?;
    // The log files on disk are the last two generations; the sink has them all.
    ensure!(shipped_n as u64 >= report.ok, "the sink holds {shipped_n} distinct requests; the load alone made {}", report.ok);
    let rotated = kit.exec("nginx", &["sh", "-c", "ls /var/log/pullgate"])?;
    eprintln!(
        "compose: {} requests under load, {logged_n} logged, all shipped; log files: {}",
        report.ok,
        rotated.split_whitespace().collect::<Vec<_>>().join(" ")
    );

    // nginx dies (TERM to its master): Docker restarts it alone; the
    // sidecar, in the same PID namespace but not its first process, runs on.
    let started_at = |service: &str| -> Result<String, String> {
        let id = text(run(kit.compose().args(["ps", "-q", service]))?);
        Ok(text(run(Command::new("docker").args(["inspect", "--format", "{{.State.StartedAt}}", id.trim()]))?))
    };
    let (sidecar_before, nginx_before) = (started_at("sidecar")?, started_at("nginx")?);
    kit.exec("nginx", &["sh", "-c", "kill -TERM $(cat /run/pullgate/nginx.pid)"])?;
    wait_until(Duration::from_secs(30), "nginx restarted by Docker", || Ok(started_at("nginx")? != nginx_before))?;
    kit.wait_healthy(Duration::from_secs(60))?;
    ensure!(started_at("sidecar")? == sidecar_before, "the sidecar was restarted with nginx");
    ensure!(
        location(&files)?.as_deref() == Some("https://files.example.org/v2/app.tar.gz"),
        "after nginx's restart: {:?}",
        location(&files)?
    );
    // ... and the sidecar still reloads the new nginx: a new route (new locations) is served.
    let extra = "  - name: extra\n    kind: file\n    path: /extra/{file}\n    upstream: https://files.example.org/extra/{file}\n";
    replace(&routes_file, &format!("{}{extra}", routes(&ip, https_port, "v2", "v2")))?;
    let extra_url = format!("http://127.0.0.1:{http_port}/extra/app.tar.gz");
    wait_until(Duration::from_secs(10), "a new route after nginx's restart", || {
        Ok(location(&extra_url)?.as_deref() == Some("https://files.example.org/extra/app.tar.gz"))
    })?;

    // CloudWatch Logs, opt-in through the environment (.env): the sidecar,
    // recreated with a group set, ships there (moto, on this machine's
    // docker0 address) and no longer to the local sink.
    let moto = Moto::start_on(&work.join("moto"), &ip)?;
    kit.env.extend([
        ("PULLGATE_CLOUDWATCH_GROUP", "pullgate-kit".to_string()),
        ("PULLGATE_CLOUDWATCH_STREAM", "node-a".to_string()),
        ("PULLGATE_CLOUDWATCH_ENDPOINT", moto.endpoint()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "pullgate-test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "pullgate-test-secret".to_string()),
    ]);
    run(kit.compose().args(["up", "-d", "--no-build", "sidecar"]))?;
    kit.wait_healthy(Duration::from_secs(60))?;
    let probe = format!("http://127.0.0.1:{http_port}/dl/cloudwatch-probe.tar.gz");
    let r = curl("GET", &probe, &["Host: load"])?;
    ensure!(r.status == 307, "probe: {}", r.status);
    wait_until(Duration::from_secs(30), "the probe in CloudWatch Logs", || {
        Ok(messages(&moto.endpoint(), "pullgate-kit", "node-a")
            .unwrap_or_default()
            .iter()
            .any(|m| m.contains("/dl/cloudwatch-probe.tar.gz")))
    })?;
    let sink = kit.exec("sidecar", &["sh", "-c", "cat /var/lib/pullgate/events/*"])?;
    ensure!(!sink.contains("cloudwatch-probe"), "with CloudWatch set, the probe also went to the local sink");

    // down -v leaves nothing behind.
    run(kit.compose().args(["down", "-v", "--timeout", "10"]))?;
    let label = format!("label=com.docker.compose.project={}", kit.project);
    let left = text(run(Command::new("docker").args(["ps", "-a", "-q", "--filter", &label]))?);
    let volumes = text(run(Command::new("docker").args(["volume", "ls", "-q", "--filter", &label]))?);
    ensure!(left.trim().is_empty() && volumes.trim().is_empty(), "after down -v: containers {left:?}, volumes {volumes:?}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
