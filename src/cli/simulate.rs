//! `fnwatch simulate`: generated telemetry with labelled attacks (see
//! `crate::sim`), written to day files or put on a Kinesis stream
//! (`crate::sim::kinesis`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, TimeZone, Utc};
use clap::{ArgGroup, Args};
use fnwatch_ingest::sources::kinesis::{
    FaultyKinesis, KinesisApi, KinesisEndpoint, KinesisError, SdkKinesis,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{human_bytes, thousands};
use crate::sim::kinesis::{PutConfig, PutStats, Shape, put_all, shape_files};
use crate::sim::{SimConfig, SimSummary, generate};

/// Environment variable that injects Kinesis failures (a test knob, e.g.
/// `fail_put_every=7`; see `FaultyKinesis`).
const FAULTS_ENV: &str = "FNWATCH_KINESIS_FAULTS";

/// Simulate a fleet of twelve serverless functions: one gzip JSON Lines file
/// of telemetry per UTC day (`telemetry-YYYY-MM-DD.jsonl.gz`, every record
/// shape of the input contract) and `_labels.jsonl`, which names each attacked
/// invocation (label `attack`) and each benign surprise (label `benign_hard`).
/// The same flags always give the same bytes.
///
/// With --kinesis instead of --out, the same telemetry is put on a Kinesis
/// stream with PutRecords, as a mix of record shapes (native events, JSON
/// Lines, arrays, gzip, gzip CloudWatch Logs payloads and control messages,
/// Telemetry API batches, KPL aggregates), partitioned by request id; the
/// command exits once everything is put (or --max-records are).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["out", "kinesis"])))]
pub struct SimulateArgs {
    /// Folder to write the telemetry and _labels.jsonl into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Put the telemetry on this Kinesis stream instead of writing files.
    #[arg(long, value_name = "STREAM")]
    pub kinesis: Option<String>,
    /// With --kinesis: Kinesis records per second (0: as fast as the stream takes them).
    /// [default: 1000]
    #[arg(long, value_name = "N")]
    pub rate: Option<u64>,
    /// With --kinesis: stop after this many Kinesis records.
    #[arg(long, value_name = "N")]
    pub max_records: Option<u64>,
    /// With --kinesis: AWS region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// With --kinesis: a Kinesis-compatible endpoint (a local emulator, a VPC endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// With --kinesis: also write the labels (the lines of _labels.jsonl) to FILE.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Seed of the simulation: same seed and flags, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First simulated day (UTC), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-11-20", value_parser = parse_day)]
    pub start: NaiveDate,
    /// Number of days to simulate.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Invocations of the whole fleet per day, with a daily rhythm (attacks and
    /// benign hard cases come on top).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub invocations_per_day: u64,
    /// The last N days carry attacks and hard cases; the days before are
    /// benign only (for training). 0: no attacks at all.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub attack_days: u32,
    /// Attacked invocations per attack class (eight classes), spread over the
    /// attack days and over at least three functions each.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub attacks_per_class: u32,
    /// Do not plant benign hard cases (deploys with new dependencies, traffic
    /// spikes, cold-start waves, an outage, new CDN names, code in payloads).
    #[arg(long)]
    pub no_hard_cases: bool,
    /// Write into DIR even if it already holds telemetry: its
    /// telemetry-*.jsonl.gz files and _labels.jsonl are replaced.
    #[arg(long)]
    pub force: bool,
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| format!("`{s}` is not a date like 2026-11-20: {e}"))
}

