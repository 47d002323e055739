//! `moto_server` as CloudWatch Logs, on loopback, and reading back what was
//! shipped to it with the AWS SDK. moto keeps everything in memory: a
//! restart starts empty.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::Client;

use super::process::{free_port, require, wait_for_http, Server};

pub struct Moto {
    server: Option<Server>,
    pub addr: SocketAddr,
    dir: PathBuf,
}

/// Settings for a pullgate that ships to `endpoint`, and nothing from the machine's own AWS config.
pub fn aws_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", "pullgate-test")
        .env("AWS_SECRET_ACCESS_KEY", "pullgate-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PULLGATE_CLOUDWATCH_ENDPOINT", endpoint);
}

impl Moto {
    pub fn start(dir: &Path) -> Result<Moto, String> {
        Moto::start_on(dir, "127.0.0.1")
    }

    /// On `ip`: another address of this machine, for clients in containers.
    pub fn start_on(dir: &Path, ip: &str) -> Result<Moto, String> {
        require("moto_server", "moto[server] from PyPI: pip install 'moto[server]'")?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let addr: SocketAddr = format!("{ip}:{}", free_port(ip)).parse().unwrap();
        let mut moto = Moto { server: None, addr, dir: dir.to_path_buf() };
        moto.restart()?;
        Ok(moto)
    }

    /// Stop it (SIGTERM): calls are refused until it starts again, empty.
    pub fn stop(&mut self) {
        self.server = None;
    }

    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", &self.addr.ip().to_string(), "-p", &self.addr.port().to_string()]);
        let n = std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0);
        let mut server = Server::start("moto_server", cmd, &self.dir.join(format!("moto-{n}.log")))?;
        wait_for_http(&mut server, self.addr)?;
        self.server = Some(server);
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A client of the CloudWatch Logs at `endpoint`.
fn client(endpoint: &str) -> Client {
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("pullgate-test", "pullgate-test-secret", None, None, "test"))
        .build();
    Client::from_conf(config)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// Every message in `group`/`stream`, oldest first; empty if they do not exist.
pub fn messages(endpoint: &str, group: &str, stream: &str) -> Result<Vec<String>, String> {
    block_on(async {
        let c = client(endpoint);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = c
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) if aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata::code(&e) == Some("ResourceNotFoundException") => {
                    return Ok(out)
                }
                Err(e) => return Err(format!("GetLogEvents: {}", aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e))),
            };
            let n = r.events().len();
            out.extend(r.events().iter().filter_map(|e| e.message().map(str::to_string)));
            let next = r.next_forward_token().map(str::to_string);
            if n == 0 || next == token {
                return Ok(out);
            }
            token = next;
        }
    })
}

/// The retention of `group`, in days.
pub fn retention(endpoint: &str, group: &str) -> Result<Option<i32>, String> {
    block_on(async {
        let r = client(endpoint)
            .describe_log_groups()
            .log_group_name_prefix(group)
            .send()
            .await
            .map_err(|e| format!("DescribeLogGroups: {}", aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e)))?;
        Ok(r.log_groups().iter().find(|g| g.log_group_name() == Some(group)).and_then(|g| g.retention_in_days()))
    })
}
