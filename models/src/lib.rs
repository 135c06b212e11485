//! fnwatch-models: each function's normal behaviour, learnt from the lake,
//! and the alerts raised when an invocation deviates from it.
//!
//! Start with [`train::Trainer`] (batches of `events` in, a [`model::Model`]
//! out) and [`detect::Detector`] (batches in, [`alert::Alert`]s out). The
//! caller reads the lake (columns [`rows::COLUMNS`]) and feeds the batches;
//! this crate does no I/O besides [`store`], which keeps versioned model
//! files in the lake folder.
//!
//! ```no_run
//! # fn demo(train_batches: Vec<arrow::array::RecordBatch>, window: Vec<arrow::array::RecordBatch>) -> fnwatch_models::error::Result<()> {
//! use fnwatch_models::{detect::Detector, train::Trainer};
//! let mut t = Trainer::new();
//! for b in &train_batches { t.add_batch(b)?; }
//! let model = t.finish("default", 1, "2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z", "now");
//! let mut d = Detector::new(&model);
//! for b in &window { d.add_batch(b)?; }
//! for alert in d.finish().alerts { println!("{}", serde_json::to_string(&alert).unwrap_or_default()); }
//! # Ok(()) }
//! ```
//!
//! What is learnt per function: DNS name shapes and sites (random CDN and
//! API-id labels folded to `*`), executables and argument shapes, peers by
//! host shape, site and port, file directories by operation, API actions,
//! denied-call and lookup volumes, which event fields normally carry code or
//! SQL, timeouts and whether they idle, what its shell command lines run
//! (commands, structure, redirections), and a k-means (linfa) model of the
//! numbers of an invocation. [`names`] holds the normalisation rules,
//! [`injection`] the payload detector, [`shell`] the command-line parser.

pub mod acc;
pub mod alert;
pub mod detect;
pub mod error;
pub mod injection;
pub mod model;
pub mod names;
pub mod numeric;
pub mod rows;
pub mod shell;
pub mod store;
pub mod trail;
pub mod train;

/// The lake schema the models read.
pub use fnwatch_ingest::schema::events_schema;
