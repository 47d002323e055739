//! pullgate: serve container images and artifacts from your own domain with
//! stock nginx, and see who uses them.

pub mod cli;
pub mod config;
pub mod nginx;
pub mod render;
pub mod state;
pub mod up;

/// How a command failed: an invalid routes.yaml (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum Failure {
    Invalid(config::ConfigError),
    Other(Box<dyn std::error::Error + Send + Sync>),
}