/// The telemetry files already in `dir`.
fn existing_telemetry(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    anyhow::ensure!(dir.is_dir(), "{} exists and is not a folder", dir.display());
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("telemetry-") && name.ends_with(".jsonl.gz") {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Records per second when --rate is not given.
const DEFAULT_RATE: u64 = 1000;

pub async fn run(a: SimulateArgs) -> anyhow::Result<()> {
    if a.out.is_some() {
        let kinesis_only = [
            ("--rate", a.rate.is_some()),
            ("--max-records", a.max_records.is_some()),
            ("--region", a.region.is_some()),
            ("--endpoint-url", a.endpoint_url.is_some()),
            ("--labels", a.labels.is_some()),
        ];
        if let Some((flag, _)) = kinesis_only.iter().find(|(_, set)| *set) {
            anyhow::bail!("{flag} goes with --kinesis STREAM, not with --out DIR");
        }
    } else if a.force {
        anyhow::bail!("--force goes with --out DIR (it replaces the telemetry files there)");
    }
    match (a.out.clone(), a.kinesis.clone()) {
        (Some(out), _) => run_files(a, &out).await,
        (None, Some(stream)) => run_kinesis(a, &stream).await,
        (None, None) => anyhow::bail!("pass --out DIR or --kinesis STREAM"),
    }
}

fn sim_config(a: &SimulateArgs) -> anyhow::Result<SimConfig> {
    let start = Utc
        .from_local_datetime(&a.start.and_hms_opt(0, 0, 0).context("start of day")?)
        .single()
        .context("start of day")?;
    Ok(SimConfig {
        seed: a.seed,
        start,
        days: a.days,
        invocations_per_day: a.invocations_per_day,
        attack_days: a.attack_days.min(a.days),
        attacks_per_class: a.attacks_per_class,
        hard_cases: !a.no_hard_cases,
    })
}

fn stderr_bar(bar: &ProgressBar) {
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
}

/// Runs the simulator into `out`, with a progress bar on stderr.
async fn simulate_into(cfg: SimConfig, out: &Path) -> anyhow::Result<SimSummary> {
    let expected = u64::from(cfg.days) * cfg.invocations_per_day;
    let bar = ProgressBar::with_draw_target(Some(expected.max(1)), ProgressDrawTarget::stderr());
    stderr_bar(&bar);
    bar.set_style(
        ProgressStyle::with_template("{spinner} simulating [{bar:30}] {human_pos}/{human_len} invocations ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let out2 = out.to_path_buf();
    let bar2 = bar.clone();
    let sum = tokio::task::spawn_blocking(move || {
        generate(&cfg, &out2, |n| bar2.set_position(n.min(expected)))
    })
    .await
    .context("the simulator stopped")?
    .with_context(|| format!("simulating into {}", out.display()));
    bar.finish_and_clear();
    sum
}

async fn run_files(a: SimulateArgs, out: &Path) -> anyhow::Result<()> {
    let existing = existing_telemetry(out)?;
    if !existing.is_empty() {
        if !a.force {
            anyhow::bail!(
                "{} already holds telemetry ({}{}); choose another folder or pass --force to replace it",
                out.display(),
                existing[..existing.len().min(3)].join(", "),
                if existing.len() > 3 { ", ..." } else { "" }
            );
        }
        for name in existing.iter().map(String::as_str).chain(["_labels.jsonl"]) {
            let p = out.join(name);
            if p.is_file() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    let cfg = sim_config(&a)?;
    let started = Instant::now();
    let sum = simulate_into(cfg, out).await?;
    let secs = started.elapsed().as_secs_f64();

    let bytes: u64 = sum
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "Wrote {} day file{} ({}) in {:.1} s: {} invocations, {} events ({:.1} per invocation).",
        sum.files.len(),
        if sum.files.len() == 1 { "" } else { "s" },
        human_bytes(bytes),
        secs,
        thousands(sum.invocations),
        thousands(sum.events),
        sum.events as f64 / sum.invocations.max(1) as f64
    );
    for f in &sum.files {
        println!("  {}", f.display());
    }
    println!("  {} (labels)", sum.labels.display());
    print_labels(&a, &sum);
    println!("Next: fnwatch ingest --lake ./lake {}", out.display());
    Ok(())
}

fn print_labels(a: &SimulateArgs, sum: &SimSummary) {
    if sum.attacks.is_empty() {
        println!("Attacks: none (benign only).");
    } else {
        println!(
            "Attacks (label \"attack\"), on the last {} day(s):",
            a.attack_days.min(a.days)
        );
        for (class, n) in &sum.attacks {
            println!("  {class:<24} {:>7}", thousands(*n));
        }
    }
    if !sum.hard_cases.is_empty() {
        println!("Benign hard cases (label \"benign_hard\"):");
        for (case, n) in &sum.hard_cases {
            println!("  {case:<24} {:>7}", thousands(*n));
        }
    }
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p =
            std::env::temp_dir().join(format!("fnwatch-simulate-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run_kinesis(a: SimulateArgs, stream: &str) -> anyhow::Result<()> {
    let endpoint = KinesisEndpoint {
        region: a.region.clone(),
        endpoint_url: a.endpoint_url.clone(),
    };
    let sdk = SdkKinesis::connect(&endpoint).await;
    let Some(region) = sdk.region() else {
        anyhow::bail!(
            "no AWS region for Kinesis stream `{stream}`: pass --region or set AWS_REGION"
        );
    };
    let at = match &a.endpoint_url {
        Some(url) => url.clone(),
        None => format!("the AWS endpoint of {region}"),
    };
    match std::env::var(FAULTS_ENV) {
        Ok(spec) if !spec.trim().is_empty() => {
            let client = FaultyKinesis::from_spec(sdk, &spec)
                .map_err(|e| anyhow::anyhow!("{FAULTS_ENV}={spec}: {e}"))?;
            eprintln!("fnwatch: injecting Kinesis failures ({FAULTS_ENV}={spec})");
            put_simulation(&client, a, stream, at).await
        }
        _ => put_simulation(&sdk, a, stream, at).await,
    }
}

/// Simulates into a temporary folder, then puts the records on `stream`.
async fn put_simulation<C: KinesisApi>(
    client: &C,
    a: SimulateArgs,
    stream: &str,
    at: String,
) -> anyhow::Result<()> {
    // Fail fast, before simulating, when the stream is not there or cannot
    // be reached. Other errors (no ListShards permission) are left to PutRecords.
    let mut attempt = 0;
    let shards = loop {
        attempt += 1;
        match client.list_shards(stream).await {
            Ok(s) => break Some(s.iter().filter(|s| s.ending_sequence.is_none()).count()),
            Err(KinesisError::NotFound(e)) => {
                anyhow::bail!("Kinesis stream `{stream}` at {at} does not exist: {e}")
            }
            Err(e) if e.is_retryable() => {
                if attempt >= 3 {
                    anyhow::bail!("cannot reach Kinesis stream `{stream}` at {at}: {e}");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::warn!(stream, endpoint = %at, "cannot list the stream's shards, putting anyway: {e}");
                break None;
            }
        }
    };
    let cfg = sim_config(&a)?;
    let tmp = TempDir::new()?;
    let sum = simulate_into(cfg, &tmp.0).await?;
    if let Some(path) = &a.labels {
        std::fs::copy(&sum.labels, path)
            .with_context(|| format!("writing the labels to {}", path.display()))?;
    }

    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let files = sum.files.clone();
    let (seed, max_records) = (a.seed, a.max_records);
    let shaper = tokio::task::spawn_blocking(move || {
        shape_files(&files, seed, max_records, |chunk| {
            tx.blocking_send(chunk).is_ok()
        })
    });
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    stderr_bar(&bar);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] put {human_pos} records ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let put_cfg = PutConfig::new(stream, at.clone(), a.rate.unwrap_or(DEFAULT_RATE));
    let started = Instant::now();
    let put = put_all(client, &put_cfg, rx, |s| {
        bar.set_position(s.records);
        bar.set_message(format!(
            "{} events, {} retries",
            thousands(s.events),
            thousands(s.entry_retries + s.call_retries)
        ));
    })
    .await;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let shaped = shaper.await.context("the record shaper stopped")?;
    let stats = put?;
    shaped?;

    println!(
        "Put {} records ({} events, {}) on Kinesis stream `{stream}`{} in {secs:.1} s: {} records/s, {} retries ({} failed records re-put, {} calls retried).",
        thousands(stats.records),
        thousands(stats.events),
        human_bytes(stats.bytes),
        shards.map_or(String::new(), |n| format!(
            " ({n} open shard{})",
            if n == 1 { "" } else { "s" }
        )),
        thousands((stats.records as f64 / secs.max(0.001)) as u64),
        thousands(stats.entry_retries + stats.call_retries),
        thousands(stats.entry_retries),
        thousands(stats.call_retries),
    );
    println!("  shapes: {}", shapes_line(&stats));
    println!(
        "  simulated {} day(s) from {}: {} invocations, {} events{}",
        a.days,
        a.start,
        thousands(sum.invocations),
        thousands(sum.events),
        match a.max_records {
            Some(n) if stats.events < sum.events => {
                format!(" (stopped at --max-records {})", thousands(n))
            }
            _ => String::new(),
        }
    );
    if let Some(path) = &a.labels {
        println!("  labels: {}", path.display());
    }
    print_labels(&a, &sum);
    Ok(())
}

/// `native 1,234, json lines 56, ..., kpl 78 (345 user records, 12 of them gzip CloudWatch payloads)`.
fn shapes_line(s: &PutStats) -> String {
    let mut parts = Vec::new();
    for shape in Shape::ALL {
        let n = s.shapes.get(&shape).copied().unwrap_or(0);
        if n == 0 {
            continue;
        }
        let mut part = format!("{} {}", shape.name(), thousands(n));
        if shape == Shape::Kpl {
            part.push_str(&format!(
                " ({} user records, {} of them gzip CloudWatch payloads)",
                thousands(s.kpl_user_records),
                thousands(s.kpl_cloudwatch)
            ));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}
