//! The token endpoint's scope rewriter, in a real nginx: the rendered maps
//! that parse `scope=repository:NAME:ACTIONS`, percent-decode NAME, find its
//! route and build the upstream's token URL with the upstream's name.
//!
//! One nginx (no master, killed with this process) serves a rendered config
//! whose two routes rename (so the gateway runs its own token endpoint); a
//! thread stands in for the upstream's token service and keeps each request
//! it gets. Each input is a query string sent to `/token` with a client
//! credential; whatever the input, nginx must answer it itself or ask the
//! upstream for `pull` on one of the repositories the routes map to, never
//! anything else, and never with the client's credential.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The client's credential: must never reach the upstream.
const CLIENT_SECRET: &str = "client-secret-7f3a";

struct Gateway {
    port: u16,
    /// Request heads the upstream token service received.
    seen: Receiver<String>,
    _nginx: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The stand-in token service: answers every request `{}` and sends its head on.
fn token_service() -> (u16, Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("bound").port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
            let _ =
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    (port, rx)
}

fn start() -> Gateway {
    let (up, seen) = token_service();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("pullgate-fuzz-token-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("a scratch directory");
    let routes = format!(
        "version: 1\n\
         gateway: {{listen: [\"127.0.0.1:{port}\"], resolver: [\"127.0.0.1\"], access_log: {log}}}\n\
         routes:\n  \
         - {{name: app, image: app, upstream: \"http://127.0.0.1:{up}/acme/app\", auth: {{realm: \"http://127.0.0.1:{up}/token\", service: up}}}}\n  \
         - {{name: libs, image: \"lib/*\", upstream: \"http://127.0.0.1:{up}/org/libs/*\", auth: {{realm: \"http://127.0.0.1:{up}/token\", service: up}}}}\n",
        log = dir.join("logs/access.log").display()
    );
    let config = pullgate_config::parse(&routes, "routes.yaml").expect("the token target's routes.yaml is valid");
    let rendered = pullgate_render::render(&config).expect("it renders");
    for (name, text) in &rendered.files {
        std::fs::write(dir.join(name), text).expect("write the include set");
    }
    let conf = format!(
        "worker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {dir}; proxy_temp_path {dir};\n    include {dir}/pullgate.conf;\n}}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf")).args(["-g", "daemon off; master_process off;"]);
    // nginx goes when this process does (libFuzzer ends with exit()).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let nginx = cmd.spawn().expect("nginx is installed (tests/run installs it)");
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Gateway { port, seen, _nginx: nginx };
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
    panic!("nginx did not start on port {port}:\n{log}");
}

/// Bytes as a query string nginx takes into a request line: printable
/// ASCII as it is (so `&`, `=`, `%` and `+` stay the fuzzer's to combine),
/// the rest percent-encoded.
fn query(data: &[u8]) -> String {
    let mut q = String::new();
    for &b in data {
        if b.is_ascii_graphic() && b != b'#' {
            q.push(b as char);
        } else {
            q.push_str(&format!("%{b:02X}"));
        }
    }
    q
}

/// The OCI name grammar, one path component at a time.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-'))
        })
        && s.bytes().all(|b| !b.is_ascii_uppercase())
}

/// What the upstream may be asked for: `acme/app`, or `org/libs/` and a name.
fn allowed_upstream_repository(r: &str) -> bool {
    r == "acme/app" || r.strip_prefix("org/libs/").is_some_and(is_name)
}

pub fn token_scope(data: &[u8]) {
    static GATEWAY: OnceLock<Mutex<Gateway>> = OnceLock::new();
    let gw = GATEWAY.get_or_init(|| Mutex::new(start())).lock().unwrap_or_else(|e| e.into_inner());
    while gw.seen.try_recv().is_ok() {}
    let q = query(data);
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port)).expect("nginx accepts");
    conn.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
    let request = format!("GET /token?{q} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {CLIENT_SECRET}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).expect("nginx answers within 10 s");
    let response = String::from_utf8_lossy(&response);
    let status: u16 = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let seen: Vec<String> = gw.seen.try_iter().collect();
    let context = || format!("query {q:?}\n--- response\n{response}\n--- upstream saw\n{seen:?}");
    // 400: nginx's own refusal of a request line; 414: the gateway's bound.
    assert!(matches!(status, 200 | 400 | 403 | 414), "unexpected status {status}: {}", context());
    assert!(seen.len() <= 1, "one token request became several: {}", context());
    if let Some(head) = seen.first() {
        assert_eq!(status, 200, "the upstream answered 200: {}", context());
        assert!(!head.contains(CLIENT_SECRET), "the client's credential reached the upstream: {}", context());
        let line = head.lines().next().unwrap_or("");
        let repository = line
            .strip_prefix("GET /token?service=up&scope=repository:")
            .and_then(|rest| rest.strip_suffix(":pull HTTP/1.1"))
            .unwrap_or_else(|| panic!("not a pull token request for one repository: {line:?}: {}", context()));
        assert!(allowed_upstream_repository(repository), "the upstream was asked for {repository:?}: {}", context());
    } else if status == 200 {
        assert!(response.contains("pullgate-anonymous"), "a 200 without the upstream is the anonymous token: {}", context());
    }
    outcome(status, seen.first().map(String::as_str));
}

/// libFuzzer sees the coverage of this harness, not of nginx: each distinct
/// outcome takes a branch of its own here, so that an input reaching a new
/// one (a deeper name, another route, another refusal) is kept.
#[inline(never)]
fn outcome(status: u16, upstream: Option<&str>) {
    let depth = upstream.map_or(0, |h| h.lines().next().unwrap_or("").matches('/').count().min(12));
    let glob = upstream.is_some_and(|h| h.contains("org/libs/"));
    match (status, glob, depth) {
        (200, false, 0) => std::hint::black_box(0),
        (200, false, _) => std::hint::black_box(1),
        (200, true, 5) => std::hint::black_box(2),
        (200, true, 6) => std::hint::black_box(3),
        (200, true, 7) => std::hint::black_box(4),
        (200, true, 8) => std::hint::black_box(5),
        (200, true, 9) => std::hint::black_box(6),
        (200, true, 10) => std::hint::black_box(7),
        (200, true, _) => std::hint::black_box(8),
        (400, ..) => std::hint::black_box(9),
        (403, ..) => std::hint::black_box(10),
        (414, ..) => std::hint::black_box(11),
        _ => std::hint::black_box(12),
    };
}
