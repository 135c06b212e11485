//! fnwatch-models: per-function behaviour baselines and scoring.
//!
//! This crate will learn each function's normal behaviour from the lake (the
//! schema of `fnwatch-ingest`) and score new invocations against it. It holds
//! no models yet; the binary depends on it so the crate graph is in place.

/// The lake schema the models read.
pub use fnwatch_ingest::schema::events_schema;
