//! The sensor's errors.

use std::time::Duration;

/// What went wrong, with what a reader of the function's logs needs to act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting in the function's environment is missing or invalid.
    #[error("environment variable `{name}`: {why}")]
    Config { name: &'static str, why: String },
    /// The Lambda API (Extensions or Telemetry) could not be reached or
    /// answered an error.
    #[error("{what} at {addr}: {why}")]
    LambdaApi {
        what: &'static str,
        addr: String,
        why: String,
    },
    /// A local resource (socket, listener) could not be set up.
    #[error("{what} `{path}`: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The shipping of events did not finish in time.
    #[error("flushing events did not finish within {0:?}")]
    FlushTimeout(Duration),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
