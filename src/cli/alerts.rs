//! `fnwatch alerts`: deliver stored alerts to the outputs of `fnwatch.toml`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fnwatch_analytics::session::LakeSession;
use fnwatch_analytics::sinks::Sink;
use fnwatch_analytics::sinks::alert::{AlertRecord, read_alerts};
use fnwatch_analytics::sinks::config::OutputConfig;
use fnwatch_analytics::sinks::deliver::{Item, Plan, deliver, plan};
use fnwatch_analytics::sinks::ledger::{Ledger, state_dir};
use fnwatch_analytics::sinks::render::Origin;
use fnwatch_ingest::alerts::{Kind, stable_id};
use fnwatch_ingest::lake::Lake;
use indicatif::{ProgressBar, ProgressStyle};

use super::thousands;
use super::window::{now, parse_time};
use crate::config;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Deliver stored alerts that an output has not acknowledged yet.
    Send(SendArgs),
    /// Send one clearly marked test alert to an output.
    Test(TestArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  fnwatch alerts send --lake ./lake                         # every output, everything it is owed
  fnwatch alerts send --lake ./lake --since -7d --output siem  # only alerts stored in the last 7 days
  FNWATCH__OUTPUTS__SIEM__ADDRESS=10.0.0.5:6514 fnwatch alerts send --lake ./lake

Each output gets the stored alerts it admits (min_severity, kinds, functions)
that it has not acknowledged, oldest first; acknowledged alerts are recorded in
LAKE/_outputs/NAME/delivered.ids, so running this again sends only what is new,
and a crash re-sends at most the batch in flight (receivers can drop repeats by
the alert id). When an output is down, delivery is retried with backoff for the
output's `retry_for`; what is still owed waits for the next run, however long
the outage (there is no look-back limit unless --since asks for one). A batch
the receiver refuses for its content (HTTP 400, 413, 422) is split; an alert it
refuses on its own is parked in LAKE/_outputs/NAME/parked.jsonl and reported,
and delivery goes on (delete the file to try parked alerts again).")]
pub struct SendArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// The configuration file with the `[[outputs]]`.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Only consider alerts stored (detected) since TIME: RFC 3339, a date,
    /// or relative (-24h). Default: every stored alert the output is owed.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Deliver to this output only (repeatable; default: every output).
    #[arg(long = "output", value_name = "NAME")]
    pub outputs: Vec<String>,
    /// Show what each output is owed without sending anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The configuration file with the `[[outputs]]`.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// The output to test.
    #[arg(long, value_name = "NAME")]
    pub output: String,
}

pub async fn run(a: AlertsArgs) -> anyhow::Result<()> {
    match a.command {
        AlertsCommand::Send(s) => {
            let (cfg, path) = config::load(Some(&s.config))?;
            let since = match &s.since {
                Some(t) => Some(parse_time(t, now()?).context("--since")?.timestamp_micros()),
                None => None,
            };
            let lake = Lake::open(&s.lake)
                .await
                .with_context(|| format!("opening lake {}", s.lake))?;
            let outputs = select(&cfg.outputs, &s.outputs, &path)?;
            send(&lake, &outputs, since, s.dry_run, &mut std::io::stdout()).await
        }
        AlertsCommand::Test(t) => {
            let (cfg, path) = config::load(Some(&t.config))?;
            let outputs = select(&cfg.outputs, std::slice::from_ref(&t.output), &path)?;
            test(outputs[0]).await
        }
    }
}

/// The outputs named (all when `names` is empty).
pub fn select<'a>(
    all: &'a [OutputConfig],
    names: &[String],
    path: &std::path::Path,
) -> anyhow::Result<Vec<&'a OutputConfig>> {
    if all.is_empty() {
        bail!(
            "{} configures no outputs (add [[outputs]] tables)",
            path.display()
        );
    }
    if names.is_empty() {
        return Ok(all.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            all.iter().find(|o| &o.name == n).with_context(|| {
                let have: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
                format!(
                    "no output named `{n}` in {} (outputs: {})",
                    path.display(),
                    have.join(", ")
                )
            })
        })
        .collect()
}

