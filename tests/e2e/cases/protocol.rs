//! The registry protocol at the HTTP level, with curl.

use serde_json::Value;

use super::WithWorld;
use crate::ensure;
use crate::support::clients::sha256_hex;
use crate::support::gateway::{curl, curl_body, Gateway};
use crate::support::plain_nginx::PlainNginx;
use crate::world::{World, BIG_LAYER};

const DOCKER_UA: &str = "User-Agent: docker/20.10.24 go/go1.19.8 git-commit/5d6db84 kernel/6.1 os/linux arch/amd64 UpstreamClient(Docker-Client/28.2.2 \\(linux\\))";
const OCI_ACCEPT: &str = "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

type Case = fn(&World) -> Result<(), String>;

pub fn tests() -> Vec<(String, WithWorld)> {
    let cases: Vec<(&str, Case)> = vec![
        ("protocol::ping_passes_upstream_challenge_through", ping_pass_through),
        ("protocol::manifest_redirect_keeps_path_for_tag_and_digest", manifest_redirect),
        ("protocol::head_only_version_check_through_proxy", head_check_proxy),
        ("protocol::tags_list_query_preserved", tags_list_query),
        ("protocol::unknown_image_is_name_unknown", unknown_image),
        ("protocol::path_tricks_never_redirect_or_proxy", path_tricks),
        ("protocol::proxy_resumes_range_download_of_100mb_layer", range_resume),
        ("protocol::renamed_image_uses_gateway_token_flow", token_flow),
        ("protocol::push_and_bodies_are_refused", push_refused),
        ("protocol::proxy_hands_back_cdn_redirects_and_absolutises_relative_ones", cdn_redirects),
        ("protocol::file_routes_redirect_and_proxy", file_routes),
        ("protocol::file_route_path_tricks_go_nowhere", file_path_tricks),
        ("protocol::token_realm_never_comes_from_the_host_header", realm_not_from_host),
        ("protocol::token_refuses_push_and_unserved_repositories", token_scopes),
        ("protocol::overlong_request_lines_are_refused_quietly", overlong_lines),
    ];
    cases.into_iter().map(|(n, f)| (n.to_string(), Box::new(f) as WithWorld)).collect()
}

fn url(gw: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gw.host())
}

/// The single log line for `uri` (exact match).
fn line(gw: &Gateway, uri: &str) -> Result<Value, String> {
    let lines: Vec<Value> = gw.log()?.into_iter().filter(|l| l["uri"] == uri).collect();
    ensure!(lines.len() == 1, "expected one log line for {uri}, found {lines:?}");
    Ok(lines.into_iter().next().unwrap())
}

fn expect_line(gw: &Gateway, uri: &str, route: &str, mode: &str, status: u64) -> Result<Value, String> {
    let l = line(gw, uri)?;
    ensure!(
        l["route"] == route && l["mode"] == mode && l["status"] == status,
        "log for {uri}: want route={route} mode={mode} status={status}, got {l}"
    );
    Ok(l)
}

fn ping_pass_through(w: &World) -> Result<(), String> {
    let gw = w.gateway("ping-pass-through", &w.routes_authed())?;
    // A proxied client sees the upstream's own challenge, realm and all.
    let r = curl("GET", &url(&gw, "/v2/"), &[])?;
    ensure!(r.status == 401, "proxied ping: {} {}", r.status, r.text());
    let challenge = r.header("www-authenticate").unwrap_or("");
    ensure!(challenge.contains(&w.token.realm()), "challenge {challenge:?} does not name the upstream realm");
    // docker is redirected to the upstream's ping, where it learns the challenge.
    let r = curl("GET", &url(&gw, "/v2/"), &[DOCKER_UA])?;
    ensure!(r.status == 307, "docker ping: {}", r.status);
    ensure!(r.header("location") == Some(&format!("http://{}/v2/", w.authed.addr)), "location {:?}", r.header("location"));
    let lines = gw.log_for("/v2/")?;
    ensure!(lines.len() == 2 && lines[0]["mode"] == "proxy" && lines[1]["mode"] == "redirect", "ping log lines: {lines:?}");
    Ok(())
}

