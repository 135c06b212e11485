//! Writing a run to the lake, exactly once.
//!
//! The events go through the same decoder as every other source
//! ([`decode_record`]), so they land in the same columns as a
//! `function_config` event a sensor sends. The commit carries, as Delta
//! application transactions, the run's time (milliseconds) under
//! `fnwatch-inventory:ACCOUNT:REGION` for each region it covers: a run that
//! is written again (a retry after a commit whose answer was lost, a
//! restart) finds its time already there and adds nothing, and a scheduled
//! inventory knows when the last run was.

use std::sync::Arc;

use tracing::info;

use super::collect::FunctionEvent;
use crate::builder::{BatchSink, Counts, DeadLettersBuilder};
use crate::decode::{DecodeState, decode_record};
use crate::error::Result;
use crate::event::Position;
use crate::lake::{EVENTS, EventsLane, Lake, LakeWriter, WriteOptions};

/// The application-transaction key of an account's region.
pub fn run_key(account: &str, region: &str) -> String {
    format!("fnwatch-inventory:{account}:{region}")
}

/// The time (ms since the epoch) of the last run written for every one of
/// `regions`: the oldest of theirs, `None` when one has none.
pub async fn last_run_ms(lake: &Lake, account: &str, regions: &[String]) -> Result<Option<i64>> {
    let mut oldest: Option<i64> = None;
    for r in regions {
        match lake.txn_version(EVENTS, &run_key(account, r)).await? {
            Some(v) => oldest = Some(oldest.map_or(v, |o| o.min(v))),
            None => return Ok(None),
        }
    }
    Ok(oldest)
}

/// What writing a run did.
#[derive(Debug, Clone, Default)]
pub struct RunWrite {
    /// False when the lake already held this run (nothing was written).
    pub written: bool,
    pub counts: Counts,
    /// The first dead letters (position, reason): a bug if any, as the
    /// collector writes the events itself.
    pub first_dead_letters: Vec<(String, String)>,
    pub bytes_written: i64,
}

/// Writes the events of the run at `run_ms` for `account`'s `regions` in one
/// commit, unless the lake already holds that run.
pub async fn write_run(
    lake: &mut Lake,
    account: &str,
    regions: &[String],
    run_ms: i64,
    events: &[FunctionEvent],
    ingested_at_us: i64,
) -> Result<RunWrite> {
    let keys: Vec<String> = regions.iter().map(|r| run_key(account, r)).collect();
    lake.refresh().await?;
    for k in &keys {
        if lake
            .txn_version(EVENTS, k)
            .await?
            .is_some_and(|v| v >= run_ms)
        {
            info!(key = %k, run_ms, "the lake already holds this inventory run");
            return Ok(RunWrite::default());
        }
    }
    let mut sink = BatchSink::with_capacity(ingested_at_us, events.len());
    let mut state = DecodeState::default();
    for e in events {
        let pos = Position::file(
            Arc::from(format!(
                "inventory run {run_ms} of {account}/{}/{}",
                e.region, e.function
            )),
            1,
        );
        decode_record(e.json.as_bytes(), &pos, &mut state, &mut sink);
    }
    let opts = WriteOptions::default();
    let mut out = RunWrite {
        written: true,
        counts: sink.counts.clone(),
        ..Default::default()
    };
    let mut writer = LakeWriter::new(lake, &opts)?;
    if !sink.dead.is_empty() {
        let mut dead = DeadLettersBuilder::new(ingested_at_us);
        for dl in sink.dead.drain(..) {
            if out.first_dead_letters.len() < 5 {
                out.first_dead_letters
                    .push((dl.position.to_string(), dl.reason.clone()));
            }
            dead.push(dl);
        }
        writer.write_dead_letters(dead.finish()).await?;
    }
    let mut lane = EventsLane::new(lake, &opts)?;
    let batch = sink.events.finish();
    lane.write_run(&[batch]).await?;
    let adds = lane.flush().await?;
    let txns: Vec<(String, i64)> = keys.into_iter().map(|k| (k, run_ms)).collect();
    let mut meta = serde_json::Map::new();
    meta.insert("fnwatch.operation".into(), "inventory".into());
    match writer.commit(lake, adds, &txns, meta).await {
        Ok(summary) => {
            out.bytes_written = summary.bytes_added;
            Ok(out)
        }
        // Another process committed this very run first.
        Err(e) if e.is_commit_conflict() => {
            info!(run_ms, "another writer committed this inventory run first");
            Ok(RunWrite::default())
        }
        Err(e) => Err(e),
    }
}
