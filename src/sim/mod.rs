//! The telemetry simulator: a fleet of serverless functions, days of their
//! telemetry in every record shape of the input contract
//! (`shared/spec/telemetry.md`), labelled attacks on the last days, and
//! labelled benign surprises ("hard cases") that must not look like attacks.
//!
//! [`generate`] writes one gzip JSON Lines file per UTC day,
//! `telemetry-YYYY-MM-DD.jsonl.gz`, and `_labels.jsonl`, one line per
//! labelled invocation:
//! `{"request_id":..,"function":..,"time":..,"label":"attack"|"benign_hard","class":..}`.
//! Unlabelled invocations are plain benign.
//!
//! Deterministic: the same [`SimConfig`] gives the same bytes. Everything
//! comes from ChaCha8 generators seeded from `seed` (one per day, so the
//! days can be written in parallel), and the gzip header has no time.
//!
//! Within a day file the fleet's invocations follow each other in start
//! order, minute by minute, with a daily rhythm. An invocation's events are
//! written together, in time order, its report last. The report is a native
//! `invocation` event, except:
//! - `email-sender` reports only through CloudWatch Logs `REPORT` lines
//!   (a few invocations per subscription payload);
//! - for half of the functions a timed-out invocation loses its sensor and
//!   is known only from a CloudWatch Logs payload (no `cpu_ms`);
//! - `webhook-relay` reports about 0.5% of its invocations through Lambda
//!   Telemetry API batches.

mod attacks;
mod behave;
mod day;
mod fleet;
mod inv;
pub mod kinesis;
mod plan;
mod samples;
mod shapes;
mod util;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};

pub use attacks::Class;
pub use day::HARD_CASES;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Midnight UTC of the first day.
    pub start: DateTime<Utc>,
    pub days: u32,
    /// Invocations of the fleet per day (attacks and hard cases come on top).
    pub invocations_per_day: u64,
    /// The last `attack_days` days carry attacks; the days before are
    /// benign-only, for training.
    pub attack_days: u32,
    /// Attacked invocations per class, spread over the attack days and over
    /// several functions.
    pub attacks_per_class: u32,
    /// Plant benign hard cases on the attack days.
    pub hard_cases: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            start: Utc
                .with_ymd_and_hms(2026, 11, 20, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            days: 4,
            invocations_per_day: 20_000,
            attack_days: 1,
            attacks_per_class: 40,
            hard_cases: true,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct SimSummary {
    /// The day files, in day order.
    pub files: Vec<PathBuf>,
    pub labels: PathBuf,
    /// Invocations (each has exactly one report, in whatever shape).
    pub invocations: u64,
    /// Events the lake will hold: native event lines plus one `invocation`
    /// per report that came as CloudWatch Logs or Telemetry API records
    /// (application log lines not counted).
    pub events: u64,
    /// Attacked invocations per class.
    pub attacks: BTreeMap<String, u64>,
    /// Labelled benign hard cases per case.
    pub hard_cases: BTreeMap<String, u64>,
}

/// Writes the telemetry of `cfg` into `out_dir` (created if missing).
/// `progress(n)` is called with the invocations written so far, about every
/// 10,000 and once at the end.
pub fn generate(
    cfg: &SimConfig,
    out_dir: &Path,
    progress: impl Fn(u64),
) -> anyhow::Result<SimSummary> {
    anyhow::ensure!(cfg.days >= 1, "the simulation needs at least one day");
    anyhow::ensure!(
        cfg.days <= 3660,
        "at most 3660 days can be simulated, got {}",
        cfg.days
    );
    let start = cfg.start;
    anyhow::ensure!(
        start.timestamp_millis().rem_euclid(util::MS_PER_DAY) == 0,
        "the start must be midnight UTC, got {}",
        start.to_rfc3339()
    );
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let plan = plan::make(cfg);

    let days = cfg.days;
    let next = AtomicU32::new(0);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<anyhow::Result<day::DayOut>>>> =
        Mutex::new((0..days).map(|_| None).collect());
    let workers = days.min(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let d = next.fetch_add(1, Ordering::Relaxed);
                        if d >= days || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let res = day::generate_day(
                            &plan,
                            cfg.seed,
                            cfg.hard_cases,
                            d,
                            out_dir,
                            &done,
                            &stop,
                        );
                        if res.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        let mut guard = results.lock().unwrap_or_else(|e| e.into_inner());
                        guard[d as usize] = Some(res);
                    }
                })
            })
            .collect();
        let mut last = 0u64;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            let n = done.load(Ordering::Relaxed);
            if n >= last + 10_000 {
                progress(n);
                last = n;
            }
        }
    });
    progress(done.load(Ordering::Relaxed));

    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut outs = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(o) => outs.push(o),
            // "stopped" errors only echo the first real failure
            Err(e) if first_err.is_none() && e.to_string() != "stopped" => first_err = Some(e),
            Err(_) => {}
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    anyhow::ensure!(outs.len() == days as usize, "a day was not generated");

    let mut labels: Vec<day::Label> = outs
        .iter_mut()
        .flat_map(|o| std::mem::take(&mut o.labels))
        .collect();
    labels.sort_by(|a, b| {
        a.end_ms
            .cmp(&b.end_ms)
            .then_with(|| a.request_id.cmp(&b.request_id))
    });
    let labels_path = out_dir.join("_labels.jsonl");
    write_labels(&labels_path, &labels)
        .with_context(|| format!("writing {}", labels_path.display()))?;

    let mut attacks = BTreeMap::new();
    if plan.first_attack_day < days && cfg.attacks_per_class > 0 {
        for c in Class::ALL {
            attacks.insert(c.name().to_string(), 0);
        }
    }
    for (k, v) in day::count_labels(&labels, "attack") {
        attacks.insert(k, v);
    }
    let mut hard_cases = BTreeMap::new();
    if cfg.hard_cases && plan.first_attack_day < days {
        for c in HARD_CASES {
            hard_cases.insert(c.to_string(), 0);
        }
    }
    for (k, v) in day::count_labels(&labels, "benign_hard") {
        hard_cases.insert(k, v);
    }
    Ok(SimSummary {
        files: outs.iter().map(|o| o.path.clone()).collect(),
        labels: labels_path,
        invocations: outs.iter().map(|o| o.invocations).sum(),
        events: outs.iter().map(|o| o.events).sum(),
        attacks,
        hard_cases,
    })
}

fn write_labels(path: &Path, labels: &[day::Label]) -> anyhow::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::new(f);
    let mut line = Vec::with_capacity(200);
    for l in labels {
        line.clear();
        line.extend_from_slice(b"{\"request_id\":");
        util::esc(&mut line, &l.request_id);
        util::kstr(&mut line, "function", l.function);
        util::kstr(&mut line, "time", &util::iso(l.end_ms));
        util::kstr(&mut line, "label", l.label);
        util::kstr(&mut line, "class", l.class);
        line.extend_from_slice(b"}\n");
        w.write_all(&line)?;
    }
    w.flush()?;
    Ok(())
}
