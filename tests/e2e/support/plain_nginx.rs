//! A plain nginx with a hand-written server block, as an upstream that
//! behaves like a CDN-fronted registry.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::process::{free_port, wait_for_http, Server};

pub struct PlainNginx {
    _server: Server,
    pub addr: SocketAddr,
}

impl PlainNginx {
    /// Run nginx with `server_body` inside `server { listen ADDR; ... }`.
    pub fn start(dir: &Path, ip: &str, server_body: &str) -> Result<PlainNginx, String> {
        std::fs::create_dir_all(dir.join("logs")).map_err(|e| e.to_string())?;
        let addr: SocketAddr = format!("{ip}:{}", free_port(ip)).parse().unwrap();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr notice;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{\n    listen {addr};\n{server_body}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
        let mut server = Server::start("plain nginx", cmd, &dir.join("nginx.log"))?;
        wait_for_http(&mut server, addr)?;
        Ok(PlainNginx { _server: server, addr })
    }
}