fn manifest_redirect(w: &World) -> Result<(), String> {
    let gw = w.gateway("manifest-redirect", &w.routes_anon("auto"))?;
    let digest = &w.image("anon/acme/app:1.0").digest;
    for (method, path) in [
        ("HEAD", "/v2/acme/app/manifests/1.0".to_string()),
        ("GET", "/v2/acme/app/manifests/1.0".to_string()),
        ("GET", format!("/v2/acme/app/manifests/{digest}")),
        ("GET", format!("/v2/acme/app/blobs/{}", w.image("anon/acme/app:1.0").layers()[0])),
        ("GET", format!("/v2/acme/app/referrers/{digest}?artifactType=application%2Fvnd.example.sbom")),
    ] {
        let r = curl(method, &url(&gw, &path), &[DOCKER_UA])?;
        ensure!(r.status == 307, "{method} {path}: {}", r.status);
        let want = format!("http://{}{path}", w.anon.addr);
        ensure!(r.header("location") == Some(want.as_str()), "{method} {path}: location {:?}, want {want}", r.header("location"));
    }
    let l = expect_line(&gw, &format!("/v2/acme/app/manifests/{digest}"), "acme", "redirect", 307)?;
    ensure!(l["upstream"] == format!("http://{}/v2/acme/app/manifests/{digest}", w.anon.addr), "upstream field: {l}");
    Ok(())
}

fn head_check_proxy(w: &World) -> Result<(), String> {
    let gw = w.gateway("head-check", &w.routes_anon("auto"))?;
    let r = curl("HEAD", &url(&gw, "/v2/acme/app/manifests/2.0"), &[OCI_ACCEPT])?;
    ensure!(r.status == 200, "HEAD through proxy: {}", r.status);
    let digest = &w.image("anon/acme/app:2.0").digest;
    ensure!(r.header("docker-content-digest") == Some(digest.as_str()), "digest header {:?}", r.header("docker-content-digest"));
    let l = expect_line(&gw, "/v2/acme/app/manifests/2.0", "acme", "proxy", 200)?;
    ensure!(l["method"] == "HEAD" && l["accept"].as_str().is_some_and(|a| a.contains("oci.image.manifest")), "{l}");
    Ok(())
}

fn tags_list_query(w: &World) -> Result<(), String> {
    let gw = w.gateway("tags-list", &w.routes_anon("auto"))?;
    let path = "/v2/acme/app/tags/list?n=1&last=1.0";
    let r = curl("GET", &url(&gw, path), &[DOCKER_UA])?;
    let want = format!("http://{}{path}", w.anon.addr);
    ensure!(r.status == 307 && r.header("location") == Some(want.as_str()), "redirect: {} {:?}", r.status, r.header("location"));
    let r = curl("GET", &url(&gw, path), &[])?;
    let body: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    ensure!(r.status == 200 && body["name"] == "acme/app", "proxied page: {} {body}", r.status);
    // docker-registry 2.8 ignores n/last, so check what it received rather than what it paged.
    let seen = format!("http.request.uri=\"{path}\"");
    ensure!(w.anon.server.log_text().contains(&seen), "the upstream never received {path}");
    let lines = gw.log_for("tags/list")?;
    ensure!(lines.len() == 2 && lines.iter().all(|l| l["uri"] == path && l["route"] == "acme"), "{lines:?}");
    Ok(())
}

fn unknown_image(w: &World) -> Result<(), String> {
    for (name, routes) in [("unknown-pass", w.routes_anon("auto")), ("unknown-renamed", w.routes_renamed())] {
        let gw = w.gateway(name, &routes)?;
        for path in ["/v2/nope/app/manifests/1.0", "/v2/acmex/app/manifests/1.0", "/v2/app2/blobs/sha256:0123abcd"] {
            let r = curl("GET", &url(&gw, path), &[DOCKER_UA, "Authorization: Bearer x"])?;
            ensure!(r.status == 404 && r.text().contains("NAME_UNKNOWN"), "{name} {path}: {} {}", r.status, r.text());
            ensure!(r.header("location").is_none(), "{path} redirected");
            let l = expect_line(&gw, path, "", "local", 404)?;
            ensure!(l["upstream"] == "", "{l}");
        }
    }
    Ok(())
}

