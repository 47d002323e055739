//! Child processes that stop with their owner and with the test binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A server process, killed on drop; its output goes to a log file.
pub struct Server {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Server {
    /// Start `cmd` with stdout and stderr in `log`. The child gets SIGKILL if
    /// the thread that started it dies, so start long-lived servers from main.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> Result<Server, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl in the forked child before exec touches no shared state.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Server { name: name.to_string(), child, log: log.to_path_buf() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash: no cleanup runs.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fail with the log if the process has already exited.
    pub fn ensure_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited ({status}):\n{}", self.name, self.log_text())),
            _ => Ok(()),
        }
    }
}

impl Drop for Server {
    /// SIGTERM, so that supervisors such as `pullgate up` stop their children;
    /// SIGKILL after 5 s.
    fn drop(&mut self) {
        // Reaped already: the pid may belong to someone else by now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on `ip`, never handed out twice in this run.
///
/// Ports come from a counter below Linux's ephemeral range (32768+), where
/// the kernel picks client ports and `bind(0)` ports: a port from there can be
/// taken by a client socket or given to a second server between the check and
/// the server's own bind.
pub fn free_port(ip: &str) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(0, 20_000 + (std::process::id() % 200) as u16 * 50, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// Wait until something accepts connections on `addr`.
pub fn wait_for_port(server: &mut Server, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        server.ensure_running()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} did not listen on {addr} within 20 s:\n{}", server.name, server.log_text()))
}

/// Wait until an HTTP server answers on `addr`. A listening socket is not
/// enough: `nginx -t` binds the configured ports while it checks the config.
pub fn wait_for_http(server: &mut Server, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        server.ensure_running()?;
        if http_answers(addr) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} did not answer HTTP on {addr} within 20 s:\n{}", server.name, server.log_text()))
}

fn http_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /.well-known/pullgate-probe HTTP/1.0\r\nHost: probe\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Run a command to completion; fail with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{:?} failed ({}):\n{}{}", cmd, out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// A command must exist; the message says which package `.ci/run` installs it from.
pub fn require(tool: &str, package: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if found {
        Ok(())
    } else {
        Err(format!("`{tool}` is not installed (Debian package `{package}`; .ci/run installs it)"))
    }
}
