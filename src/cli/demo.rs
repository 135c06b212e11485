//! `fnwatch demo`: everything, embedded. Simulate a small fleet for a few
//! days with attack campaigns on the last, ingest it, train on the quiet
//! days, detect on the last, and show what was found.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, TimeZone, Utc};
use clap::Args;
use fnwatch_ingest::lake::Lake;
use fnwatch_ingest::sources::file::{FileSourceConfig, IngestProgress, ingest_files};
use fnwatch_models::alert::{Alert, Severity};
use fnwatch_models::detect::Detector;
use fnwatch_models::store;
use fnwatch_models::train::Trainer;

use super::detect::{AlertFormat, summarise, write_alerts};
use super::thousands;
use super::train::scan_window;
use super::window::Window;
use crate::sim::{SimConfig, generate};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to write the telemetry, the lake and the alerts into.
    #[arg(long, value_name = "DIR", default_value = "fnwatch-demo")]
    pub dir: PathBuf,
    /// Seed of the simulated fleet.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Invocations per simulated day.
    #[arg(long, default_value_t = 8_000)]
    pub invocations_per_day: u64,
}

/// Per attack class: (attacked invocations, found at medium or above).
pub type Recall = BTreeMap<String, (usize, usize)>;

/// Scores alerts against the simulator's labels: recall per attack class,
/// and medium+ alerts on invocations that were not attacked.
pub fn evaluate(labels: &Path, alerts: &[Alert]) -> anyhow::Result<(Recall, usize)> {
    let text =
        std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
    let mut attacked: HashMap<String, String> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", labels.display(), n + 1))?;
        if v["label"] == "attack"
            && let (Some(r), Some(c)) = (v["request_id"].as_str(), v["class"].as_str())
        {
            attacked.insert(r.to_string(), c.to_string());
        }
    }
    let mut recall: Recall = BTreeMap::new();
    for c in attacked.values() {
        recall.entry(c.clone()).or_default().0 += 1;
    }
    let mut found: HashMap<&str, ()> = HashMap::new();
    let mut false_pos: HashMap<&str, ()> = HashMap::new();
    for a in alerts.iter().filter(|a| a.severity >= Severity::Medium) {
        let Some(r) = a.request_id.as_deref() else {
            continue;
        };
        if attacked.contains_key(r) {
            found.insert(r, ());
        } else {
            false_pos.insert(r, ());
        }
    }
    for r in found.keys() {
        if let Some(c) = attacked.get(*r) {
            recall.entry(c.clone()).or_default().1 += 1;
        }
    }
    Ok((recall, false_pos.len()))
}