fn path_tricks(w: &World) -> Result<(), String> {
    let gw = w.gateway("path-tricks", &w.routes_anon("redirect"))?;
    let tricks = [
        "/v2/acme/../evil/manifests/1.0",
        "/v2/acme/app/../../evil/manifests/1.0",
        "/v2/acme/./app/manifests/1.0",
        "/v2//acme/app/manifests/1.0",
        "/v2/acme//app/manifests/1.0",
        "//127.0.0.9/v2/acme/app/manifests/1.0",
        "/v2/acme%2Fapp/manifests/1.0",
        "/v2/acme/app%2Fmanifests/1.0",
        "/v2/acme/%2e%2e/evil/manifests/1.0",
        "/v2/acme/app/manifests/1.0%0d%0aLocation:%20http://evil.example/",
        "/v2/acme/app/manifests/..%2f..%2fevil",
        "/v2/acme/app/manifests/%2F%2Fevil.example",
        "/v2/acme/app/blobs/uploads/",
        "/v2/acme/APP/manifests/1.0",
        "/v2/acme/app/manifests/1.0/../../../evil/manifests/1.0",
        "/downloads/../v2/acme/app/manifests/1.0",
    ];
    go_nowhere(&gw, &tricks, DOCKER_UA, &[400, 404, 405])
}

/// Each path gets one of `statuses`, no `Location`, and no log line names an upstream.
fn go_nowhere(gw: &Gateway, paths: &[&str], user_agent: &str, statuses: &[u16]) -> Result<(), String> {
    for t in paths {
        let r = curl("GET", &url(gw, t), &[user_agent])?;
        ensure!(statuses.contains(&r.status), "{t}: status {}", r.status);
        ensure!(r.header("location").is_none(), "{t}: redirected to {:?}", r.header("location"));
    }
    // Every trick is logged (besides the start-up probe).
    let lines = gw.log()?;
    ensure!(lines.len() > paths.len(), "{} tricks sent, {} lines logged: {lines:?}", paths.len(), lines.len());
    for l in &lines {
        ensure!(l["upstream"] == "" && l["mode"] == "local", "a path trick reached an upstream: {l}");
    }
    Ok(())
}

fn range_resume(w: &World) -> Result<(), String> {
    let gw = w.gateway("range", &w.routes_anon("proxy"))?;
    let layer = &w.image("anon/acme/big:1.0").layers()[0];
    let path = format!("/v2/acme/big/blobs/{layer}");
    let half = BIG_LAYER / 2;
    let first = curl("GET", &url(&gw, &path), &[&format!("Range: bytes=0-{}", half - 1)])?;
    ensure!(first.status == 206 && first.body.len() == half, "first half: {} {} bytes", first.status, first.body.len());
    // Resume from where the first transfer stopped, as a client does after a dropped connection.
    let rest = curl("GET", &url(&gw, &path), &[&format!("Range: bytes={half}-")])?;
    ensure!(rest.status == 206, "resume: {}", rest.status);
    let range = rest.header("content-range").unwrap_or("");
    ensure!(range.starts_with(&format!("bytes {half}-")), "content-range {range:?}");
    let mut all = first.body;
    all.extend_from_slice(&rest.body);
    let got = format!("sha256:{}", sha256_hex(&all));
    ensure!(&got == layer, "reassembled layer hashes to {got}, want {layer}");
    let lines = gw.log_for(&path)?;
    ensure!(
        lines.len() == 2
            && lines
                .iter()
                .all(|l| l["mode"] == "proxy" && l["status"] == 206 && l["range"].as_str().is_some_and(|r| r.starts_with("bytes="))),
        "{lines:?}"
    );
    Ok(())
}

