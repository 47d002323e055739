//! The one error type of analytics.

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("the analytics store {path}: {source}")]
    Store { path: String, source: rusqlite::Error },
    #[error("the analytics store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("the analytics store {path} has schema version {found}; this pullgate knows up to {known}")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("{0}")]
    Query(String),
    /// The ClickHouse store answered with an error, or could not be reached.
    #[error("the ClickHouse store at {at}: {what}: {message}")]
    ClickHouse { at: String, what: String, message: String },
}
