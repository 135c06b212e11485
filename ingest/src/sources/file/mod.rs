//! The file source: JSON Lines files (`.jsonl`, `.ndjson`, `.json`, optionally
//! `.gz`), folders of them, or `-` for standard input.
//!
//! A reader thread cuts each file into chunks of whole lines, decoder threads
//! turn chunks into Arrow batches and dead letters, and the writer puts them
//! into the lake in order. Each commit records, per file (keyed by the BLAKE3
//! hash of its bytes), how many lines are in the lake, so a re-run adds
//! nothing and a crashed run resumes where its last commit ended.

mod config;
mod reader;
mod run;
#[cfg(test)]
mod tests;

pub use config::FileSourceConfig;
pub use run::{FileOutcome, FileReport, IngestProgress, IngestReport, ingest_files};
