//! `pullgate up`: run nginx in the foreground on a prefix under the state
//! directory and keep it serving the latest good routes.yaml.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{DaemonArgs, ShipOpts};
use crate::daemon::{self, status::Status, Applier, Daemon, Events, ReloadMethod};
use crate::{nginx, Failure};

pub fn run(config_path: &Path, state_dir: &Path, args: &DaemonArgs, ship: Option<&ShipOpts>) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Failure::other)?;
    rt.block_on(run_async(config_path, state_dir, args, ship))
}

async fn run_async(config_path: &Path, state_dir: &Path, args: &DaemonArgs, ship: Option<&ShipOpts>) -> Result<(), Failure> {
    let prefix = nginx::Prefix::create(state_dir.join("nginx")).map_err(Failure::other)?;
    let socket = prefix.root.join("control.sock");
    let mut applier = Applier::new(prefix.conf_dir(), state_dir.join("scratch"), socket.clone(), ReloadMethod::PidFile(prefix.pid_file()));
    let events = Events::watch(config_path).map_err(|e| Failure::other(format!("watching {}: {e}", config_path.display())))?;
    let prepared = applier.prepare(config_path, &Default::default()).await.map_err(Failure::from_apply)?.expect("nothing is live yet");
    let access_log = prepared.0.gateway.access_log.clone();
    let lua = prepared.1.table.is_some();
    let listen = prepared.0.gateway.listen.clone();
    applier.install(prepared).await.map_err(Failure::from_apply)?;
    prefix.install_main(true, "stderr", lua).map_err(Failure::other)?;
    // A socket file left by an nginx that did not exit cleanly would stop this one.
    let _ = std::fs::remove_file(&socket);

    let log = if access_log.starts_with('/') { access_log } else { prefix.root.join(&access_log).display().to_string() };
    let ship_stats = match ship {
        Some(opts) => Some(crate::ship::start_with(opts, log.clone().into(), state_dir).map_err(Failure::other)?),
        None => None,
    };
    let status = Arc::new(Mutex::new(Status { config_path: config_path.display().to_string(), ship_stats, ..Status::default() }));
    daemon::serve_status(args.status_listen.0, status.clone()).await.map_err(Failure::other)?;

    tracing::info!(prefix = %prefix.root.display(), access_log = %log, ?listen, "starting nginx");
    let mut cmd = prefix.command(&[]);
    // Its own process group: Ctrl-C reaches pullgate only, which stops nginx gracefully.
    cmd.process_group(0);
    // If pullgate dies without stopping nginx (SIGKILL, a crash), nginx stops too.
    // SAFETY: prctl in the forked child before exec touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Failure::other(nginx::NginxError::Spawn { binary: nginx::binary(), source }))?;
    let pid = child.id().expect("running child has a pid") as i32;

    let version = applier.version().unwrap_or_default().to_string();
    tokio::select! {
        status = child.wait() => return exited(status),
        verified = applier.wait_for_version(&version) => verified.map_err(Failure::from_apply)?,
    }
    tracing::info!(%version, "nginx serves the config");

    {
        let mut s = status.lock().expect("status lock");
        s.serving_version = Some(version);
        s.last_reload_ok = Some(daemon::status::now());
    }
    let daemon = Daemon::new(config_path.to_path_buf(), applier, status, args.debounce(), args.min_interval(), args.health());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watching = tokio::spawn(daemon.run(events, async {
        let _ = stop_rx.await;
    }));

    let mut term = signal(SignalKind::terminate()).map_err(Failure::other)?;
    let why = tokio::select! {
        status = child.wait() => {
            let _ = stop_tx.send(());
            return exited(status);
        }
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = term.recv() => "terminate",
        _ = watching => "the watcher stopped",
    };
    let _ = stop_tx.send(());
    tracing::info!(reason = why, "stopping nginx gracefully");
    // SIGQUIT: nginx finishes in-flight requests, then exits.
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    exited(child.wait().await)
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Result<(), Failure> {
    match status {
        Ok(s) if s.success() => {
            tracing::info!("nginx stopped");
            Ok(())
        }
        Ok(s) => Err(Failure::other(format!("nginx exited with {s}"))),
        Err(e) => Err(Failure::other(e)),
    }
}
