//! The function inventory: Lambda's own description of every function of
//! an account's regions (configuration, environment variable *names*,
//! triggers) and the IAM policies of their roles, read with the AWS SDK and
//! written as one `function_config` event per function per run.
//!
//! Start with [`collect::collect`] (the calls and how failures are reported),
//! then [`policy`] (how documents become `statements` and `permissions`) and
//! [`run::write_run`] (exactly once per run).
//!
//! ```no_run
//! # async fn example(lake: &mut fnwatch_ingest::lake::Lake) -> fnwatch_ingest::Result<()> {
//! use fnwatch_ingest::sources::inventory::*;
//! let config = load_config(&AwsEndpoint::default()).await;
//! let account = caller_account(&config).await.map_err(|e| fnwatch_ingest::IngestError::Source(e.to_string()))?;
//! let regions = vec![Region { name: "us-east-1".into(), lambda: SdkLambda::new(&config) }];
//! let run_time = chrono::Utc::now();
//! let opts = CollectOptions { account: account.clone(), run_time, concurrency: 8 };
//! let inv = collect(&regions, &SdkIam::new(&config), &opts).await;
//! write_run(lake, &account, &["us-east-1".into()], run_time.timestamp_millis(), &inv.events, 0).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod collect;
pub mod policy;
pub mod run;
#[cfg(test)]
mod tests;

pub use api::{
    AwsEndpoint, CallError, IamApi, LambdaApi, SdkIam, SdkLambda, caller_account, load_config,
};
pub use collect::{CollectOptions, FunctionEvent, Inventory, Region, collect};
pub use run::{RunWrite, last_run_ms, run_key, write_run};
