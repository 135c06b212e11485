//! `fnwatch detect`: score a window against the latest model, write alerts.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use fnwatch_analytics::session::LakeSession;
use fnwatch_ingest::lake::Lake;
use fnwatch_models::alert::{Alert, Kind, Severity, alerts_batch, time_us};
use fnwatch_models::detect::Detector;
use fnwatch_models::store;

use super::thousands;
use super::train::{scan_window, truncate};
use super::window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertFormat {
    /// One alert object per line (the alert contract).
    Jsonl,
    /// One JSON array.
    Json,
    /// An aligned table for people.
    Table,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  fnwatch detect --lake ./lake                                   # the last 24 hours
  fnwatch detect --lake ./lake --from 2026-11-04T00:00:00Z --to 2026-11-05T00:00:00Z \\
                 --format jsonl --output alerts.jsonl
  fnwatch detect --lake ./lake --from -1h --min-severity medium --format table

Every alert is also appended to the lake's `alerts` table (query it with
`fnwatch sql`); alerts already stored (same id) are not added twice.")]
pub struct DetectArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Start of the window to score: RFC 3339, a date, or relative (-24h).
    #[arg(
        long,
        default_value = "-24h",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub from: String,
    /// End of the window (exclusive).
    #[arg(
        long,
        default_value = "now",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub to: String,
    /// Model name (as given to `fnwatch train --model`).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub model: String,
    /// Use this version of the model instead of the latest.
    #[arg(long, value_name = "N")]
    pub model_version: Option<u32>,
    /// Output format of the alerts.
    #[arg(long, value_enum, default_value_t = AlertFormat::Jsonl)]
    pub format: AlertFormat,
    /// Write the alerts to this file (the summary then goes to stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out alerts below this severity from the output (all are stored).
    #[arg(long, default_value = "low", value_parser = parse_severity, value_name = "LEVEL")]
    pub min_severity: Severity,
    /// Do not append the alerts to the lake's `alerts` table.
    #[arg(long, conflicts_with = "send")]
    pub no_store: bool,
    /// Then deliver everything the outputs of the configuration are owed,
    /// this window's alerts and any an earlier run could not deliver (as
    /// `fnwatch alerts send` does).
    #[arg(long)]
    pub send: bool,
    /// The configuration file with the `[[outputs]]` (for --send).
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s)
        .ok_or_else(|| format!("`{s}` is not a severity (valid: low, medium, high, critical)"))
}

pub async fn run(a: DetectArgs) -> anyhow::Result<()> {
    let window = Window::parse(&a.from, &a.to)?;
    // Read the outputs first: a broken configuration should stop the run
    // before any work.
    let config = if a.send {
        Some(crate::config::load(Some(&a.config))?)
    } else {
        None
    };
    let lake = Lake::open(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let (model, model_path) = store::load(&lake, &a.model, a.model_version).await?;
    tracing::info!(model = %model_path, "scoring with model");
    let start = Instant::now();
    let mut detector = Detector::new(&model);
    scan_window(&lake, &window, "scored", |b| {
        detector.add_batch(b).map_err(anyhow::Error::from)
    })
    .await?;
    let detection = detector.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let model_ref = format!("{}@v{}", model.name, model.version);

    let stored = if a.no_store {
        None
    } else {
        Some(store_alerts(&lake, &a.lake, &detection.alerts, &model_ref).await?)
    };

    let shown: Vec<&Alert> = detection
        .alerts
        .iter()
        .filter(|al| al.severity >= a.min_severity)
        .collect();
    let mut summary_out: Box<dyn Write> = match &a.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            write_alerts(&mut w, &shown, a.format)
                .and_then(|_| w.flush().map_err(anyhow::Error::from))
                .with_context(|| format!("writing {}", path.display()))?;
            Box::new(std::io::stdout())
        }
        None => {
            let mut out = std::io::stdout().lock();
            write_alerts(&mut out, &shown, a.format).context("writing alerts to stdout")?;
            out.flush().ok();
            Box::new(std::io::stderr())
        }
    };
    let s = &mut summary_out;
    writeln!(
        s,
        "Scored {} invocations ({} events) from {} to {} with model {} in {elapsed:.1} s.",
        thousands(detection.invocations),
        thousands(detection.events),
        window.start_text(),
        window.end_text(),
        model_ref
    )?;
    if !detection.unknown_functions.is_empty() {
        writeln!(
            s,
            "Not in the model (everything they do is new): {}",
            detection.unknown_functions.join(", ")
        )?;
    }
    summarise(s, &detection.alerts)?;
    if let Some(path) = &a.output {
        writeln!(
            s,
            "Alerts ({} at {}+): {}",
            shown.len(),
            a.min_severity,
            path.display()
        )?;
    }
    if let Some(n) = stored {
        writeln!(
            s,
            "Stored {} new alerts in the lake's `alerts` table.",
            thousands(n as u64)
        )?;
    }
    if let Some((cfg, path)) = &config {
        let outputs = super::alerts::select(&cfg.outputs, &[], path)?;
        // Everything the outputs are owed, not only this window's alerts:
        // what an earlier run could not deliver is still owed.
        super::alerts::send(&lake, &outputs, None, false, s).await?;
    }
    Ok(())
}

