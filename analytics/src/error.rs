//! Errors of the analytics crate.

/// What can go wrong opening a lake for SQL or running a query.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The lake could not be opened (not a lake, newer format, storage).
    #[error(transparent)]
    Lake(#[from] fnwatch_ingest::IngestError),

    /// The user's query is wrong: shown with the query and a caret.
    #[error("{message}{context}")]
    Sql { message: String, context: String },

    /// A saved SQL file (views, hunts) is wrong.
    #[error("{file}: {message}")]
    SavedQuery { file: String, message: String },

    /// Running the query failed (storage, resources).
    #[error("query failed: {0}")]
    Execution(String),

    /// An output's configuration is wrong.
    #[error("{0}")]
    Config(String),

    /// Delivering alerts to an output failed (after retries, where retrying helps).
    #[error("{0}")]
    Delivery(String),

    /// Writing the results failed.
    #[error("cannot write results: {0}")]
    Output(String),

    /// The SQL endpoint cannot start: its users file, TLS files, listen
    /// address or access rules are wrong.
    #[error("{0}")]
    Server(String),
}

/// Result alias of the analytics crate.
pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;
