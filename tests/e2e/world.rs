//! Upstreams shared by every test: two registries, a token server and images.
//!
//! Hosts differ on purpose (127.0.0.1 gateway, .2 anonymous registry, .3
//! token registry, .4 token server) so that clients treat every redirect as
//! cross-host, as they would between get.acme.dev and ghcr.io.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::support::clients::Engine;
use crate::support::gateway::Gateway;
use crate::support::oci::{self, Pushed};
use crate::support::registry::{Registry, TokenAuth};
use crate::support::token_server::{self, TokenServer};

pub const CLIENTS: [&str; 4] = ["skopeo", "podman", "ctr", "docker"];
/// Size of the large layer used by the Range test.
pub const BIG_LAYER: usize = 100 * 1024 * 1024;

pub struct World {
    pub work: PathBuf,
    pub anon: Registry,
    pub token: TokenServer,
    pub authed: Registry,
    /// `repo:tag` to what was pushed there.
    pub images: BTreeMap<String, Pushed>,
    pub engine: Result<Engine, String>,
}

impl World {
    pub fn start() -> Result<World, String> {
        // Short: podman refuses a runroot longer than 50 characters.
        let work = std::env::temp_dir().join(format!("pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let anon = Registry::start("anonymous registry", "127.0.0.2", &work.join("anon"), None)?;
        let cert = work.join("token.pem");
        let token = TokenServer::start("127.0.0.4", &cert)?;
        let realm = token.realm();
        let authed = Registry::start(
            "token registry",
            "127.0.0.3",
            &work.join("authed"),
            Some(TokenAuth { realm: &realm, service: token_server::SERVICE, issuer: token_server::ISSUER, cert: &cert }),
        )?;
        let layouts = work.join("layouts");
        let (a, t) = (anon.addr.to_string(), authed.addr.to_string());
        let mut images = BTreeMap::new();
        let mut add = |p: Pushed, registry: &str| {
            images.insert(format!("{registry}/{}:{}", p.repo, p.tag), p);
        };
        for (i, tag) in ["1.0", "1.1", "2.0"].iter().enumerate() {
            add(oci::push_simple(&layouts, &a, "acme/app", tag, 100 + i as u64)?, "anon");
        }
        add(oci::push_multi(&layouts, &a, "acme/multi", "1.0", 200)?, "anon");
        add(oci::push_big(&layouts, &a, "acme/big", "1.0", BIG_LAYER)?, "anon");
        for (i, c) in CLIENTS.iter().enumerate() {
            let seed = 1000 + 10 * i as u64;
            add(oci::push_simple(&layouts, &a, &format!("acme/{c}"), "1.0", seed)?, "anon");
            add(oci::push_simple(&layouts, &t, &format!("acme/{c}-t"), "1.0", seed + 1)?, "authed");
            add(oci::push_simple(&layouts, &t, &format!("acme-org/{c}-r"), "1.0", seed + 2)?, "authed");
            add(oci::push_multi(&layouts, &t, &format!("acme-org/{c}-m"), "1.0", seed + 3)?, "authed");
            // For the analytics test alone: content no other case pulls, so
            // that no engine or content store has its layer already (a pull
            // that downloads nothing counts as a version check).
            add(oci::push_simple(&layouts, &a, &format!("acme/{c}-a"), "1.0", seed + 4)?, "anon");
        }
        let engine = Engine::find_or_start(&work);
        Ok(World { work, anon, token, authed, images, engine })
    }

    pub fn image(&self, key: &str) -> &Pushed {
        self.images.get(key).unwrap_or_else(|| panic!("no pushed image {key}"))
    }

    /// A fresh directory for one test.
    pub fn dir(&self, test: &str) -> PathBuf {
        let d = self.work.join("t").join(test);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("test dir");
        d
    }

    /// Routes for the anonymous registry, same names: the host passes the challenge through.
    pub fn routes_anon(&self, mode: &str) -> String {
        format!("  - name: acme\n    image: acme/*\n    upstream: http://{}/acme/*\n    mode: {mode}\n", self.anon.addr)
    }

    /// Routes for the token registry, same names: its challenge passes through.
    pub fn routes_authed(&self) -> String {
        format!("  - name: acme-t\n    image: acme/*\n    upstream: http://{}/acme/*\n", self.authed.addr)
    }

    /// Renaming across two upstreams: the gateway's own challenge and `/token`.
    pub fn routes_renamed(&self) -> String {
        let (t, a, realm) = (self.authed.addr, self.anon.addr, self.token.realm());
        let auth = format!("    auth:\n      realm: {realm}\n      service: {}\n", token_server::SERVICE);
        format!(
            "  - name: renamed\n    image: apps/*\n    upstream: http://{t}/acme-org/*\n{auth}\
             \x20 - name: app\n    image: app\n    upstream: http://{a}/acme/app\n    auth: none\n"
        )
    }

    pub fn gateway(&self, test: &str, routes: &str) -> Result<Gateway, String> {
        Gateway::start(&self.dir(test), "", routes)
    }
}
