//! `fnwatch ingest`: telemetry files into the lake.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fnwatch_ingest::event::EventType;
use fnwatch_ingest::lake::Lake;
use fnwatch_ingest::sources::file::{
    FileOutcome, FileSourceConfig, IngestProgress, IngestReport, ingest_files,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::{human_bytes, thousands};

#[derive(Debug, Args)]
#[command(after_help = "\
Files are JSON Lines (.jsonl, .ndjson, .json), optionally gzip-compressed (.gz);
every line is one record of the telemetry contract: a native event, a JSON
array (native events or a Lambda Telemetry API batch) or a CloudWatch Logs
subscription payload. (Gzip and KPL-aggregated records, which are binary,
arrive as Kinesis records.)

Bad records go to the lake's `dead_letters` table with the reason and their
file and line; the good records beside them are kept. A file whose content is
already in the lake is skipped (use --force to add it again); a run that was
interrupted resumes after its last commit.

Examples:
  fnwatch ingest --lake ./lake telemetry-*.jsonl.gz
  fnwatch ingest --lake ./lake ./exports/
  zcat day.jsonl.gz | fnwatch ingest --lake ./lake -

The Kinesis worker (--kinesis STREAM) runs until SIGTERM or Ctrl-C: it reads
every shard (several workers on one stream share them through leases in the
lake, under _kinesis/), commits each shard's position in the same Delta commit
as its records (a restart resumes exactly after the last committed record),
reads a split or merged shard's children only after the parents are complete,
and on a stop commits what it holds and exits 0. Credentials and region come
from the standard AWS chain (environment, profile, SSO, container or instance
role).
  fnwatch ingest --lake ./lake --kinesis telemetry --region eu-west-1 \
      --metrics-addr 0.0.0.0:9464
  fnwatch ingest --lake ./lake --kinesis telemetry --endpoint-url http://127.0.0.1:4567")]
pub struct IngestArgs {
    /// The lake folder (created if it does not exist).
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Files, folders (searched recursively) or `-` for standard input.
    #[arg(
        value_name = "INPUT",
        required_unless_present = "kinesis",
        conflicts_with = "kinesis"
    )]
    pub inputs: Vec<PathBuf>,
    /// Ingest files again even if the lake already holds their content.
    #[arg(long)]
    pub force: bool,
    /// Do not show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Decoder threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Largest record (line) accepted, in bytes; longer ones are dead-lettered.
    #[arg(long, value_name = "BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_record_bytes: usize,
    #[command(flatten)]
    pub kinesis: super::ingest_kinesis::KinesisArgs,
}

