//! `fnwatch report`: an anomaly report for a window (HTML, Markdown, JSON),
//! once or on a cron schedule.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use fnwatch_analytics::report::{Period, build, html, markdown};
use fnwatch_analytics::session::{LakeSession, VIEWS_SQL};
use fnwatch_ingest::lake::Lake;

use super::window::{now, parse_time};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  fnwatch report --lake ./lake --window -24h --out reports/
  fnwatch report --lake ./lake --from 2026-11-04T00:00:00Z --to 2026-11-05T00:00:00Z --out reports/
  fnwatch report --lake ./lake --cron \"0 7 * * *\" --out reports/    # stays up: one report a day at 07:00 UTC

Each report is written as fnwatch-report-<from>--<to>.html (self-contained:
inline CSS and SVG charts), .md and .json (the same data). With --cron the
window ends at each tick; a failed run is retried and, if it still fails,
logged as an error and recorded in <out>/fnwatch-report-<tick>.failed.txt.")]
pub struct ReportArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Length of the window, ending now (or at each cron tick): -24h, -7d, ...
    #[arg(
        long,
        default_value = "-24h",
        value_name = "AGO",
        allow_hyphen_values = true
    )]
    pub window: String,
    /// Start of the window (RFC 3339, a date, or relative); with --to, instead of --window.
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        requires = "to",
        conflicts_with = "cron"
    )]
    pub from: Option<String>,
    /// End of the window (exclusive).
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        requires = "from",
        conflicts_with = "cron"
    )]
    pub to: Option<String>,
    /// How far before the window the behaviour-drift baseline reaches.
    #[arg(
        long,
        default_value = "-7d",
        value_name = "AGO",
        allow_hyphen_values = true
    )]
    pub baseline: String,
    /// Folder the reports are written to (created if missing).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
    /// Stay up and write one report per tick of this cron expression (UTC;
    /// 5 fields, or 6 with seconds first).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Attempts per scheduled report before it is reported as failed.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub attempts: u32,
}

/// `-24h` (or `24h`) as a duration.
fn span(text: &str, what: &str) -> anyhow::Result<chrono::TimeDelta> {
    let t = text.trim();
    let rel = if t.starts_with('-') {
        t.to_string()
    } else {
        format!("-{t}")
    };
    let epoch = DateTime::<Utc>::from_timestamp(4_000_000_000, 0).context("clock")?;
    let start = parse_time(&rel, epoch).with_context(|| format!("{what} `{text}`"))?;
    let d = epoch - start;
    if d <= chrono::TimeDelta::zero() {
        bail!("{what} `{text}` is empty: use a length such as -24h or -7d");
    }
    Ok(d)
}