fn remove_if_exists(p: &Path) -> anyhow::Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
    } else if p.exists() {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let telemetry = a.dir.join("telemetry");
    let lake_path = a.dir.join("lake");
    let alerts_path = a.dir.join("alerts.jsonl");
    // A re-run starts over: only what the demo itself writes is removed.
    for p in [&telemetry, &lake_path, &alerts_path] {
        remove_if_exists(p)?;
    }
    let start = Utc
        .with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
        .single()
        .context("demo start time")?;
    let cfg = SimConfig {
        seed: a.seed,
        start,
        days: 4,
        invocations_per_day: a.invocations_per_day,
        attack_days: 1,
        attacks_per_class: 12,
        hard_cases: true,
    };
    println!(
        "1/4 Simulating {} days of a fleet ({} invocations a day; attacks on the last day) ...",
        cfg.days,
        thousands(cfg.invocations_per_day)
    );
    let sim = generate(&cfg, &telemetry, |_| {}).context("simulating telemetry")?;
    println!(
        "    {} invocations, {} events in {}",
        thousands(sim.invocations),
        thousands(sim.events),
        telemetry.display()
    );

    println!("2/4 Ingesting into the lake ...");
    let lake_str = lake_path.display().to_string();
    let mut lake = Lake::open_or_create(&lake_str)
        .await
        .with_context(|| format!("opening lake {lake_str}"))?;
    let report = ingest_files(
        &mut lake,
        &FileSourceConfig::new(vec![telemetry.clone()]),
        Arc::new(IngestProgress::default()),
    )
    .await
    .context("ingesting the simulated telemetry")?;
    println!(
        "    {} events, {} dead letters",
        thousands(report.counts.total_events()),
        thousands(report.counts.dead_letters)
    );

    let train_w = Window {
        from: start,
        to: start + Duration::days(i64::from(cfg.days - 1)),
    };
    let detect_w = Window {
        from: train_w.to,
        to: start + Duration::days(i64::from(cfg.days)),
    };
    println!(
        "3/4 Training on {} .. {} ...",
        train_w.start_text(),
        train_w.end_text()
    );
    let mut trainer = Trainer::new();
    scan_window(&lake, &train_w, "read", |b| {
        trainer.add_batch(b).map_err(anyhow::Error::from)
    })
    .await?;
    let version = store::next_version(&lake, "default").await?;
    let now = super::window::now()?.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut model = trainer.finish(
        "default",
        version,
        &train_w.start_text(),
        &train_w.end_text(),
        &now,
    );
    store::save(&lake, &mut model).await?;
    println!("    {} functions learnt", model.functions.len());

    println!(
        "4/4 Detecting on {} .. {} ...",
        detect_w.start_text(),
        detect_w.end_text()
    );
    let mut detector = Detector::new(&model);
    scan_window(&lake, &detect_w, "scored", |b| {
        detector.add_batch(b).map_err(anyhow::Error::from)
    })
    .await?;
    let detection = detector.finish();
    let model_ref = format!("{}@v{}", model.name, model.version);
    let times: Vec<i64> = detection
        .alerts
        .iter()
        .map(fnwatch_models::alert::time_us)
        .collect();
    let batch = fnwatch_models::alert::alerts_batch(
        &detection.alerts,
        &times,
        super::window::now()?.timestamp_micros(),
        &model_ref,
    )?;
    lake.append_alerts(batch).await.context("storing alerts")?;
    {
        let f = std::fs::File::create(&alerts_path)
            .with_context(|| format!("creating {}", alerts_path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let all: Vec<&Alert> = detection.alerts.iter().collect();
        write_alerts(&mut w, &all, AlertFormat::Jsonl)?;
        std::io::Write::flush(&mut w)?;
    }

    let mut top: Vec<&Alert> = detection
        .alerts
        .iter()
        .filter(|a| a.severity >= Severity::High)
        .collect();
    top.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.time.cmp(&b.time)));
    println!(
        "\n== High and critical alerts (first 20 of {})\n",
        top.len()
    );
    write_alerts(
        &mut std::io::stdout(),
        &top[..top.len().min(20)],
        AlertFormat::Table,
    )?;
    summarise(&mut std::io::stdout(), &detection.alerts)?;

    let (recall, fp) = evaluate(&sim.labels, &detection.alerts)?;
    println!(
        "\n== Against the simulator's labels (an attacked invocation counts as found with a medium+ alert)\n"
    );
    for (class, (n, found)) in &recall {
        println!("  {class:<24} {found:>4} of {n:<4}");
    }
    println!(
        "  benign invocations alerted medium+: {fp} of {}",
        thousands(
            detection
                .invocations
                .saturating_sub(recall.values().map(|v| v.0 as u64).sum())
        )
    );
    println!(
        "\nDone in {:.1} s. The lake is {lake_str}; the alerts are in {}.\nTry:\n  \
         fnwatch sql --lake {lake_str} \"SELECT kind, severity, count(*) FROM alerts GROUP BY 1, 2 ORDER BY 1, 2\"\n  \
         fnwatch sql --lake {lake_str} \"SELECT function, registrable_domain, count(*) FROM dns GROUP BY 1, 2 ORDER BY 3 LIMIT 10\"\n  \
         fnwatch sql --lake {lake_str} \"SELECT time, function, summary FROM alerts WHERE severity IN ('high', 'critical') ORDER BY time LIMIT 20\"",
        started.elapsed().as_secs_f64(),
        alerts_path.display()
    );
    Ok(())
}
