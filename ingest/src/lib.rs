//! fnwatch-ingest: the telemetry schema, the decoders, the sources and the lake writer.
pub mod alerts;
pub mod builder;
pub mod decode;
pub mod error;
pub mod event;
pub mod lake;
pub mod schema;

pub use error::{IngestError, Result};
pub mod sources;
pub mod writer_pool;
