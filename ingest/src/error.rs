//! Errors of the ingest crate.

use std::path::PathBuf;

/// Everything that can go wrong while opening a lake or ingesting into it.
/// Problems with individual records are not errors: they become dead letters.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The user's input: a path that is not a lake.
    #[error("{path} is not a fnwatch lake: {why}")]
    NotALake { path: String, why: String },

    /// The user's input: a lake written by a newer fnwatch.
    #[error(
        "{path} was written by a newer fnwatch (lake format {found}, this build reads up to {supported}): upgrade fnwatch to read it"
    )]
    NewerLake {
        path: String,
        found: u32,
        supported: u32,
    },

    /// The user's input: a lake location this build cannot use.
    #[error("unsupported lake location `{location}`: {why}")]
    UnsupportedLocation { location: String, why: String },

    /// The user's input: an input file that cannot be read at all.
    #[error("cannot read {path}: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An outside system: the lake's storage.
    #[error("lake storage at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// An outside system: the object store holding the lake.
    #[error("lake storage at {path}: {source}")]
    ObjectStore {
        path: String,
        #[source]
        source: Box<deltalake::logstore::object_store::Error>,
    },

    /// An outside system (or concurrent writer): the Delta table.
    #[error("delta table {table}: {step}: {source}")]
    Delta {
        table: String,
        step: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },

    /// An outside system: the stream being read (Kinesis).
    #[error("{0}")]
    Source(String),

    /// Our bug: an internal invariant broke.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// Whether a Delta commit was refused because a concurrent commit wrote
    /// the same application transaction (another worker committed the same
    /// shard or file position).
    pub fn is_commit_conflict(&self) -> bool {
        use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
        matches!(
            self,
            IngestError::Delta { source, .. }
                if matches!(
                    source.as_ref(),
                    deltalake::DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(
                            CommitConflictError::ConcurrentTransaction
                        )
                    }
                )
        )
    }
}

/// Result alias of the ingest crate.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
