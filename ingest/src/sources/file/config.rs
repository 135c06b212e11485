//! Configuration of the file source.

use std::path::PathBuf;

use serde::Deserialize;

use crate::decode::Limits;
use crate::lake::WriteOptions;

/// What to read and how to batch it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Files, folders (searched recursively for .jsonl/.ndjson/.json[.gz]) or `-` for stdin.
    pub inputs: Vec<PathBuf>,
    /// Ingest files again even if the lake already holds them.
    #[serde(default)]
    pub force: bool,
    /// Bytes of input lines per decode chunk.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// Rows gathered into one sorted run before they are written. Each
    /// decoded chunk is already sorted; at 1 (the default) every chunk is
    /// written as its own run, as it is. More merges chunks into longer
    /// sorted stretches, at the cost of copying every column once more.
    #[serde(default = "default_run_rows")]
    pub run_rows: usize,
    /// Encoded bytes written before a commit.
    #[serde(default = "default_commit_bytes")]
    pub commit_bytes: usize,
    /// Decoder threads (0: one per core).
    #[serde(default)]
    pub decode_threads: usize,
    #[serde(skip)]
    pub limits: Limits,
    #[serde(skip)]
    pub write: WriteOptions,
    /// Test failpoint: abort the process right after this many commits.
    #[serde(skip)]
    pub fail_after_commits: Option<u64>,
    /// Test failpoint: abort between the dead-letter and events commits.
    #[serde(skip)]
    pub fail_between_commits: bool,
}

fn default_chunk_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_run_rows() -> usize {
    1
}
/// Encoded bytes per commit: with two writer lanes, files of about 64 MB, and
/// memory stays bounded (what a commit covers is held until it lands).
fn default_commit_bytes() -> usize {
    128 * 1024 * 1024
}

impl FileSourceConfig {
    /// Defaults for the given inputs.
    pub fn new(inputs: Vec<PathBuf>) -> Self {
        FileSourceConfig {
            inputs,
            force: false,
            chunk_bytes: default_chunk_bytes(),
            run_rows: default_run_rows(),
            commit_bytes: default_commit_bytes(),
            decode_threads: 0,
            limits: Limits::default(),
            write: WriteOptions::default(),
            fail_after_commits: None,
            fail_between_commits: false,
        }
    }
}