fn token_flow(w: &World) -> Result<(), String> {
    let gw = w.gateway("token-flow", &w.routes_renamed())?;
    let r = curl("GET", &url(&gw, "/v2/"), &[])?;
    let challenge = r.header("www-authenticate").unwrap_or("").to_string();
    let realm = format!("realm=\"http://{}/token\"", gw.host());
    ensure!(r.status == 401 && challenge.starts_with("Bearer ") && challenge.contains(&realm), "ping: {} {challenge:?}", r.status);
    // Without a token, a manifest request gets a challenge with the scope to ask for.
    let r = curl("GET", &url(&gw, "/v2/apps/skopeo-r/manifests/1.0"), &[])?;
    let challenge = r.header("www-authenticate").unwrap_or("");
    ensure!(r.status == 401 && challenge.contains("scope=\"repository:apps/skopeo-r:pull\""), "manifest: {} {challenge:?}", r.status);
    // The scope is rewritten to the upstream name; docker sends it percent-encoded.
    let r = curl("GET", &url(&gw, "/token?scope=repository%3Aapps%2Fskopeo-r%3Apull&service=pullgate"), &[])?;
    let token: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    ensure!(r.status == 200 && token["token"].is_string(), "token: {} {token}", r.status);
    ensure!(
        w.token.scopes_seen().iter().any(|s| s == "repository:acme-org/skopeo-r:pull"),
        "scope not rewritten: {:?}",
        w.token.scopes_seen()
    );
    let auth = format!("Authorization: Bearer {}", token["token"].as_str().unwrap());
    let r = curl("GET", &url(&gw, "/v2/apps/skopeo-r/manifests/1.0"), &[&auth, OCI_ACCEPT])?;
    ensure!(r.status == 200, "manifest with token: {} {}", r.status, r.text());
    let lines = gw.log_for("/v2/apps/skopeo-r/manifests/1.0")?;
    let statuses: Vec<_> = lines.iter().map(|l| (l["status"].as_u64(), l["mode"].as_str(), l["route"].as_str())).collect();
    ensure!(statuses == [(Some(401), Some("local"), Some("renamed")), (Some(200), Some("proxy"), Some("renamed"))], "{statuses:?}");
    // An anonymous upstream behind the same host gets a placeholder token.
    let r = curl("GET", &url(&gw, "/token?scope=repository:app:pull"), &[])?;
    ensure!(r.status == 200 && r.text().contains("pullgate-anonymous"), "anonymous token: {}", r.text());
    let l = line(&gw, "/token?scope=repository%3Aapps%2Fskopeo-r%3Apull&service=pullgate")?;
    ensure!(
        l["route"] == "renamed" && l["mode"] == "proxy" && l["upstream"].as_str().is_some_and(|u| u.contains("acme-org/skopeo-r")),
        "{l}"
    );
    Ok(())
}

fn push_refused(w: &World) -> Result<(), String> {
    let gw = w.gateway("push-refused", &w.routes_anon("proxy"))?;
    let body = r#"{"schemaVersion":2,"layers":[]}"#;
    let writes = [
        ("POST", "/v2/acme/app/blobs/uploads/"),
        ("PUT", "/v2/acme/app/manifests/9.9"),
        ("DELETE", "/v2/acme/app/manifests/1.0"),
        ("PATCH", "/v2/acme/app/blobs/uploads/x"),
    ];
    for (method, path) in writes {
        let r = curl_body(method, &url(&gw, path), &["Content-Type: application/json"], body)?;
        ensure!(r.status == 405, "{method} {path}: {}", r.status);
    }
    // (The start-up probe is logged too; the writes are the /v2/ lines.)
    let lines: Vec<Value> = gw.log()?.into_iter().filter(|l| l["uri"].as_str().is_some_and(|u| u.starts_with("/v2/"))).collect();
    ensure!(lines.len() == writes.len(), "{} writes, {} log lines: {lines:?}", writes.len(), lines.len());
    for l in &lines {
        ensure!(l["upstream"] == "" && l["status"] == 405, "a write reached the upstream: {l}");
    }
    // A read that carries a body is proxied without it: the upstream (an
    // nginx that answers with what it received) sees no body and no length.
    let echo = PlainNginx::start(
        &w.dir("body-echo"),
        "127.0.0.6",
        "    location /v2/ { return 200 \"length=[$http_content_length] chunked=[$http_transfer_encoding]\"; }",
    )?;
    let routes = format!("  - {{name: echo, image: acme/*, upstream: \"http://{}/acme/*\", mode: proxy}}\n", echo.addr);
    let gw = w.gateway("body-not-forwarded", &routes)?;
    // Positive control: sent straight to the echo, the body is seen.
    let direct = curl_body("GET", &format!("http://{}/v2/acme/app/manifests/1.0", echo.addr), &[], body)?;
    ensure!(direct.text() == format!("length=[{}] chunked=[]", body.len()), "the echo upstream: {}", direct.text());
    let r = curl_body("GET", &url(&gw, "/v2/acme/app/manifests/1.0"), &[], body)?;
    ensure!(r.status == 200 && r.text() == "length=[] chunked=[]", "a body reached the upstream: {} {}", r.status, r.text());
    let r = curl_body("GET", &url(&gw, "/v2/acme/app/manifests/1.0"), &["Transfer-Encoding: chunked"], body)?;
    ensure!(r.status == 200 && r.text() == "length=[] chunked=[]", "a chunked body reached the upstream: {} {}", r.status, r.text());
    Ok(())
}

