//! `pullgate up` and `pullgate run`: one bootstrap. Watch routes.yaml (before
//! the first read, so that no edit falls between), bring the first config
//! live, ship the access log, answer on the status endpoint, then keep nginx
//! serving the latest good routes.yaml until a signal (or, for `up`, nginx
//! itself) ends it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pullgate_daemon::{resolver, Applier, Daemon, Events, IndexFeed, Outcome, ReloadMethod, Source, Status};
use pullgate_nginx::Prefix;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{DaemonArgs, ShipOpts};
use crate::env::Env;
use crate::error::CliError;
use crate::report::Live;

/// Whose nginx serves the config.
pub enum Nginx {
    /// `up`: pullgate runs nginx in the foreground on a prefix under the state directory.
    Own,
    /// `run`: an nginx someone else runs, whose nginx.conf includes `out/pullgate.conf`.
    External {
        out: PathBuf,
        reload: ReloadMethod,
        /// The control socket the rendered config answers on.
        socket: PathBuf,
        /// The access log to ship; default routes.yaml's, if it is absolute.
        access_log: Option<PathBuf>,
    },
}

pub struct Serve<'a> {
    pub env: &'a Env,
    pub config: &'a Path,
    pub state_dir: &'a Path,
    pub daemon: &'a DaemonArgs,
    /// How to ship the access log; `None`: not at all.
    pub ship: Option<&'a ShipOpts>,
    /// Rotate the access log past this size (see `RotateOpts`).
    pub rotate_log_bytes: Option<u64>,
    /// Ingest what is shipped to the local sink into the analytics store.
    pub analytics: bool,
    /// The analytics store: what the ingest writes and the dashboard reads.
    pub store: crate::cli::StoreArgs,
    /// Serve the dashboard so.
    pub dashboard: Option<&'a crate::cli::DashboardOpts>,
    pub nginx: Nginx,
}

