//! `fnwatch compact`: Delta OPTIMIZE over the lake's tables.

use anyhow::Context;
use clap::Args;
use fnwatch_ingest::lake::{Lake, WriteOptions};

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Target size of the compacted files, in MB.
    #[arg(long, value_name = "MB", default_value_t = 128)]
    pub target_mb: u64,
}

pub async fn run(a: CompactArgs) -> anyhow::Result<()> {
    let mut lake = Lake::open(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let summaries = lake
        .compact(a.target_mb * 1024 * 1024, &WriteOptions::default())
        .await
        .context("compacting")?;
    for s in summaries {
        println!(
            "{}: {} files rewritten into {} ({} partitions)",
            s.table, s.files_removed, s.files_added, s.partitions_optimized
        );
    }
    Ok(())
}
