//! A small Bearer token server, like the ones in front of GHCR or Docker Hub:
//! anonymous callers get a JWT for the scopes they ask for, signed with ES256
//! and carrying its certificate in `x5c`, which docker-registry verifies
//! against its `rootcertbundle`. It records every scope asked for.
//! Repositories under `private/` are granted only to the account
//! [`PRIVATE_USER`]:[`PRIVATE_TOKEN`] (Basic); anonymous callers get a token
//! without access to them, as Docker Hub does for a private repository.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub const ISSUER: &str = "pullgate-test-issuer";
pub const SERVICE: &str = "pullgate-test-registry";
pub const PRIVATE_USER: &str = "pullgate-test";
pub const PRIVATE_TOKEN: &str = "s3cret-pat-4711";

pub struct TokenServer {
    pub addr: SocketAddr,
    /// Every `scope` parameter received, decoded, in order.
    pub scopes: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    /// Start on `ip`; writes the signing certificate to `cert_path` for the registry.
    pub fn start(ip: &str, cert_path: &Path) -> Result<TokenServer, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = rcgen::CertificateParams::new(vec!["pullgate-test-token".to_string()])
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| e.to_string())?;
        std::fs::write(cert_path, cert.pem()).map_err(|e| e.to_string())?;
        let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &SystemRandom::new())
            .map_err(|e| e.to_string())?;
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(cert.der())]});
        let header = URL_SAFE_NO_PAD.encode(header.to_string());

        let listener = TcpListener::bind((ip, super::process::free_port(ip))).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let seen = scopes.clone();
        let signer = Arc::new(signer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (signer, header, seen) = (signer.clone(), header.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &signer, &header, &seen);
                });
            }
        });
        Ok(TokenServer { addr, scopes })
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn scopes_seen(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, signer: &EcdsaKeyPair, header: &str, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = value.trim().to_string();
            }
        }
    }
    let account = format!("Basic {}", STANDARD.encode(format!("{PRIVATE_USER}:{PRIVATE_TOKEN}")));
    let authenticated = authorization == account;
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut access = Vec::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k != "scope" {
            continue;
        }
        let scope = percent_decode(v);
        seen.lock().unwrap().push(scope.clone());
        // repository:NAME:ACTIONS (NAME may contain ':' only in a port, which repositories do not have)
        let mut parts = scope.splitn(3, ':');
        if let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) {
            if name.starts_with("private/") && !authenticated {
                continue;
            }
            let actions: Vec<&str> = actions.split(',').collect();
            access.push(serde_json::json!({"type": kind, "name": name, "actions": actions}));
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "", "aud": SERVICE, "exp": now + 600, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", access.len()), "access": access,
    });
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = signer.sign(&SystemRandom::new(), signing_input.as_bytes()).map_err(|_| std::io::Error::other("sign"))?;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600}).to_string();
    let mut stream = stream;
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
