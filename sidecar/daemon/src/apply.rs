//! Apply routes.yaml to a running nginx: validate, render, check the staged
//! set with `nginx -t`, swap it in, reload, and verify that nginx serves it.
//! On any failure the last good config stays (or is put back) and serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use pullgate_config::{Config, ConfigError, Origin, Target};
use pullgate_nginx::{self as nginx, Nginx, NginxError};
use pullgate_render::{self as render, RenderError, Rendered};

use crate::health::HealthMap;
use crate::indexes::{IndexFeed, Indexes, Pass, Published};
use crate::publish::{PublishError, Publisher};
use crate::source::Source;

/// How nginx is told to reload.
#[derive(Debug, Clone)]
pub enum ReloadMethod {
    /// SIGHUP to the master process whose pid is in this file.
    PidFile(PathBuf),
    /// Run this command (e.g. `nginx -s reload`, or `docker kill -s HUP nginx`).
    Command(Vec<String>),
}

/// Why a change did not go live. The previous config is still serving.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("{0}")]
    Nginx(#[from] NginxError),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Credentials(#[from] crate::source::CredentialsError),
    #[error("reload: {0}")]
    Reload(String),
    #[error("{stage}: the task stopped: {message}")]
    Task { stage: &'static str, message: String },
    #[error("nginx still serves config {got:?} {waited:?} after the reload, not {want} (see nginx's error log); the previous config was put back")]
    Verify { want: String, got: Option<String>, waited: Duration },
}

impl ApplyError {
    /// The stage that failed, for metrics.
    pub fn stage(&self) -> &'static str {
        match self {
            ApplyError::Config(_) | ApplyError::Credentials(_) => "validate",
            ApplyError::Render(_) => "render",
            ApplyError::Nginx(NginxError::Rejected { .. }) => "check",
            ApplyError::Nginx(_) | ApplyError::Publish(_) => "swap",
            ApplyError::Reload(_) => "reload",
            ApplyError::Task { stage, .. } => stage,
            ApplyError::Verify { .. } => "verify",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new config is serving.
    Applied { version: String },
    /// Only route targets changed: the table is published, nginx not reloaded.
    Published { table: String },
    /// Nothing that matters changed.
    Unchanged,
}

/// What a prepared change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The nginx config changed: check, swap, reload, verify.
    Structural,
    /// Only the route table changed (Lua mode): publish it.
    TableOnly,
}

pub struct Applier {
    /// The nginx that checks each change.
    pub nginx: Nginx,
    /// routes.yaml and the system defaults it is read with.
    pub source: Source,
    /// Where the live include set is written (nginx includes it from here).
    pub live_dir: PathBuf,
    /// Scratch space for `nginx -t`.
    pub scratch: PathBuf,
    /// The control socket the rendered config listens on.
    pub control_socket: PathBuf,
    pub reload: ReloadMethod,
    pub verify_timeout: Duration,
    /// The config as served (after health) and its rendering.
    last_good: Option<(Config, Rendered)>,
    /// routes.yaml as last read successfully, before health is applied.
    last_source: Option<Config>,
    /// The route items of the last read, so that the next parses only what changed.
    reparser: pullgate_config::Reparser,
    pub publisher: Publisher,
    /// The index routes' upstream documents, fetched in a task of their own.
    pub indexes: IndexFeed,
    /// The index snapshot `last_good` was rendered with...
    applied_indexes: Arc<Published>,
    /// ... and the one of the change being prepared.
    prepared_indexes: Arc<Published>,
    /// The upstream credentials `last_good` was rendered with, and the prepared change's.
    applied_secrets: std::collections::BTreeMap<String, String>,
    prepared_secrets: std::collections::BTreeMap<String, String>,
}

impl Applier {
    pub fn new(
        nginx: Nginx,
        source: Source,
        live_dir: PathBuf,
        scratch: PathBuf,
        control_socket: PathBuf,
        reload: ReloadMethod,
        indexes: IndexFeed,
    ) -> Applier {
        let publisher = Publisher::new(live_dir.clone());
        Applier {
            nginx,
            source,
            live_dir,
            scratch,
            control_socket,
            reload,
            verify_timeout: Duration::from_secs(10),
            last_good: None,
            last_source: None,
            reparser: Default::default(),
            publisher,
            indexes,
            applied_indexes: Arc::default(),
            prepared_indexes: Arc::default(),
            applied_secrets: Default::default(),
            prepared_secrets: Default::default(),
        }
    }

    /// Index routes the serving config serves from the cache (their upstream failed).
    pub fn stale_indexes(&self) -> Vec<String> {
        self.applied_indexes.snapshot.stale.iter().cloned().collect()
    }

    pub fn version(&self) -> Option<&str> {
        self.last_good.as_ref().map(|(_, r)| r.version.as_str())
    }

    /// routes.yaml as last read successfully (before health is applied).
    pub fn config(&self) -> Option<&Config> {
        self.last_source.as_ref()
    }

    /// The access log the serving config names.
    pub fn access_log(&self) -> Option<PathBuf> {
        self.last_source.as_ref().map(|c| PathBuf::from(&c.gateway.access_log))
    }

    /// Upstreams that routes fail over between, in the last good routes.yaml.
    pub fn failover_origins(&self) -> Vec<Origin> {
        self.last_source.as_ref().map(Config::failover_origins).unwrap_or_default()
    }

    /// For each route with fallbacks, the upstream it is served from.
    pub fn serving_upstreams(&self) -> Vec<(String, String)> {
        let Some((config, _)) = &self.last_good else { return Vec::new() };
        config
            .routes
            .iter()
            .filter_map(|r| match &r.target {
                Target::Oci(o) if !o.fallbacks.is_empty() => Some((r.name.clone(), o.upstream.origin.to_string())),
                _ => None,
            })
            .collect()
    }

    /// Validate, render and check routes.yaml as `health` says it should be
    /// served, without touching nginx: the first step of starting nginx, and
    /// of every change. `None`: nothing to do.
    pub async fn prepare(&mut self, health: &HealthMap) -> Result<Option<(Config, Rendered, Change)>, ApplyError> {
        let started = Instant::now();
        let source = self.source.reload(&mut self.reparser)?;
        let loaded_at = started.elapsed();
        let config = source.with_health(|o| health.is_healthy(o));
        self.indexes.want(&source);
        if self.last_good.is_none() {
            // The first config: with its documents, unless they take too long.
            self.indexes.caught_up(crate::indexes::FIRST_WAIT).await;
        }
        let indexes = self.indexes.current();
        self.last_source = Some(source);
        let secrets = crate::source::credentials(&config, &self.source.vars)?;
        let unchanged = self.last_good.as_ref().is_some_and(|(c, _)| *c == config)
            && self.applied_indexes.generation == indexes.generation
            && self.applied_secrets == secrets;
        if unchanged {
            return Ok(None);
        }
        self.prepared_indexes = indexes.clone();
        self.prepared_secrets = secrets.clone();
        let socket = self.control_socket.display().to_string();
        let dir = self.live_dir.display().to_string();
        let options = render::Options {
            control_socket: Some(&socket),
            dir: Some(&dir),
            indexes: Some(&indexes.snapshot),
            credentials: Some(&secrets),
        };
        let rendered = render::render_with(&config, options)?;
        let rendered_at = started.elapsed();
        tracing::debug!(load = ?loaded_at, render = ?(rendered_at - loaded_at), "rendered");
        if let Some((_, good)) = &self.last_good {
            if good.version == rendered.version {
                if good.table == rendered.table {
                    return Ok(None);
                }
                return Ok(Some((config, rendered, Change::TableOnly)));
            }
        }
        let (staged, scratch, nginx) = (rendered.clone(), self.scratch.clone(), self.nginx.clone());
        tokio::task::spawn_blocking(move || nginx.check(&staged, &scratch))
            .await
            .map_err(|e| ApplyError::Task { stage: "check", message: e.to_string() })??;
        tracing::debug!(load_and_render = ?rendered_at, nginx_t = ?(started.elapsed() - rendered_at), "prepared");
        Ok(Some((config, rendered, Change::Structural)))
    }

    /// Write a prepared set (and publish its table) without reloading: for a first start of nginx.
    pub async fn install(&mut self, prepared: (Config, Rendered, Change)) -> Result<(), ApplyError> {
        let (config, rendered, _) = prepared;
        self.publisher.set_redis(config.gateway.redis.as_ref());
        nginx::write_set(&rendered, &self.live_dir)?;
        if let Some(table) = &rendered.table {
            self.publisher.publish(table).await?;
        }
        self.remember(config, rendered);
        Ok(())
    }

    /// Bring routes.yaml live, or leave the last good config serving.
    pub async fn apply(&mut self, health: &HealthMap) -> Result<Outcome, ApplyError> {
        let Some((config, rendered, change)) = self.prepare(health).await? else { return Ok(Outcome::Unchanged) };
        self.publisher.set_redis(config.gateway.redis.as_ref());
        // The table first: the workers a reload starts read it before serving.
        if let Some(table) = &rendered.table {
            let started = Instant::now();
            self.publisher.publish(table).await?;
            tracing::debug!(publish = ?started.elapsed(), "table published");
        }
        if change == Change::TableOnly {
            let table = rendered.table.as_ref().map(|t| t.version.clone()).unwrap_or_default();
            self.remember(config, rendered);
            return Ok(Outcome::Published { table });
        }
        nginx::write_set(&rendered, &self.live_dir)?;
        let live = self.reload_and_verify(&rendered.version).await;
        if let Err(e) = live {
            self.restore().await;
            return Err(e);
        }
        let version = rendered.version.clone();
        self.remember(config, rendered);
        Ok(Outcome::Applied { version })
    }

    /// What nginx serves now, with the index snapshot and credentials it was rendered with.
    fn remember(&mut self, config: Config, rendered: Rendered) {
        self.last_good = Some((config, rendered));
        self.applied_indexes = self.prepared_indexes.clone();
        self.applied_secrets = self.prepared_secrets.clone();
    }

    /// Put the last good set back and reload; best effort, after a failure.
    async fn restore(&mut self) {
        let Some((good_config, good)) = self.last_good.clone() else { return };
        self.publisher.set_redis(good_config.gateway.redis.as_ref());
        if let Some(table) = &good.table {
            if let Err(e) = self.publisher.publish(table).await {
                tracing::error!(error = %e, "could not put the last good route table back");
            }
        }
        let good = &good;
        if let Err(e) = nginx::write_set(good, &self.live_dir) {
            tracing::error!(error = %e, "could not put the last good config back");
            return;
        }
        if let Err(e) = self.reload_and_verify(&good.version).await {
            tracing::error!(error = %e, "reloading the last good config failed");
        }
    }

    /// Reload, and return once only workers of `want` accept connections.
    ///
    /// nginx's master starts the new workers, pauses 100 ms, and only then
    /// tells the old ones to stop accepting: for that pause a new
    /// connection may still reach the old config after a new worker has
    /// answered. So, with the master's pid known, wait until every worker
    /// that was accepting before the reload has left or is shutting down
    /// (its title says so before it closes its listeners); without it,
    /// wait out the pause.
    async fn reload_and_verify(&self, want: &str) -> Result<(), ApplyError> {
        let started = Instant::now();
        let old = self.accepting_workers();
        self.signal_reload().await?;
        self.wait_for_version(want).await?;
        match old {
            Some((master, mut old)) => loop {
                let now = accepting(master);
                old.retain(|pid| now.contains(pid));
                if old.is_empty() {
                    break;
                }
                if started.elapsed() > self.verify_timeout {
                    tracing::warn!(?old, "old nginx workers still accept connections after the reload");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            },
            None => tokio::time::sleep(MASTER_PAUSE).await,
        }
        tracing::debug!(reload_and_verify = ?started.elapsed(), "reloaded");
        Ok(())
    }

    /// nginx's master and its workers that accept connections now, where
    /// the master is known by its pid file (none yet: none accept).
    fn accepting_workers(&self) -> Option<(i32, Vec<i32>)> {
        let ReloadMethod::PidFile(path) = &self.reload else { return None };
        match pullgate_base::process::read_pid_file(path) {
            Ok(master) => Some((master, accepting(master))),
            Err(_) => Some((0, Vec::new())),
        }
    }

    async fn signal_reload(&self) -> Result<(), ApplyError> {
        match &self.reload {
            ReloadMethod::PidFile(path) => match pullgate_base::process::signal_pid_file(path, libc::SIGHUP) {
                Ok(()) => Ok(()),
                // An nginx that is starting (a container started beside
                // this one, waiting for the first config) reads the files
                // as they are now: the version check that follows says
                // whether it came up with them.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.last_good.is_none() => {
                    tracing::info!(pid_file = %path.display(), "nginx is not running yet: waiting for it to start with this config");
                    Ok(())
                }
                Err(e) => Err(ApplyError::Reload(format!("SIGHUP to nginx by {}: {e}", path.display()))),
            },
            ReloadMethod::Command(argv) => {
                let (program, args) = argv.split_first().ok_or_else(|| ApplyError::Reload("empty reload command".into()))?;
                let out = tokio::process::Command::new(program)
                    .args(args)
                    .output()
                    .await
                    .map_err(|e| ApplyError::Reload(format!("{program}: {e}")))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(ApplyError::Reload(format!("{argv:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())))
                }
            }
        }
    }

    /// Poll the control socket until nginx answers with `want`.
    pub async fn wait_for_version(&self, want: &str) -> Result<(), ApplyError> {
        let start = Instant::now();
        let mut got = None;
        while start.elapsed() < self.verify_timeout {
            got = serving_version(&self.control_socket).await;
            if got.as_deref() == Some(want) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(ApplyError::Verify { want: want.to_string(), got, waited: start.elapsed() })
    }
}

/// How long nginx's master waits between starting new workers and
/// telling the old ones to stop (100 ms in ngx_master_process_cycle), with
/// a margin.
const MASTER_PAUSE: Duration = Duration::from_millis(150);

/// The workers of nginx's `master` that accept connections: those not yet
/// told to shut down.
fn accepting(master: i32) -> Vec<i32> {
    pullgate_base::process::children(master).into_iter().filter(|(_, title)| title == "nginx: worker process").map(|(pid, _)| pid).collect()
}

/// `pullgate render`: render routes.yaml for the include set in `dir`, check
/// it with `nginx -t` first if asked (writing nothing if nginx refuses it),
/// and write it with its route table and the index routes' documents
/// (fetched now; kept in `index_cache` when given, and served from there
/// when an upstream does not answer). Returns the names of the files
/// written, the index documents counted rather than named.
pub fn render_into(
    nginx: &Nginx,
    source: &Source,
    dir: &Path,
    scratch: &Path,
    check: bool,
    index_cache: Option<PathBuf>,
) -> Result<Vec<String>, ApplyError> {
    let config = source.load()?;
    std::fs::create_dir_all(dir).map_err(|e| NginxError::Io { path: dir.to_path_buf(), source: e })?;
    // Lua mode refers to the Lua files and the route table by absolute path.
    let abs = dir.canonicalize().map_err(|e| NginxError::Io { path: dir.to_path_buf(), source: e })?.display().to_string();
    // Only a config with index routes needs an HTTP client and a runtime.
    let snapshot = if config.routes.iter().any(|r| matches!(r.target, Target::Index(_))) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApplyError::Task { stage: "fetch", message: e.to_string() })?;
        let mut indexes = Indexes::new(index_cache);
        rt.block_on(indexes.sync(&config, Pass::All));
        indexes.snapshot().clone()
    } else {
        Default::default()
    };
    let secrets = crate::source::credentials(&config, &source.vars)?;
    let options = render::Options { control_socket: None, dir: Some(&abs), indexes: Some(&snapshot), credentials: Some(&secrets) };
    let rendered = render::render_with(&config, options)?;
    if check {
        nginx.check(&rendered, scratch)?;
    }
    nginx::write_set(&rendered, dir)?;
    let index_prefix = format!("{}/", render::INDEX_DIR);
    let mut names: Vec<String> = rendered.files.iter().map(|(n, _)| n.clone()).filter(|n| !n.starts_with(&index_prefix)).collect();
    let docs = rendered.files.len() - names.len();
    if docs > 0 {
        names.push(format!("{docs} index documents under {index_prefix}"));
    }
    if let Some(table) = &rendered.table {
        nginx::write_file(&dir.join(render::TABLE_FILE), &table.text(pullgate_base::clock::now_ms()))?;
        names.push(render::TABLE_FILE.to_string());
    }
    Ok(names)
}

/// The config version nginx answers on its control socket, if it answers.
pub async fn serving_version(socket: &Path) -> Option<String> {
    let ask = async {
        let mut s = tokio::net::UnixStream::connect(socket).await.ok()?;
        s.write_all(b"GET /pullgate/config HTTP/1.0\r\nHost: pullgate\r\n\r\n").await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8(buf).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.trim().to_string())
    };
    tokio::time::timeout(Duration::from_secs(1), ask).await.ok().flatten()
}