impl Serve<'_> {
    pub fn run(self) -> Result<(), CliError> {
        let rt = crate::error::runtime()?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> Result<(), CliError> {
        let source = Source { path: self.config.to_path_buf(), resolv_conf: self.env.resolv_conf.clone(), vars: self.env.vars.clone() };
        let events =
            Events::watch(self.config).map_err(|source| pullgate_daemon::DaemonError::Watch { path: self.config.to_path_buf(), source })?;
        let scratch = self.state_dir.join("scratch");
        let now = pullgate_base::clock::now_secs();
        let mut status = Status { config_path: self.config.display().to_string(), started_at: Some(now), ..Status::default() };

        // The index routes' documents, fetched beside the daemon's loop.
        let indexes = IndexFeed::start(Some(self.state_dir.join("index")), self.daemon.index_refresh());
        // The first config, live or ready to start.
        let (applier, prefix, log) = match &self.nginx {
            Nginx::Own => {
                let prefix =
                    Prefix::create(self.env.nginx.clone(), self.state_dir.join("nginx")).map_err(pullgate_daemon::ApplyError::from)?;
                let socket = prefix.root.join("control.sock");
                let reload = ReloadMethod::PidFile(prefix.pid_file());
                let mut applier = Applier::new(self.env.nginx.clone(), source, prefix.conf_dir(), scratch, socket.clone(), reload, indexes);
                let prepared = applier.prepare(&Default::default()).await?.expect("nothing is live yet");
                let (access_log, lua) = (prepared.0.gateway.access_log.clone(), prepared.1.table.is_some());
                applier.install(prepared).await?;
                prefix.install_main(true, "stderr", lua).map_err(pullgate_daemon::ApplyError::from)?;
                // A socket file left by an nginx that did not exit cleanly would stop this one.
                let _ = std::fs::remove_file(&socket);
                let log = if access_log.starts_with('/') { PathBuf::from(access_log) } else { prefix.root.join(&access_log) };
                (applier, Some(prefix), Some(log))
            }
            Nginx::External { out, reload, socket, access_log } => {
                let mut applier =
                    Applier::new(self.env.nginx.clone(), source, out.clone(), scratch, socket.clone(), reload.clone(), indexes);
                let version = match applier.apply(&Default::default()).await? {
                    Outcome::Applied { version } => version,
                    Outcome::Published { .. } | Outcome::Unchanged => unreachable!("nothing is live yet: the first change is structural"),
                };
                tracing::info!(%version, "nginx serves the config");
                (status.serving_version, status.reloads_ok, status.last_reload_ok) = (Some(version), 1, Some(now));
                let log = access_log.clone().or_else(|| applier.access_log().filter(|l| l.is_absolute()));
                (applier, None, log)
            }
        };
        if let Some(config) = applier.config() {
            tokio::spawn(warn_silent_resolvers(config.gateway.resolver.clone(), config.gateway.resolver_from_system));
        }
        // The store the flags name, else routes.yaml's `analytics`, else SQLite.
        let store = store_args(self.store.clone(), applier.config().and_then(|c| c.analytics.as_ref()), &self.env.vars)?;

        let ship = match (self.ship, log.clone()) {
            (Some(opts), Some(log)) => {
                let stats = Arc::new(pullgate_ship::Stats::default());
                let args = opts.ship_args(log, self.state_dir)?;
                let follow = match &args.sink {
                    pullgate_ship::sink::Settings::Local { dir, .. } => Some(crate::analytics::Follow::Local(dir.clone())),
                    pullgate_ship::sink::Settings::CloudWatch(cw) => Some(crate::analytics::Follow::CloudWatch {
                        group: cw.group.clone(),
                        region: cw.region.clone(),
                        endpoint: cw.endpoint.clone(),
                    }),
                    pullgate_ship::sink::Settings::Null => None,
                };
                let idle = args.idle;
                pullgate_ship::start(args, stats.clone())?;
                if let Some(follow) = follow.filter(|_| self.analytics) {
                    crate::analytics::follow_in_background(follow, &store, self.state_dir, idle)?;
                }
                Some(stats)
            }
            (Some(_), None) => {
                tracing::warn!("the access log is not shipped: give --access-log (routes.yaml names it by a relative path)");
                None
            }
            (None, _) => None,
        };
        if let Some(max) = self.rotate_log_bytes {
            let pid_file = match (&self.nginx, &prefix) {
                (_, Some(p)) => Some(p.pid_file()),
                (Nginx::External { reload: ReloadMethod::PidFile(p), .. }, None) => Some(p.clone()),
                _ => None,
            };
            match (log.clone(), pid_file) {
                (Some(log), Some(pid_file)) => {
                    let checkpoint = ship.is_some().then(|| pullgate_ship::checkpoint_file(&self.state_dir.join("ship")));
                    tokio::spawn(rotate_log(log, checkpoint, max, pid_file));
                }
                (None, _) => tracing::warn!("the access log is not rotated: give --access-log"),
                (_, None) => tracing::warn!("the access log is not rotated: that needs --pid-file (nginx reopens it on SIGUSR1)"),
            }
        }
        if let Some(opts) = self.dashboard {
            let store = &store;
            let routes = Source { path: self.config.to_path_buf(), resolv_conf: self.env.resolv_conf.clone(), vars: self.env.vars.clone() };
            let token = crate::dashboard::token(opts.dashboard_token_file.as_deref())?;
            // The gateway matters more than its dashboard: a taken port is said, not fatal.
            if let Err(e) = crate::dashboard::start(opts.dashboard_listen, store, self.state_dir, routes, token).await {
                tracing::warn!(error = %e, "no dashboard (give --dashboard-listen another address, or --no-dashboard)");
            }
        }
        let status = Arc::new(Mutex::new(status));
        let live = Arc::new(Live { status: status.clone(), ship });
        pullgate_daemon::serve_status(self.daemon.status_listen.0, live).await?;

        let mut child = match &prefix {
            Some(prefix) => {
                let log = log.as_deref().map(|l| l.display().to_string()).unwrap_or_default();
                let child = start_nginx(prefix, &log)?;
                Some(child)
            }
            None => None,
        };
        if let Some(c) = child.as_mut() {
            let version = applier.version().unwrap_or_default().to_string();
            tokio::select! {
                exit = c.wait() => return exited(exit),
                verified = applier.wait_for_version(&version) => verified?,
            }
            tracing::info!(%version, "nginx serves the config");
            let mut s = status.lock().expect("status lock");
            (s.serving_version, s.last_reload_ok) = (Some(version), Some(pullgate_base::clock::now_secs()));
        }

        let daemon = Daemon::new(applier, status, self.daemon.debounce(), self.daemon.min_interval(), self.daemon.health());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut watching = tokio::spawn(daemon.run(events, async {
            let _ = stop_rx.await;
        }));
        let mut term = signal(SignalKind::terminate()).map_err(CliError::io("SIGTERM handler"))?;
        let nginx_exit = async {
            match child.as_mut() {
                Some(c) => c.wait().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            exit = nginx_exit => {
                let _ = stop_tx.send(());
                return exited(exit);
            }
            _ = tokio::signal::ctrl_c() => "interrupt",
            _ = term.recv() => "terminate",
            _ = &mut watching => "the watcher stopped",
        };
        let _ = stop_tx.send(());
        let Some(mut child) = child else {
            tracing::info!(reason = why, "stopping");
            let _ = tokio::time::timeout(Duration::from_secs(5), watching).await;
            return Ok(());
        };
        tracing::info!(reason = why, "stopping nginx gracefully");
        if let Some(pid) = child.id() {
            // SIGQUIT: nginx finishes in-flight requests, then exits.
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGQUIT) };
        }
        exited(child.wait().await)
    }
}

