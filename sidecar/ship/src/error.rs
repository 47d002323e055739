//! The one error type of shipping.

use std::path::PathBuf;

/// Why shipping could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{what} {}: {source}", .path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// A file named on the command line that cannot be used (a MaxMind DB, a range file).
    #[error("{}: {message}", .path.display())]
    Input { path: PathBuf, message: String },
    #[error("CloudWatch Logs: {0}")]
    CloudWatch(String),
    #[error("the shipper's threads: {0}")]
    Thread(String),
    #[error("shipping stopped: {0}")]
    Stopped(String),
}
