//! Errors of the models crate.

/// What went wrong while training, storing or scoring.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The events given do not have the lake's shape.
    #[error("reading events: {0}")]
    Input(String),
    /// No model to score with.
    #[error("no model named `{name}` in {dir}: run `fnwatch train` first")]
    NoModel { name: String, dir: String },
    /// A model file could not be read or written.
    #[error("{action} model file {path}: {source}")]
    Store {
        action: &'static str,
        path: String,
        #[source]
        source: Box<fnwatch_ingest::IngestError>,
    },
    /// A model file is not a model of this version.
    #[error("model file {path} is not readable by this fnwatch: {why}")]
    Format { path: String, why: String },
    /// A model name that cannot be a folder name.
    #[error("model name `{0}` is not valid: use letters, digits, `-` and `_`")]
    BadName(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
