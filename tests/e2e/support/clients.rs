//! Real container clients: skopeo, podman, containerd's ctr and the docker engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::process::{require, run, Server};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `skopeo copy docker://REF dir:DEST`; checks every blob file against its name.
/// Returns the digests of the blobs it wrote.
pub fn skopeo_copy(reference: &str, dest: &Path, all: bool) -> Result<Vec<String>, String> {
    require("skopeo", "skopeo")?;
    let _ = std::fs::remove_dir_all(dest);
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--src-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    run(cmd.arg(format!("docker://{reference}")).arg(format!("dir:{}", dest.display())))?;
    let mut digests = Vec::new();
    for entry in std::fs::read_dir(dest).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let got = sha256_hex(&std::fs::read(&path).map_err(|e| e.to_string())?);
            if got != name {
                return Err(format!("{}: content hashes to {got}", path.display()));
            }
            digests.push(format!("sha256:{name}"));
        }
    }
    Ok(digests)
}

/// podman with its own vfs store under `root`.
pub fn podman_pull(reference: &str, root: &Path) -> Result<String, String> {
    require("podman", "podman")?;
    let base = |cmd: &mut Command| {
        cmd.arg("--root").arg(root.join("root")).arg("--runroot").arg(root.join("run")).args(["--storage-driver", "vfs"]);
    };
    let mut pull = Command::new("podman");
    base(&mut pull);
    run(pull.args(["pull", "--quiet", "--tls-verify=false", reference]))?;
    let mut inspect = Command::new("podman");
    base(&mut inspect);
    let out = run(inspect.args(["image", "inspect", "--format", "{{.Digest}}", reference]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A container engine: the machine's docker and containerd, or ones started here.
pub struct Engine {
    pub docker_host: Option<String>,
    pub containerd_sock: PathBuf,
    _dockerd: Option<Server>,
}

/// The test images share their content under many names. With one case
/// pulling a name while another removes the last other name of the same
/// image, the engine removed the image under the pull: `docker image
/// inspect` then found no image just after `docker pull` succeeded (seen
/// once in CI). The cases' pull, inspect and removal take turns.
static DOCKER_IMAGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Engine {
    /// Use the running docker engine, or start `dockerd` from Debian's docker.io.
    pub fn find_or_start(work: &Path) -> Result<Engine, String> {
        require("docker", "docker.io")?;
        require("ctr", "containerd")?;
        if run(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"])).is_ok() {
            let sock = ["/run/containerd/containerd.sock", "/run/docker/containerd/containerd.sock"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or("docker runs but no containerd socket was found")?;
            return Ok(Engine { docker_host: None, containerd_sock: sock, _dockerd: None });
        }
        require("dockerd", "docker.io")?;
        let root = work.join("dockerd");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let sock = root.join("docker.sock");
        // Its own config file: the machine's /etc/docker/daemon.json may set the same options.
        let config = root.join("daemon.json");
        std::fs::write(&config, "{}\n").map_err(|e| e.to_string())?;
        let mut cmd = Command::new("dockerd");
        cmd.args(["--iptables=false", "--bridge=none"])
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()));
        let mut server = Server::start("dockerd", cmd, &root.join("dockerd.log"))?;
        let host = format!("unix://{}", sock.display());
        for _ in 0..100 {
            server.ensure_running()?;
            if run(Command::new("docker").args(["-H", &host, "info"])).is_ok() {
                let containerd_sock = root.join("exec/containerd/containerd.sock");
                return Ok(Engine { docker_host: Some(host), containerd_sock, _dockerd: Some(server) });
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Err(format!("dockerd did not answer within 20 s:\n{}", server.log_text()))
    }

    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        if let Some(h) = &self.docker_host {
            cmd.args(["-H", h]);
        }
        cmd
    }

    /// `docker pull`; returns the repo digest the engine recorded, and removes the image.
    pub fn docker_pull(&self, reference: &str) -> Result<String, String> {
        let _one_at_a_time = DOCKER_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
        run(self.docker().args(["pull", "--quiet", reference]))?;
        let out = run(self.docker().args(["image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", reference]))?;
        let _ = run(self.docker().args(["rmi", "--force", reference]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let repo = match reference.split_once('@') {
            Some((repo, _)) => repo,
            None => reference.rsplit_once(':').map(|(r, _)| r).unwrap_or(reference),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{repo}@")).map(str::to_string))
            .ok_or_else(|| format!("no repo digest for {reference} in {text:?}"))
    }

    /// `docker pull`, then after `pause` the same pull again (up to date by
    /// then: a re-pull), then the image is removed.
    pub fn docker_repull(&self, reference: &str, pause: std::time::Duration) -> Result<(), String> {
        {
            let _one_at_a_time = DOCKER_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
            run(self.docker().args(["pull", "--quiet", reference]))?;
        }
        std::thread::sleep(pause);
        let _one_at_a_time = DOCKER_IMAGES.lock().unwrap_or_else(|e| e.into_inner());
        let again = run(self.docker().args(["pull", "--quiet", reference]));
        let _ = run(self.docker().args(["rmi", "--force", reference]));
        again.map(|_| ())
    }

    /// `ctr images pull --plain-http` in namespace `ns`; returns the image's target digest.
    pub fn ctr_pull(&self, ns: &str, reference: &str) -> Result<String, String> {
        let ctr = || {
            let mut c = Command::new("ctr");
            c.arg("-a").arg(&self.containerd_sock).args(["-n", ns]);
            c
        };
        run(ctr().args(["images", "pull", "--plain-http", reference]))?;
        let out = run(ctr().args(["images", "ls"]))?;
        let _ = run(ctr().args(["images", "rm", reference]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .filter(|l| l.starts_with(reference))
            .find_map(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")).map(str::to_string))
            .ok_or_else(|| format!("{reference} not in ctr images ls:\n{text}"))
    }
}
