//! `pullgate run`: the sidecar for an nginx that pullgate does not start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::DaemonArgs;
use crate::daemon::{self, status::Status, Applier, Daemon, Events, Outcome, ReloadMethod};
use crate::Failure;

pub fn run(
    config_path: &Path,
    state_dir: &Path,
    args: &DaemonArgs,
    out: PathBuf,
    reload: ReloadMethod,
    socket: PathBuf,
) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Failure::other)?;
    rt.block_on(async {
        let mut applier = Applier::new(out, state_dir.join("scratch"), socket, reload);
        let events = Events::watch(config_path).map_err(|e| Failure::other(format!("watching {}: {e}", config_path.display())))?;
        let version = match applier.apply(config_path, &Default::default()).await.map_err(Failure::from_apply)? {
            Outcome::Applied { version } => version,
            Outcome::Published { .. } | Outcome::Unchanged => unreachable!("nothing is live yet: the first change is structural"),
        };
        tracing::info!(%version, "nginx serves the config");
        let status = Arc::new(Mutex::new(Status {
            config_path: config_path.display().to_string(),
            serving_version: Some(version),
            reloads_ok: 1,
            last_reload_ok: Some(daemon::status::now()),
            ..Status::default()
        }));
        daemon::serve_status(args.status_listen.0, status.clone()).await.map_err(Failure::other)?;
        let daemon = Daemon::new(config_path.to_path_buf(), applier, status, args.debounce(), args.min_interval(), args.health());
        let stop = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        daemon.run(events, stop).await;
        Ok(())
    })
}
