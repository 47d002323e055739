//! `pullgate up`: render, check and run nginx in the foreground.

use std::path::Path;

use tokio::signal::unix::{signal, SignalKind};

use crate::{config, nginx, render, Failure};

pub fn run(config_path: &Path, state_dir: &Path) -> Result<(), Failure> {
    let c = config::load(config_path).map_err(|e| match e {
        e @ config::ConfigError::Invalid { .. } => Failure::Invalid(e),
        e => Failure::Other(e.into()),
    })?;
    let rendered = render::render(&c).map_err(|e| Failure::Other(e.into()))?;
    let prefix = nginx::Prefix::create(state_dir.join("nginx")).map_err(|e| Failure::Other(e.into()))?;
    prefix.install(&rendered, true, "stderr").map_err(|e| Failure::Other(e.into()))?;
    prefix.test().map_err(|e| Failure::Other(e.into()))?;

    let log = if c.gateway.access_log.starts_with('/') {
        c.gateway.access_log.clone()
    } else {
        prefix.root.join(&c.gateway.access_log).display().to_string()
    };
    tracing::info!(prefix = %prefix.root.display(), access_log = %log, listen = ?c.gateway.listen, "starting nginx");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Failure::Other(e.into()))?;
    rt.block_on(async {
        let mut cmd = prefix.command(&[]);
        // Its own process group: Ctrl-C reaches pullgate only, which stops nginx gracefully.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // If pullgate dies without stopping nginx (SIGKILL, a crash), nginx stops too.
        // SAFETY: prctl in the forked child before exec touches no shared state.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Failure::Other(nginx::NginxError::Spawn { binary: nginx::binary(), source }.into()))?;
        let pid = child.id().expect("running child has a pid") as i32;
        let mut term = signal(SignalKind::terminate()).map_err(|e| Failure::Other(e.into()))?;
        let stop = tokio::select! {
            status = child.wait() => return exited(status),
            _ = tokio::signal::ctrl_c() => "interrupt",
            _ = term.recv() => "terminate",
        };
        tracing::info!(signal = stop, "stopping nginx gracefully");
        // SIGQUIT: nginx finishes in-flight requests, then exits.
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        exited(child.wait().await)
    })
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Result<(), Failure> {
    match status {
        Ok(s) if s.success() => {
            tracing::info!("nginx stopped");
            Ok(())
        }
        Ok(s) => Err(Failure::Other(format!("nginx exited with {s}").into())),
        Err(e) => Err(Failure::Other(e.into())),
    }
}
