//! `pullgate run`: the sidecar for an nginx that pullgate does not start.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::{DaemonArgs, ShipOpts};
use crate::daemon::{self, status::Status, Applier, Daemon, Events, Outcome, ReloadMethod};
use crate::Failure;

pub fn run(
    config_path: &Path,
    state_dir: &Path,
    args: &DaemonArgs,
    out: PathBuf,
    reload: ReloadMethod,
    socket: PathBuf,
    ship: Option<(Option<PathBuf>, &ShipOpts)>,
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
        // Ship the log named on the command line, or the one routes.yaml names by absolute path.
        let ship_stats = match ship {
            Some((log, opts)) => match log.or_else(|| applier.access_log().filter(|l| l.is_absolute())) {
                Some(log) => Some(crate::ship::start_with(opts, log, state_dir).map_err(Failure::other)?),
                None => {
                    tracing::warn!("the access log is not shipped: give --access-log (routes.yaml names it by a relative path)");
                    None
                }
            },
            None => None,
        };
        let status = Arc::new(Mutex::new(Status {
            ship_stats,
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
