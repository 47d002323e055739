//! redis-server on loopback, without persistence (a restart starts empty).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::process::{free_port, require, wait_for_port, Server};

pub struct RedisServer {
    /// Stopped when dropped.
    _server: Server,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn start(dir: &Path) -> Result<RedisServer, String> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1")).parse().unwrap();
        RedisServer::start_at(dir, addr)
    }

    pub fn start_at(dir: &Path, addr: SocketAddr) -> Result<RedisServer, String> {
        require("redis-server", "redis-server")?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", &addr.ip().to_string(), "--port", &addr.port().to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        let mut server = Server::start("redis-server", cmd, &dir.join("redis.log"))?;
        wait_for_port(&mut server, addr)?;
        Ok(RedisServer { _server: server, addr })
    }
}
