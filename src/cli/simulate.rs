//! `fnwatch simulate`: generated telemetry with labelled attacks (see `crate::sim`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::{NaiveDate, TimeZone, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{human_bytes, thousands};
use crate::sim::{SimConfig, generate};

/// Simulate a fleet of twelve serverless functions: one gzip JSON Lines file
/// of telemetry per UTC day (`telemetry-YYYY-MM-DD.jsonl.gz`, every record
/// shape of the input contract) and `_labels.jsonl`, which names each attacked
/// invocation (label `attack`) and each benign surprise (label `benign_hard`).
/// The same flags always give the same bytes.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Folder to write the telemetry and _labels.jsonl into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
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

pub async fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let existing = existing_telemetry(&a.out)?;
    if !existing.is_empty() {
        if !a.force {
            anyhow::bail!(
                "{} already holds telemetry ({}{}); choose another folder or pass --force to replace it",
                a.out.display(),
                existing[..existing.len().min(3)].join(", "),
                if existing.len() > 3 { ", ..." } else { "" }
            );
        }
        for name in existing.iter().map(String::as_str).chain(["_labels.jsonl"]) {
            let p = a.out.join(name);
            if p.is_file() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    let start = Utc
        .from_local_datetime(&a.start.and_hms_opt(0, 0, 0).context("start of day")?)
        .single()
        .context("start of day")?;
    let cfg = SimConfig {
        seed: a.seed,
        start,
        days: a.days,
        invocations_per_day: a.invocations_per_day,
        attack_days: a.attack_days.min(a.days),
        attacks_per_class: a.attacks_per_class,
        hard_cases: !a.no_hard_cases,
    };
    let expected = u64::from(cfg.days) * cfg.invocations_per_day;
    let bar = ProgressBar::with_draw_target(Some(expected.max(1)), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} simulating [{bar:30}] {human_pos}/{human_len} invocations ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let out = a.out.clone();
    let bar2 = bar.clone();
    let sum = tokio::task::spawn_blocking(move || {
        generate(&cfg, &out, |n| bar2.set_position(n.min(expected)))
    })
    .await
    .context("the simulator stopped")?
    .with_context(|| format!("simulating into {}", a.out.display()))?;
    bar.finish_and_clear();
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
    println!("Next: fnwatch ingest --lake ./lake {}", a.out.display());
    Ok(())
}
