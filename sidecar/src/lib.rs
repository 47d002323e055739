//! pullgate: serve container images and artifacts from your own domain with
//! stock nginx, and see who uses them.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod nginx;
pub mod render;
pub mod ship;
pub mod sidecar;
pub mod state;
pub mod up;

/// How a command failed: an invalid routes.yaml (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum Failure {
    Invalid(config::ConfigError),
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Failure {
    pub fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
        Failure::Other(e.into())
    }

    pub fn from_apply(e: daemon::ApplyError) -> Failure {
        match e {
            daemon::ApplyError::Config(c @ config::ConfigError::Invalid { .. }) => Failure::Invalid(c),
            other => Failure::other(other),
        }
    }
}