fn cdn_redirects(w: &World) -> Result<(), String> {
    // An upstream that sends blobs to a "CDN" (absolute Location) and manifests
    // to a path of its own (relative Location), as object-store-backed registries do.
    let cdn = PlainNginx::start(
        &w.dir("cdn-upstream"),
        "127.0.0.5",
        &format!(
            "    absolute_redirect off;\n\
             \x20   location ~ ^/v2/acme/[a-z]+/blobs/ {{ return 307 http://{}$request_uri?signature=abc; }}\n\
             \x20   location /v2/ {{ return 307 /mirror$request_uri; }}",
            w.anon.addr
        ),
    )?;
    let routes = format!("  - name: cdn\n    image: acme/*\n    upstream: http://{}/acme/*\n    mode: proxy\n", cdn.addr);
    let gw = w.gateway("cdn-redirects", &routes)?;
    let layer = &w.image("anon/acme/app:1.0").layers()[0];
    let r = curl("GET", &url(&gw, &format!("/v2/acme/app/blobs/{layer}")), &[])?;
    let want = format!("http://{}/v2/acme/app/blobs/{layer}?signature=abc", w.anon.addr);
    ensure!(
        r.status == 307 && r.header("location") == Some(want.as_str()),
        "CDN redirect: {} {:?}, want {want}",
        r.status,
        r.header("location")
    );
    let r = curl("GET", &url(&gw, "/v2/acme/app/manifests/1.0"), &[])?;
    let want = format!("http://{}/mirror/v2/acme/app/manifests/1.0", cdn.addr);
    ensure!(
        r.status == 307 && r.header("location") == Some(want.as_str()),
        "relative redirect: {} {:?}, want {want}",
        r.status,
        r.header("location")
    );
    Ok(())
}

