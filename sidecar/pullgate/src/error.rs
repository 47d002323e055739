//! How a command fails, and with which exit code.

use pullgate_config::ConfigError;
use pullgate_daemon::{ApplyError, DaemonError};
use pullgate_ship::ShipError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// routes.yaml is invalid: every problem, as FILE:LINE:COL (exit 2).
    #[error("{0}")]
    Invalid(ConfigError),
    #[error(transparent)]
    Config(ConfigError),
    #[error(transparent)]
    Apply(ApplyError),
    #[error(transparent)]
    Daemon(DaemonError),
    #[error("shipping the access log: {0}")]
    Ship(#[from] ShipError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Analytics(#[from] pullgate_analytics::AnalyticsError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("nginx exited with {0}")]
    NginxExited(std::process::ExitStatus),
    #[error("no pullgate daemon answers on {addr}: {source}")]
    NoDaemon { addr: std::net::SocketAddr, source: std::io::Error },
}

impl CliError {
    /// Exit code 2 for an invalid routes.yaml, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Invalid(_) => 2,
            _ => 1,
        }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }
}

/// The single-threaded async runtime the commands that need one run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(CliError::io("the async runtime"))
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> CliError {
        match e {
            e @ ConfigError::Invalid { .. } => CliError::Invalid(e),
            e => CliError::Config(e),
        }
    }
}

impl From<ApplyError> for CliError {
    fn from(e: ApplyError) -> CliError {
        match e {
            ApplyError::Config(c) => c.into(),
            other => CliError::Apply(other),
        }
    }
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> CliError {
        match e {
            DaemonError::Apply(a) => a.into(),
            other => CliError::Daemon(other),
        }
    }
}
