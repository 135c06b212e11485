//! fnwatch-analytics: SQL over the telemetry lake with DataFusion.
//!
//! Start at [`session::LakeSession`]: it opens a lake, registers the `events`,
//! `dead_letters` and `alerts` Delta tables and the per-type views of
//! `queries/views.sql`, and runs read-only queries. [`output`] renders results
//! as a table, CSV, JSON or Parquet. [`sinks`] delivers stored alerts to SIEMs
//! (syslog with CEF/OCSF, Splunk HEC, webhooks, files), at least once and in
//! order. [`server`] serves the lake, read-only, over the PostgreSQL wire
//! protocol (psql, JDBC).
//!
//! ```no_run
//! # async fn demo() -> fnwatch_analytics::Result<()> {
//! let session = fnwatch_analytics::session::LakeSession::open("./lake").await?;
//! let result = session.query("SELECT function, count(*) FROM dns GROUP BY 1").await?;
//! fnwatch_analytics::output::write_result(&result, fnwatch_analytics::output::Format::Table, &mut std::io::stdout())?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod output;
pub mod params;
pub mod report;
pub mod server;
pub mod session;

pub use error::{AnalyticsError, Result};
pub mod sinks;