fn file_routes(w: &World) -> Result<(), String> {
    let a = w.anon.addr;
    let routes = format!(
        "  - name: releases\n    kind: file\n    path: /downloads/{{version}}/{{file}}\n    upstream: https://github.com/acme-org/app/releases/download/v{{version}}/{{file}}\n\
         \x20 - name: tags\n    kind: file\n    path: /tags/{{repo}}.json\n    upstream: http://{a}/v2/acme/{{repo}}/tags/list\n    mode: proxy\n\
         \x20 - name: tool\n    kind: file\n    github: acme-org/tool\n    path: /tool/{{tag}}/{{file}}\n\
         \x20 - name: manifests\n    kind: file\n    path: /m/{{repo}}/{{tag}}\n    upstream: http://{a}/v2/acme/{{repo}}/manifests/{{tag}}\n    mode: proxy\n"
    );
    let gw = w.gateway("file-routes", &routes)?;
    // The GitHub shorthand, by GET and HEAD alike.
    let want = "https://github.com/acme-org/tool/releases/download/v2.0.1/tool_linux_arm64.tar.gz";
    for method in ["GET", "HEAD"] {
        let r = curl(method, &url(&gw, "/tool/v2.0.1/tool_linux_arm64.tar.gz"), &[])?;
        ensure!(r.status == 307 && r.header("location") == Some(want), "github {method}: {} {:?}", r.status, r.header("location"));
    }
    // HEAD through a proxied file route: the upstream's answer to HEAD.
    let accept = ["Accept: application/vnd.oci.image.manifest.v1+json"];
    let get = curl("GET", &url(&gw, "/m/app/1.1"), &accept)?;
    let head = curl("HEAD", &url(&gw, "/m/app/1.1"), &accept)?;
    let digest = |r: &crate::support::gateway::Reply| r.header("docker-content-digest").map(str::to_string);
    ensure!(
        get.status == 200 && head.status == 200 && digest(&head).is_some() && digest(&head) == digest(&get),
        "proxied HEAD: GET {} {:?}, HEAD {} {:?}",
        get.status,
        digest(&get),
        head.status,
        digest(&head)
    );
    let lines = gw.log()?;
    let head_line = lines.iter().find(|l| l["uri"] == "/m/app/1.1" && l["method"] == "HEAD");
    ensure!(
        head_line.is_some_and(|l| l["bytes"] == 0 && l["route"] == "manifests" && l["mode"] == "proxy"),
        "HEAD's log line: {head_line:?}"
    );
    let r = curl("HEAD", &url(&gw, "/downloads/1.2.0/app-linux-amd64.tar.gz?mirror=1"), &[])?;
    let want = "https://github.com/acme-org/app/releases/download/v1.2.0/app-linux-amd64.tar.gz?mirror=1";
    ensure!(r.status == 307 && r.header("location") == Some(want), "redirect: {} {:?}", r.status, r.header("location"));
    let r = curl("GET", &url(&gw, "/tags/app.json"), &[])?;
    ensure!(r.status == 200 && r.text().contains("\"1.1\""), "proxied file: {} {}", r.status, r.text());
    expect_line(&gw, "/downloads/1.2.0/app-linux-amd64.tar.gz?mirror=1", "releases", "redirect", 307)?;
    let l = expect_line(&gw, "/tags/app.json", "tags", "proxy", 200)?;
    ensure!(l["upstream"] == format!("http://{a}/v2/acme/app/tags/list"), "{l}");
    Ok(())
}

fn file_path_tricks(w: &World) -> Result<(), String> {
    let routes = "  - name: releases\n    kind: file\n    path: /downloads/{version}/{file}\n    upstream: https://github.com/acme-org/app/releases/download/v{version}/{file}\n\
                  \x20 - name: tool\n    kind: file\n    github: acme-org/tool\n    path: /tool/{tag}/{file}\n";
    let gw = w.gateway("file-tricks", routes)?;
    let tricks = [
        "/downloads/1.0/../../etc/passwd",
        "/downloads/../downloads/1.0/x",
        "/downloads/1.0/.hidden",
        "/downloads/1.0/%2e%2e",
        "/downloads/1.0%2Fx/y",
        "/downloads//1.0/x",
        "/downloads/1.0/x/y",
        "/downloads/1.0/x%0d%0aSet-Cookie:%20a=b",
        // The GitHub shorthand: nothing but OWNER/REPO's release assets.
        "/tool/v1/../../../evil/repo/releases/download/v1/x",
        "/tool/..%2F..%2Fevil/x",
        "/tool/v1/x%2F..%2F..%2Fevil",
        "/tool/v1/.git",
        "/tool/%2e%2e/x",
    ];
    go_nowhere(&gw, &tricks, "User-Agent: curl/8", &[400, 404])
}