/// nginx in the foreground, in its own process group (Ctrl-C reaches
/// pullgate only, which stops nginx gracefully), stopped by the kernel if
/// pullgate dies without stopping it (SIGKILL, a crash).
fn start_nginx(prefix: &Prefix, access_log: &str) -> Result<tokio::process::Child, CliError> {
    tracing::info!(prefix = %prefix.root.display(), access_log, "starting nginx");
    let mut cmd = prefix.command(&[]);
    cmd.process_group(0);
    // SAFETY: prctl in the forked child before exec touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::Apply(pullgate_daemon::ApplyError::Nginx(prefix.spawn_error(e))))
}

fn exited(status: std::io::Result<std::process::ExitStatus>) -> Result<(), CliError> {
    match status {
        Ok(s) if s.success() => {
            tracing::info!("nginx stopped");
            Ok(())
        }
        Ok(s) => Err(CliError::NginxExited(s)),
        Err(e) => Err(CliError::Io { what: "waiting for nginx".into(), source: e }),
    }
}

/// Every 5 s, rotate the access log if it is due, then have nginx reopen it.
async fn rotate_log(log: PathBuf, checkpoint: Option<PathBuf>, max: u64, pid_file: PathBuf) {
    let mut waiting_said = false;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        match pullgate_ship::rotate_if_due(&log, checkpoint.as_deref(), max) {
            Ok(pullgate_ship::Rotation::NotDue) => waiting_said = false,
            Ok(pullgate_ship::Rotation::Waiting) => {
                if !waiting_said {
                    tracing::warn!(log = %log.display(), "the access log is due for rotation, but the one before it is not shipped yet");
                    waiting_said = true;
                }
            }
            Ok(pullgate_ship::Rotation::Rotated { deleted }) => match pullgate_base::process::signal_pid_file(&pid_file, libc::SIGUSR1) {
                Ok(()) => tracing::info!(log = %log.display(), deleted_bytes = ?deleted, "rotated the access log"),
                // nginx keeps appending to LOG.1, which is still shipped, until
                // a reopen or a reload gives it a new LOG.
                Err(e) => {
                    tracing::error!(pid_file = %pid_file.display(), error = %e, "rotated the access log, but could not signal nginx to reopen it")
                }
            },
            Err(e) => tracing::error!(log = %log.display(), error = %e, "rotating the access log failed"),
        }
    }
}

/// Say, once at start, which configured DNS servers do not answer: nginx
/// would answer every proxied request to a host name with a 502.
async fn warn_silent_resolvers(list: Vec<String>, from_system: bool) {
    for r in resolver::silent(&list, Duration::from_secs(2)).await {
        let whence = if from_system { " (from /etc/resolv.conf)" } else { "" };
        tracing::warn!(resolver = %r, "the DNS server{whence} does not answer: proxied requests to upstream host names will fail; set `gateway.resolver`");
    }
}

/// The store flags, completed from routes.yaml's `analytics` when they name
/// none: its URL, and its account from a file or one of the sidecar's
/// variables (said by name when missing, never by value).
fn store_args(
    mut store: crate::cli::StoreArgs,
    from_config: Option<&pullgate_config::AnalyticsStore>,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<crate::cli::StoreArgs, CliError> {
    let Some(a) = from_config.filter(|_| store.store.is_none() && store.db.is_none()) else { return Ok(store) };
    store.store = Some(a.url.clone());
    match &a.account {
        Some(pullgate_config::Credentials::File(f)) if store.store_account_file.is_none() => store.store_account_file = Some(f.into()),
        Some(pullgate_config::Credentials::Env(name)) => {
            let value = vars
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| CliError::Usage(format!("routes.yaml: analytics.account.env names {name}, which is not set")))?;
            let account = crate::analytics::account(value, &format!("routes.yaml: analytics.account.env: {name}"))?;
            store.account_env = Some((account.user, account.password));
        }
        _ => {}
    }
    Ok(store)
}