pub async fn run(a: IngestArgs) -> anyhow::Result<()> {
    if let Some(stream) = &a.kinesis.kinesis {
        return super::ingest_kinesis::run(&a.lake, stream, &a.kinesis).await;
    }
    let mut lake = Lake::open_or_create(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let mut cfg = FileSourceConfig::new(a.inputs.clone());
    cfg.force = a.force;
    cfg.decode_threads = a.threads;
    cfg.limits.max_record_bytes = a.max_record_bytes.max(1024);
    // Knobs for tests and tuning, deliberately not flags.
    if let Some(v) = env_number("FNWATCH_TUNE_RUN_ROWS") {
        cfg.run_rows = v as usize;
    }
    if let Some(v) = env_number("FNWATCH_TUNE_CHUNK_BYTES") {
        cfg.chunk_bytes = v as usize;
    }
    if let Some(v) = env_number("FNWATCH_TUNE_COMMIT_BYTES") {
        cfg.commit_bytes = v as usize;
    }
    cfg.fail_after_commits = env_number("FNWATCH_FAIL_AFTER_COMMITS");
    cfg.fail_between_commits = std::env::var_os("FNWATCH_FAIL_BETWEEN_COMMITS").is_some();
    if let Some(v) = env_number("FNWATCH_TUNE_ZSTD_LEVEL") {
        cfg.write.zstd_level = v as i32;
    }

    let progress = Arc::new(IngestProgress::default());
    let show = !a.no_progress && std::io::stderr().is_terminal();
    let bar = show.then(|| spawn_bar(progress.clone()));
    let result = ingest_files(&mut lake, &cfg, progress.clone()).await;
    if let Some((bar, stop)) = bar {
        stop.notify_one();
        bar.finish_and_clear();
    }
    let report = result.context("ingesting")?;
    print_summary(&report, &a.lake);

    if report.readable_inputs() == 0 {
        bail!("nothing could be read: no input file could be opened (see above)");
    }
    let already = report.files.iter().all(|f| {
        !matches!(
            f.outcome,
            FileOutcome::Ingested | FileOutcome::Resumed { .. }
        )
    });
    if report.counts.total_events() == 0 && report.counts.dead_letters > 0 && !already {
        let first = report
            .first_dead_letters
            .first()
            .map(|(p, r)| format!("{p}: {r}"))
            .unwrap_or_default();
        bail!(
            "no event could be decoded from the input: {} record(s) dead-lettered (first: {first})",
            thousands(report.counts.dead_letters)
        );
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn spawn_bar(progress: Arc<IngestProgress>) -> (ProgressBar, Arc<tokio::sync::Notify>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let b = bar.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            b.set_length(progress.bytes_total.load(Ordering::Relaxed));
            b.set_position(progress.bytes_read.load(Ordering::Relaxed));
            let events = progress.events.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{} events ({}/s), {} bad, file {}/{}",
                thousands(events),
                thousands((events as f64 / secs) as u64),
                thousands(progress.dead_letters.load(Ordering::Relaxed)),
                progress.files_done.load(Ordering::Relaxed),
                progress.files_total.load(Ordering::Relaxed),
            ));
            tokio::select! {
                _ = stop2.notified() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    (bar, stop)
}

pub(super) fn print_summary(r: &IngestReport, lake: &str) {
    let ingested = r
        .files
        .iter()
        .filter(|f| {
            matches!(
                f.outcome,
                FileOutcome::Ingested | FileOutcome::Resumed { .. }
            )
        })
        .count();
    let secs = r.elapsed.as_secs_f64();
    let events = r.counts.total_events();
    println!(
        "ingested {} file{} in {} s: {} events ({}/s), {} dead letters",
        ingested,
        if ingested == 1 { "" } else { "s" },
        if secs < 10.0 {
            format!("{secs:.2}")
        } else {
            format!("{secs:.1}")
        },
        thousands(events),
        thousands((events as f64 / secs.max(0.001)) as u64),
        thousands(r.counts.dead_letters),
    );
    for f in &r.files {
        match &f.outcome {
            FileOutcome::Ingested => {}
            FileOutcome::Resumed { from_line } => {
                println!(
                    "  {}: resumed at line {from_line} (earlier lines were already committed)",
                    f.path
                )
            }
            FileOutcome::AlreadyIngested => println!(
                "  {}: already in the lake ({} lines), skipped; use --force to add it again",
                f.path,
                thousands(f.lines)
            ),
            FileOutcome::Duplicate { of } => {
                println!("  {}: same content as {of}, skipped", f.path)
            }
            FileOutcome::Failed(why) => println!("  {}: cannot be read: {why}", f.path),
        }
        if let Some(e) = &f.error {
            println!("  {}: {e}", f.path);
        }
    }
    if events > 0 {
        println!("events by type:");
        for t in EventType::ALL {
            let n = r.counts.events[t.index()];
            if n > 0 {
                println!("  {:<16} {:>12}", t.as_str(), thousands(n));
            }
        }
    }
    if r.counts.skipped_cloudtrail > 0 {
        println!(
            "skipped: {} CloudTrail records of other identities (users, services, role sessions that are not a function's)",
            thousands(r.counts.skipped_cloudtrail)
        );
    }
    if r.counts.dead_letters > 0 {
        println!(
            "dead letters (first {} of {}; all are in the `dead_letters` table):",
            r.first_dead_letters.len(),
            thousands(r.counts.dead_letters)
        );
        for (pos, reason) in &r.first_dead_letters {
            println!("  {pos}: {reason}");
        }
    }
    println!(
        "lake: {lake} ({} commit{}, {} written)",
        r.commits,
        if r.commits == 1 { "" } else { "s" },
        human_bytes(r.bytes_written.max(0) as u64)
    );
}