/// The realm in the gateway's own challenge: `public_url`, the host's own
/// name, or (the catch-all) the address reached; never the Host header,
/// which a shared cache in front would otherwise keep and serve to others.
fn realm_not_from_host(w: &World) -> Result<(), String> {
    let (t, realm, service) = (w.authed.addr, w.token.realm(), crate::support::token_server::SERVICE);
    let routes = format!(
        "{}  - {{name: pub, host: get.acme.dev, image: pub/*, upstream: \"http://{t}/acme-org/*\", auth: {{realm: \"{realm}\", service: {service}}}}}\n\
         \x20 - {{name: mir, host: mirror.acme.dev, image: mir/*, upstream: \"http://{t}/acme-org/*\", auth: {{realm: \"{realm}\", service: {service}}}}}\n",
        w.routes_renamed()
    );
    let hosts = "  hosts:\n    - {name: get.acme.dev, public_url: \"https://get.acme.dev\"}\n    - {name: mirror.acme.dev}\n";
    let gw = Gateway::start(&w.dir("realm-host"), hosts, &routes)?;
    let port = gw.addr.port();
    let realm_for = |host: &str| -> Result<String, String> {
        let r = curl("GET", &url(&gw, "/v2/"), &[&format!("Host: {host}")])?;
        ensure!(r.status == 401, "ping with Host {host}: {} {}", r.status, r.text());
        let challenge = r.header("www-authenticate").unwrap_or("").to_string();
        let realm = challenge.split("realm=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
        ensure!(!realm.is_empty(), "no realm in {challenge:?}");
        Ok(realm)
    };
    let cases = [
        ("evil.example", format!("http://127.0.0.1:{port}/token")),
        ("evil.example:666", format!("http://127.0.0.1:{port}/token")),
        ("get.acme.dev", "https://get.acme.dev/token".to_string()),
        ("get.acme.dev:666", "https://get.acme.dev/token".to_string()),
        ("mirror.acme.dev:666", format!("http://mirror.acme.dev:{port}/token")),
    ];
    for (host, want) in cases {
        let got = realm_for(host)?;
        ensure!(got == want, "Host {host}: realm {got:?}, want {want:?}");
        ensure!(!got.contains("evil") && !got.contains(":666"), "Host {host} reached the realm: {got}");
    }
    // The catch-all's realm works: a token from it opens the manifest.
    let r = curl("GET", &format!("http://127.0.0.1:{port}/token?scope=repository:apps/skopeo-r:pull&service=pullgate"), &[])?;
    let token: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{e}: {}", r.text()))?;
    let auth = format!("Authorization: Bearer {}", token["token"].as_str().unwrap_or(""));
    let r = curl("GET", &url(&gw, "/v2/apps/skopeo-r/manifests/1.0"), &[&auth, OCI_ACCEPT])?;
    ensure!(r.status == 200, "manifest with the realm's token: {} {}", r.status, r.text());
    Ok(())
}

/// `/token` asks the upstream for `pull` only, only for served repositories,
/// and refuses the rest as a registry would.
fn token_scopes(w: &World) -> Result<(), String> {
    let gw = w.gateway("token-scopes", &w.routes_renamed())?;
    let before = w.token.scopes_seen().len();
    for (query, why) in [
        ("scope=repository:apps/skopeo-r:push,pull", "the gateway serves pulls only"),
        ("scope=repository%3Aapps%2Fskopeo-r%3Apull%2Cpush", "the gateway serves pulls only"),
        ("scope=repository:apps/skopeo-r:*", "the gateway serves pulls only"),
        ("scope=repository:apps/skopeo-r:delete", "the gateway serves pulls only"),
        ("scope=repository:nobody/serves-this:pull", "no such repository"),
        ("scope=registry:catalog:*", "the gateway serves pulls only"),
        ("scope=repository:Apps/UPPER:pull", "no such repository"),
    ] {
        let r = curl("GET", &url(&gw, &format!("/token?{query}&service=pullgate")), &[])?;
        let body: Value = serde_json::from_slice(&r.body).map_err(|e| format!("{query}: {e}: {}", r.text()))?;
        ensure!(
            r.status == 403
                && body["errors"][0]["code"] == "DENIED"
                && body["errors"][0]["message"].as_str().is_some_and(|m| m.contains(why)),
            "{query}: {} {body}",
            r.status
        );
    }
    let asked: Vec<String> = w.token.scopes_seen()[before..].to_vec();
    ensure!(asked.is_empty(), "refused requests still reached the upstream token server: {asked:?}");
    // Positive controls: a pull of a served repository is passed on as pull;
    // a login (no scope) gets a token that grants nothing.
    let r = curl("GET", &url(&gw, "/token?scope=repository:apps/skopeo-r:pull&service=pullgate"), &[])?;
    ensure!(r.status == 200, "pull scope: {} {}", r.status, r.text());
    let asked: Vec<String> = w.token.scopes_seen()[before..].to_vec();
    ensure!(asked.iter().any(|s| s == "repository:acme-org/skopeo-r:pull"), "the pull was not passed on: {asked:?}");
    ensure!(asked.iter().all(|s| s.ends_with(":pull")), "asked the upstream for more than pull: {asked:?}");
    let r = curl("GET", &url(&gw, "/token?service=pullgate&account=someone"), &[])?;
    ensure!(r.status == 200 && r.text().contains("pullgate-anonymous"), "login: {} {}", r.status, r.text());
    Ok(())
}

/// Hostile long requests never reach the error log: a registry path past
/// the bound is an unknown repository before the registry grammar reads it,
/// a token request past it is answered 414 before the scope is read. (A long
/// path used to make PCRE give up and nginx log an alert with the whole line.)
fn overlong_lines(w: &World) -> Result<(), String> {
    let routes = format!(
        "  - {{name: acme, image: acme/*, upstream: \"http://{}/acme/*\", mode: proxy, auth: none}}\n\
         \x20 - {{name: dead, image: dead, upstream: \"http://127.0.0.9:9/dead\", mode: proxy, auth: none}}\n",
        w.anon.addr
    );
    let gw = w.gateway("overlong", &routes)?;
    let bearer = "Authorization: Bearer pullgate-anonymous";
    let deep = |len: usize| format!("/v2/acme/{}x/manifests/1.0", "a/".repeat(len / 2));
    for len in [1100, 6000, 7000] {
        let r = curl("GET", &url(&gw, &deep(len)), &[bearer])?;
        ensure!(r.status == 404 && r.text().contains("NAME_UNKNOWN"), "{len}-character registry path: {} {}", r.status, r.text());
    }
    for scope in ["a".repeat(6000), format!("repository:{}x:pull", "a/".repeat(3000))] {
        let r = curl("GET", &url(&gw, &format!("/token?scope={scope}")), &[])?;
        ensure!(r.status == 414, "a {}-character token request: {} {}", scope.len(), r.status, r.text());
    }
    // Below the bound, and off the registry API, requests are answered as before.
    // (The registry itself refuses names over 255 characters; what matters is that the gateway routed it.)
    curl("GET", &url(&gw, &deep(900)), &[bearer])?;
    let l = gw.log()?.into_iter().rev().find(|l| l["uri"] == deep(900)).ok_or("the 900-character request is not logged")?;
    ensure!(l["route"] == "acme" && l["mode"] == "proxy", "a 900-character path is not routed: {l}");
    let r = curl("GET", &url(&gw, &format!("/downloads/{}", "x/".repeat(3000))), &[])?;
    ensure!(r.status == 404, "6,000-character path off the registry API: {} {}", r.status, r.text());
    // (Two upstreams on one host: the gateway's own challenge comes first.)
    let r = curl("GET", &url(&gw, "/v2/acme/app/manifests/1.0"), &[OCI_ACCEPT])?;
    ensure!(r.status == 401 && r.header("www-authenticate").is_some(), "a normal pull: {} {}", r.status, r.text());
    // Positive control: nginx's error log reaches the file checked below.
    let r = curl("GET", &url(&gw, "/v2/dead/manifests/1.0"), &[bearer])?;
    ensure!(r.status == 502, "dead upstream: {}", r.status);
    let stderr = || std::fs::read_to_string(gw.dir.join("up.log")).unwrap_or_default();
    crate::support::wait_until(std::time::Duration::from_secs(5), "nginx's error for the dead upstream in up.log", || {
        Ok(stderr().contains("connect() failed"))
    })?;
    let log = stderr();
    ensure!(
        !log.contains("pcre") && !log.contains("[alert]") && !log.contains("a/a/a/a/a/"),
        "the long lines reached the error log:\n{log}"
    );
    let lines = gw.log()?;
    ensure!(lines.iter().filter(|l| l["status"] == 414).count() == 2, "414s in the access log: {lines:?}");
    Ok(())
}