async fn store_alerts(
    lake: &Lake,
    spec: &str,
    alerts: &[Alert],
    model_ref: &str,
) -> anyhow::Result<usize> {
    let mut existing: HashSet<String> = HashSet::new();
    if lake.alerts().await?.is_some() && !alerts.is_empty() {
        let days: std::collections::BTreeSet<&str> = alerts
            .iter()
            .map(|a| a.time.get(..10).unwrap_or(""))
            .collect();
        let list: Vec<String> = days
            .iter()
            .map(|d| format!("'{}'", d.replace('\'', "")))
            .collect();
        let session = LakeSession::open(spec).await?;
        let r = session
            .query(&format!(
                "SELECT id FROM alerts WHERE date IN ({})",
                list.join(", ")
            ))
            .await
            .context("reading stored alert ids")?;
        for b in &r.batches {
            let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
            if let Some(s) = col.as_any().downcast_ref::<arrow::array::StringArray>() {
                existing.extend(s.iter().flatten().map(str::to_string));
            }
        }
    }
    let new: Vec<Alert> = alerts
        .iter()
        .filter(|a| !existing.contains(&a.id))
        .cloned()
        .collect();
    let times: Vec<i64> = new.iter().map(time_us).collect();
    let now = super::window::now()?.timestamp_micros();
    let batch = alerts_batch(&new, &times, now, model_ref).context("building the alerts batch")?;
    lake.append_alerts(batch)
        .await
        .context("appending to the alerts table")?;
    Ok(new.len())
}

pub fn write_alerts(
    w: &mut dyn Write,
    alerts: &[&Alert],
    format: AlertFormat,
) -> anyhow::Result<()> {
    match format {
        AlertFormat::Jsonl => {
            for a in alerts {
                serde_json::to_writer(&mut *w, a)?;
                w.write_all(b"\n")?;
            }
        }
        AlertFormat::Json => {
            serde_json::to_writer_pretty(&mut *w, alerts)?;
            w.write_all(b"\n")?;
        }
        AlertFormat::Table => {
            writeln!(
                w,
                "{:<24} {:<8} {:<19} {:<20} summary",
                "time", "severity", "kind", "function"
            )?;
            for a in alerts {
                writeln!(
                    w,
                    "{:<24} {:<8} {:<19} {:<20} {}",
                    a.time,
                    a.severity.as_str(),
                    a.kind.as_str(),
                    truncate(&a.function, 20),
                    truncate(&a.summary.replace(['\n', '\r'], " "), 140)
                )?;
            }
        }
    }
    Ok(())
}

/// Alerts per kind and severity, and the functions with most medium+ alerts.
pub fn summarise(s: &mut dyn Write, alerts: &[Alert]) -> anyhow::Result<()> {
    let mut grid: BTreeMap<Kind, [usize; 4]> = BTreeMap::new();
    let mut by_fn: BTreeMap<&str, usize> = BTreeMap::new();
    for a in alerts {
        grid.entry(a.kind).or_default()[a.severity as usize] += 1;
        if a.severity >= Severity::Medium {
            *by_fn.entry(&a.function).or_insert(0) += 1;
        }
    }
    writeln!(
        s,
        "\n{:<20} {:>6} {:>7} {:>6} {:>9}",
        "kind", "low", "medium", "high", "critical"
    )?;
    let mut total = [0usize; 4];
    for k in Kind::ALL {
        let row = grid.get(&k).copied().unwrap_or_default();
        for i in 0..4 {
            total[i] += row[i];
        }
        if row.iter().sum::<usize>() > 0 {
            writeln!(
                s,
                "{:<20} {:>6} {:>7} {:>6} {:>9}",
                k.as_str(),
                row[0],
                row[1],
                row[2],
                row[3]
            )?;
        }
    }
    writeln!(
        s,
        "{:<20} {:>6} {:>7} {:>6} {:>9}",
        "total", total[0], total[1], total[2], total[3]
    )?;
    if !by_fn.is_empty() {
        let mut v: Vec<(&str, usize)> = by_fn.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = v
            .iter()
            .take(5)
            .map(|(f, n)| format!("{f} ({n})"))
            .collect();
        writeln!(s, "\nMost medium+ alerts: {}", top.join(", "))?;
    }
    Ok(())
}