pub async fn run(a: ReportArgs) -> anyhow::Result<()> {
    let window = span(&a.window, "--window")?;
    let baseline = span(&a.baseline, "--baseline")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    if let Some(expr) = &a.cron {
        let cron = croner::Cron::from_str(expr)
            .map_err(|e| anyhow::anyhow!("--cron `{expr}` is not a cron expression: {e}"))?;
        return scheduled(&a, &cron, window, baseline).await;
    }
    let (from, to) = match (&a.from, &a.to) {
        (Some(f), Some(t)) => {
            let w = super::window::Window::parse(f, t)?;
            (w.from, w.to)
        }
        _ => {
            let to = now()?;
            (to - window, to)
        }
    };
    let paths = one(&a.lake, &a.out, from, to, baseline).await?;
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

/// Writes one report; returns the files written.
async fn one(
    lake_spec: &str,
    out: &Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    baseline: chrono::TimeDelta,
) -> anyhow::Result<Vec<PathBuf>> {
    let started = std::time::Instant::now();
    let lake = Lake::open(lake_spec)
        .await
        .with_context(|| format!("opening lake {lake_spec}"))?;
    let has_alerts = lake.alerts().await?.is_some();
    let session = LakeSession::from_lake(&lake, VIEWS_SQL, "queries/views.sql").await?;
    let period = Period {
        from_us: from.timestamp_micros(),
        to_us: to.timestamp_micros(),
        baseline_from_us: (from - baseline).timestamp_micros(),
    };
    let report = build(&session, period, has_alerts, now()?.timestamp_micros())
        .await
        .context("running the report queries")?;
    let stem = format!("fnwatch-report-{}--{}", stamp(from), stamp(to));
    let mut written = Vec::new();
    for (ext, text) in [
        ("html", html::render(&report)),
        ("md", markdown::render(&report)),
        ("json", report.to_json()),
    ] {
        let path = out.join(format!("{stem}.{ext}"));
        let tmp = out.join(format!(".{stem}.{ext}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    tracing::info!(from = %stamp(from), to = %stamp(to), seconds = started.elapsed().as_secs_f64(), "report written");
    Ok(written)
}

/// A file-name-safe UTC time: `2026-11-04T07-00-00Z`.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H-%M-%SZ").to_string()
}

/// The first tick of `cron` strictly after `after`.
pub fn next_tick(cron: &croner::Cron, after: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false)
        .map_err(|e| anyhow::anyhow!("no next time for the cron expression: {e}"))
}

async fn scheduled(
    a: &ReportArgs,
    cron: &croner::Cron,
    window: chrono::TimeDelta,
    baseline: chrono::TimeDelta,
) -> anyhow::Result<()> {
    // One listener for the whole run, so a stop is never missed between
    // the waits.
    let stop = super::server::shutdown_signal();
    tokio::pin!(stop);
    let mut after = now()?;
    eprintln!(
        "fnwatch report: scheduled \"{}\" (UTC), windows of {}, writing to {}; stop with Ctrl-C or SIGTERM",
        cron.pattern.as_str(),
        humanize(window),
        a.out.display()
    );
    loop {
        let tick = next_tick(cron, after)?;
        tracing::info!(next = %tick.to_rfc3339(), "next report");
        let wait = (tick - now()?).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            // A stop wins over a tick that is already due.
            biased;
            _ = &mut stop => {
                eprintln!("fnwatch report: stopped");
                return Ok(());
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let mut attempt = 1;
        loop {
            // A stop does not wait for a report (a lake that hangs would hold
            // it up): the report's files are written after its last await,
            // so an interrupted one leaves none behind.
            let outcome = tokio::select! {
                biased;
                _ = &mut stop => {
                    eprintln!(
                        "fnwatch report: stopped; the report for the tick at {} was not finished",
                        tick.to_rfc3339()
                    );
                    return Ok(());
                }
                outcome = one(&a.lake, &a.out, tick - window, tick, baseline) => outcome,
            };
            match outcome {
                Ok(paths) => {
                    let first = paths
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    eprintln!(
                        "fnwatch report: {first} (written for the tick at {})",
                        tick.to_rfc3339()
                    );
                    break;
                }
                Err(e) if attempt < a.attempts => {
                    tracing::warn!(tick = %tick.to_rfc3339(), attempt, error = %format!("{e:#}"), "report failed; retrying");
                    tokio::select! {
                        biased;
                        _ = &mut stop => {
                            eprintln!("fnwatch report: stopped");
                            return Ok(());
                        }
                        _ = tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))) => {}
                    }
                    attempt += 1;
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::error!(tick = %tick.to_rfc3339(), attempts = attempt, error = %msg, "report failed");
                    let marker = a
                        .out
                        .join(format!("fnwatch-report-{}.failed.txt", stamp(tick)));
                    let _ = std::fs::write(
                        &marker,
                        format!(
                            "the report for the tick at {} failed after {attempt} attempts: {msg}\n",
                            tick.to_rfc3339()
                        ),
                    );
                    eprintln!(
                        "fnwatch report: FAILED for the tick at {}: {msg}",
                        tick.to_rfc3339()
                    );
                    break;
                }
            }
        }
        after = tick;
    }
}

fn humanize(d: chrono::TimeDelta) -> String {
    humantime::format_duration(d.to_std().unwrap_or_default()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_expression() {
        let cron = croner::Cron::from_str("0 7 * * *").unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            next_tick(&cron, t("2026-11-04T06:59:59Z")).unwrap(),
            t("2026-11-04T07:00:00Z")
        );
        // Strictly after: a tick does not run twice.
        assert_eq!(
            next_tick(&cron, t("2026-11-04T07:00:00Z")).unwrap(),
            t("2026-11-05T07:00:00Z")
        );
        let secs = croner::Cron::from_str("*/2 * * * * *").unwrap();
        assert_eq!(
            next_tick(&secs, t("2026-11-04T07:00:01Z")).unwrap(),
            t("2026-11-04T07:00:02Z")
        );
    }

    #[test]
    fn windows_read_as_lengths() {
        assert_eq!(
            span("-24h", "--window").unwrap(),
            chrono::TimeDelta::hours(24)
        );
        assert_eq!(span("7d", "--window").unwrap(), chrono::TimeDelta::days(7));
        assert!(span("-0h", "--window").is_err());
        assert!(span("soon", "--window").is_err());
    }
}
