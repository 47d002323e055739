//! `pullgate serve`, and the dashboard `up` and `run` start: the analytics
//! store and the repositories routes.yaml serves, handed to the dashboard.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pullgate_config::{RepoPattern, Target};
use pullgate_daemon::Source;

use crate::cli::StoreArgs;
use crate::error::CliError;

/// Whether routes.yaml serves a repository: read again when the file
/// changes, so badges follow the routes; an unreadable file serves none.
fn served(source: Source) -> pullgate_dashboard::Served {
    let cache: Mutex<(Option<std::time::SystemTime>, Vec<RepoPattern>)> = Mutex::new((None, Vec::new()));
    Box::new(move |repository: &str| {
        let mtime = std::fs::metadata(&source.path).and_then(|m| m.modified()).ok();
        let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.0 != mtime || mtime.is_none() {
            let patterns = source
                .load()
                .map(|config| {
                    config
                        .routes
                        .into_iter()
                        .filter_map(|r| match r.target {
                            Target::Oci(o) => Some(o.image),
                            Target::File(_) | Target::Index(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            *c = (mtime, patterns);
        }
        c.1.iter().any(|p| p.matches(repository))
    })
}

/// The token in `file` (trimmed): at least 16 characters.
pub fn token(file: Option<&Path>) -> Result<Option<String>, CliError> {
    let Some(file) = file else { return Ok(None) };
    let t = std::fs::read_to_string(file).map_err(CliError::io(format!("{}", file.display())))?.trim().to_string();
    if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control() || c == ';') {
        return Err(CliError::Usage(format!(
            "{}: a dashboard token is at least 16 characters, with no space or `;` (e.g. `openssl rand -hex 24`)",
            file.display()
        )));
    }
    Ok(Some(t))
}

/// Write a new random token to `file` (mode 0600) unless it exists: a
/// container's first start, with the token then read from the volume.
pub fn create_token(file: &Path) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 24];
    pullgate_base::fs::random_bytes(&mut bytes).map_err(CliError::io("/dev/urandom"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
        Ok(mut f) => {
            f.write_all(format!("{hex}\n").as_bytes()).map_err(CliError::io(format!("{}", file.display())))?;
            tracing::info!(file = %file.display(), "wrote a new dashboard token");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CliError::io(format!("{}", file.display()))(e)),
    }
}

/// Open the store and bind the address (both said at once if they fail),
/// then serve on the current runtime. Beyond loopback, only with a token.
pub async fn start(listen: SocketAddr, store: &StoreArgs, state_dir: &Path, routes: Source, token: Option<String>) -> Result<(), CliError> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "the dashboard would listen on {listen}, beyond this machine, with no token: give it one (--token-file), or listen on 127.0.0.1"
        )));
    }
    let db = crate::analytics::open(store, state_dir)?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(CliError::io(format!("the dashboard's address {listen}")))?;
    let d = Arc::new(pullgate_dashboard::Dashboard::new(db, served(routes), token));
    tracing::info!(%listen, "dashboard at http://{listen}/");
    tokio::spawn(async move {
        if let Err(e) = pullgate_dashboard::serve(listener, d).await {
            tracing::error!(error = %e, "the dashboard stopped");
        }
    });
    Ok(())
}

/// `pullgate serve`: the dashboard alone, until killed.
pub fn serve_cmd(
    listen: SocketAddr,
    store: &StoreArgs,
    state_dir: &Path,
    routes: PathBuf,
    resolv_conf: PathBuf,
    token_file: Option<&Path>,
) -> Result<(), CliError> {
    let token = token(token_file)?;
    let rt = crate::error::runtime()?;
    rt.block_on(async {
        start(listen, store, state_dir, Source { path: routes, resolv_conf, vars: Default::default() }, token).await?;
        // SIGTERM too: `docker stop`, systemd, and as a container's first
        // process nothing else would end it.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(CliError::io("SIGTERM handler"))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(CliError::io("waiting for Ctrl-C")),
            _ = term.recv() => Ok(()),
        }
    })
}
