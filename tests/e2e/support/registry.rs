//! docker-registry (distribution v2) as a real upstream.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::process::{free_port, require, wait_for_port, Server};

pub struct Registry {
    pub server: Server,
    pub addr: SocketAddr,
}

/// Token auth settings for a registry behind a token server.
pub struct TokenAuth<'a> {
    pub realm: &'a str,
    pub service: &'a str,
    pub issuer: &'a str,
    pub cert: &'a Path,
}

impl Registry {
    pub fn start(name: &str, ip: &str, dir: &Path, auth: Option<TokenAuth>) -> Result<Registry, String> {
        let addr: SocketAddr = format!("{ip}:{}", free_port(ip)).parse().unwrap();
        Registry::start_at(name, addr, dir, auth)
    }

    /// Start on a given address: a restart keeps its address and its data.
    pub fn start_at(name: &str, addr: SocketAddr, dir: &Path, auth: Option<TokenAuth>) -> Result<Registry, String> {
        require("docker-registry", "docker-registry")?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let auth = match auth {
            None => String::new(),
            Some(a) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                a.realm,
                a.service,
                a.issuer,
                a.cert.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth}",
            data.display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config_path);
        let mut server = Server::start(name, cmd, &dir.join("registry.log"))?;
        wait_for_port(&mut server, addr)?;
        Ok(Registry { server, addr })
    }
}