/// Delivers what each output is owed among the stored alerts (or those
/// stored since `since_us`, when given); every output is tried even when
/// one fails.
pub async fn send(
    lake: &Lake,
    outputs: &[&OutputConfig],
    since_us: Option<i64>,
    dry_run: bool,
    report: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    if lake.alerts().await?.is_none() {
        writeln!(
            report,
            "The lake holds no alerts yet (`fnwatch detect` stores them); nothing to deliver."
        )?;
        return Ok(());
    }
    let session = LakeSession::from_lake(
        lake,
        fnwatch_analytics::session::VIEWS_SQL,
        "queries/views.sql",
    )
    .await?;
    let alerts = read_alerts(&session, since_us)
        .await
        .context("reading stored alerts")?;
    let origin = Origin::local();
    let mut failures = Vec::new();
    for o in outputs {
        let complete = since_us.is_none();
        match send_one(lake, o, &alerts, complete, origin.clone(), dry_run).await {
            Ok(line) => writeln!(report, "{line}")?,
            Err(e) => {
                writeln!(report, "{}: FAILED: {e:#}", o.name)?;
                failures.push(format!("{e:#}"));
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} outputs failed:\n  {}",
            failures.len(),
            outputs.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// `complete`: `alerts` holds every stored alert, so the ledger's ids of
/// alerts not among them (gone from the lake) can be pruned.
async fn send_one(
    lake: &Lake,
    o: &OutputConfig,
    alerts: &[AlertRecord],
    complete: bool,
    origin: Origin,
    dry_run: bool,
) -> anyhow::Result<String> {
    let mut ledger = Ledger::open(&state_dir(&lake.local_state_root()?, &o.name))?;
    if complete && !dry_run {
        let live: std::collections::HashSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        ledger.prune(|id| live.contains(id))?;
    }
    let p: Plan<'_> = plan(o, alerts, &ledger);
    let parked_before = if p.parked > 0 {
        format!(
            "; {} parked earlier (see {})",
            thousands(p.parked as u64),
            ledger.parked_path().display()
        )
    } else {
        String::new()
    };
    let owed = p.items.len();
    let held = if p.limited > 0 {
        format!(
            " ({} summaries for {} rate-limited)",
            p.items
                .iter()
                .filter(|i| matches!(i, Item::Summary { .. }))
                .count(),
            thousands(p.limited as u64)
        )
    } else {
        String::new()
    };
    if dry_run || owed == 0 {
        return Ok(format!(
            "{}: {} to send{held}; {} delivered before; {} below its filters{parked_before}{}",
            o.name,
            thousands(owed as u64),
            thousands(p.already as u64),
            thousands(p.filtered as u64),
            if dry_run { " (dry run)" } else { "" }
        ));
    }
    let mut sink = Sink::build(o, origin)?;
    let bar = if std::io::stderr().is_terminal() && owed >= 1000 {
        let b = ProgressBar::new(owed as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} messages, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_prefix(o.name.clone());
        b
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    tracing::info!(output = %o.name, target = %sink.target(), messages = owed, "delivering alerts");
    let result = deliver(o, &mut sink, &p, &mut ledger, &mut |n| {
        bar.set_position(n as u64)
    })
    .await;
    bar.finish_and_clear();
    if let Err(e) = sink.close().await {
        tracing::warn!(output = %o.name, error = %e.message, "closing the output");
    }
    let r = result?;
    let secs = start.elapsed().as_secs_f64();
    let parked_now = if r.parked.is_empty() {
        String::new()
    } else {
        let (id, why) = &r.parked[0];
        format!(
            "; PARKED {} alerts the receiver refused (first: {id}: {why}; all in {})",
            thousands(r.parked.len() as u64),
            ledger.parked_path().display()
        )
    };
    Ok(format!(
        "{}: delivered {} messages for {} alerts{held} to {} in {secs:.1} s ({:.0}/s){}; {} delivered before{parked_now}{parked_before}",
        o.name,
        thousands(r.messages as u64),
        thousands(r.alerts as u64),
        sink.target(),
        r.messages as f64 / secs.max(1e-6),
        if r.retries > 0 {
            format!(", after {} retries", r.retries)
        } else {
            String::new()
        },
        thousands(p.already as u64),
    ))
}

/// Sends one test alert (not recorded as delivered).
async fn test(o: &OutputConfig) -> anyhow::Result<()> {
    let t = now()?;
    let us = t.timestamp_micros();
    let sent_at = fnwatch_ingest::alerts::rfc3339_us(us);
    let alert = AlertRecord {
        id: stable_id("fnwatch-test-v1", &[&o.name, &sent_at]),
        time_us: us,
        function: "fnwatch-test".into(),
        request_id: None,
        kind: Kind::BehaviourAnomaly.as_str().into(),
        severity: o.min_severity,
        score: 0.0,
        summary: format!(
            "TEST ALERT from fnwatch: output `{}` works (sent {sent_at}); no action needed",
            o.name
        ),
        evidence: serde_json::json!({"test": true, "output": o.name, "sent_at": sent_at})
            .to_string(),
        detected_at_us: us,
        model: "test".into(),
    };
    let mut sink = Sink::build(o, Origin::local())?;
    let mut last = None;
    let deadline = Instant::now() + o.retry_for.min(std::time::Duration::from_secs(30));
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match sink.send(&[&alert]).await {
            Ok(()) => break,
            Err(e) if e.retryable && Instant::now() + pause < deadline => {
                tracing::warn!(error = %e.message, "test alert failed; retrying");
                last = Some(e.message);
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => bail!("output `{}` ({}): {}", o.name, sink.target(), e.message),
        }
    }
    if let Err(e) = sink.close().await {
        bail!("output `{}` ({}): {}", o.name, sink.target(), e.message);
    }
    let _ = last;
    println!(
        "Sent a test alert (id {}) to output `{}` ({}).",
        alert.id,
        o.name,
        sink.target()
    );
    Ok(())
}
