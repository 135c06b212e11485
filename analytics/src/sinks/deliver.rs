//! Delivery of stored alerts to one output: what is owed (filters, ledger,
//! rate limiting with summary alerts), then batches sent in order with
//! retries and backoff, each acknowledged batch recorded in the ledger.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fnwatch_ingest::alerts::{rfc3339_us, stable_id};

use super::alert::AlertRecord;
use super::config::{OutputConfig, RateLimit};
use super::ledger::Ledger;
use super::{SendError, Sink};
use crate::error::{AnalyticsError, Result};

/// One message to deliver: an alert, or a summary standing for the alerts a
/// rate limit held back.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    One(&'a AlertRecord),
    Summary {
        alert: Box<AlertRecord>,
        covers: Vec<&'a AlertRecord>,
    },
}

impl Item<'_> {
    /// The alert this message carries.
    pub fn alert(&self) -> &AlertRecord {
        match self {
            Item::One(a) => a,
            Item::Summary { alert, .. } => alert,
        }
    }

    /// The stored alerts this message accounts for.
    pub fn covered_ids(&self) -> Vec<&str> {
        match self {
            Item::One(a) => vec![a.id.as_str()],
            Item::Summary { covers, .. } => covers.iter().map(|a| a.id.as_str()).collect(),
        }
    }
}

/// What an output owes.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Messages in delivery order (by alert time, then id).
    pub items: Vec<Item<'a>>,
    /// Alerts the output admits that it already acknowledged.
    pub already: usize,
    /// Alerts the output's filters leave out.
    pub filtered: usize,
    /// Alerts folded into summary messages.
    pub limited: usize,
    /// Alerts parked earlier (the receiver refused them on their own).
    pub parked: usize,
}

/// Works out what `cfg` owes from `alerts` (sorted by time, then id).
pub fn plan<'a>(cfg: &OutputConfig, alerts: &'a [AlertRecord], ledger: &Ledger) -> Plan<'a> {
    let mut p = Plan::default();
    let admitted: Vec<&AlertRecord> = alerts.iter().filter(|a| cfg.admits(a)).collect();
    p.filtered = alerts.len() - admitted.len();
    let Some(limit) = cfg.rate_limit else {
        for a in admitted {
            if ledger.is_parked(&a.id) {
                p.parked += 1;
            } else if ledger.contains(&a.id) {
                p.already += 1;
            } else {
                p.items.push(Item::One(a));
            }
        }
        return p;
    };
    // Rank every admitted alert within its (function, kind, window), counting
    // delivered ones too, so the limit does not depend on how runs fell.
    let window_us = i64::try_from(limit.window.as_micros())
        .unwrap_or(i64::MAX)
        .max(1);
    let mut rank: BTreeMap<(&str, &str, i64), u32> = BTreeMap::new();
    let mut held: BTreeMap<(&str, &str, i64), Vec<&AlertRecord>> = BTreeMap::new();
    for a in admitted {
        let key = (
            a.function.as_str(),
            a.kind.as_str(),
            a.time_us.div_euclid(window_us),
        );
        let r = rank.entry(key).or_insert(0);
        *r += 1;
        if ledger.is_parked(&a.id) {
            p.parked += 1;
        } else if ledger.contains(&a.id) {
            p.already += 1;
        } else if *r <= limit.max {
            p.items.push(Item::One(a));
        } else {
            held.entry(key).or_default().push(a);
        }
    }
    for ((_, _, bucket), covers) in held {
        p.limited += covers.len();
        let alert = summary_alert(&covers, bucket * window_us, window_us, &limit);
        p.items.push(Item::Summary {
            alert: Box::new(alert),
            covers,
        });
    }
    p.items.sort_by(|a, b| {
        (a.alert().time_us, &a.alert().id).cmp(&(b.alert().time_us, &b.alert().id))
    });
    p
}

/// One alert standing for `covers` (same function and kind, one window).
fn summary_alert(
    covers: &[&AlertRecord],
    start_us: i64,
    window_us: i64,
    limit: &RateLimit,
) -> AlertRecord {
    let first = covers[0];
    let last = covers[covers.len() - 1];
    let ids: Vec<&str> = covers.iter().map(|a| a.id.as_str()).collect();
    let mut parts = vec![first.function.as_str(), first.kind.as_str()];
    parts.extend(ids.iter().copied());
    let id = stable_id("fnwatch-summary-v1", &parts);
    let severity = covers
        .iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(first.severity);
    let score = covers.iter().map(|a| a.score).fold(0.0_f64, f64::max);
    let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
    for a in covers {
        *by_severity.entry(a.severity.as_str()).or_insert(0) += 1;
    }
    let window = humantime::format_duration(limit.window).to_string();
    let summary = format!(
        "{} more {} alerts for {} in the {window} from {} (this output delivers {} per function and kind in {window}); the first: {}",
        covers.len(),
        first.kind,
        first.function,
        rfc3339_us(start_us),
        limit.max,
        super::render::cap(&first.summary, 300),
    );
    let evidence = serde_json::json!({
        "aggregated": covers.len(),
        "window_start": rfc3339_us(start_us),
        "window_end": rfc3339_us(start_us + window_us),
        "limit": limit.max,
        "by_severity": by_severity,
        "first_time": first.time_text(),
        "last_time": last.time_text(),
        "alert_ids": ids.iter().take(20).collect::<Vec<_>>(),
        "request_ids": covers.iter().filter_map(|a| a.request_id.as_deref()).take(20).collect::<Vec<_>>(),
    });
    AlertRecord {
        id,
        time_us: last.time_us,
        function: first.function.clone(),
        request_id: None,
        kind: first.kind.clone(),
        severity,
        score,
        summary,
        evidence: evidence.to_string(),
        detected_at_us: covers.iter().map(|a| a.detected_at_us).max().unwrap_or(0),
        model: first.model.clone(),
    }
}

/// What one delivery run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Messages the output acknowledged.
    pub messages: usize,
    /// Stored alerts those messages account for.
    pub alerts: usize,
    /// Summary messages among them.
    pub summaries: usize,
    /// Retries after failures.
    pub retries: usize,
    /// Batches split in two because the receiver refused their content.
    pub splits: usize,
    /// Stored alerts parked in this run (the receiver refused them alone),
    /// with why.
    pub parked: Vec<(String, String)>,
}

/// Sends the plan's messages in batches, in order; records each acknowledged
/// batch in the ledger. Retryable failures are retried with exponential
/// backoff and jitter for up to the output's `retry_for`; then (or on a
/// failure retrying cannot fix) it stops with an error saying how many
/// messages are still owed. A batch whose content the receiver refuses
/// (HTTP 400/413/422: too large, or an event it cannot take) is split in
/// halves and each sent on its own, so one bad or oversized alert cannot
/// block the output; a single message refused so is parked in the ledger
/// (recorded with the receiver's answer, and reported) and delivery goes
/// on. `progress` is told the messages done so far.
pub async fn deliver(
    cfg: &OutputConfig,
    sink: &mut Sink,
    plan: &Plan<'_>,
    ledger: &mut Ledger,
    progress: &mut dyn FnMut(usize),
) -> Result<Report> {
    let mut report = Report::default();
    let batch_size = cfg.batch_size();
    // Batches still to send, next first; a split puts its halves in front.
    let mut pending: std::collections::VecDeque<&[Item<'_>]> =
        plan.items.chunks(batch_size).collect();
    let mut done = 0usize;
    while let Some(batch) = pending.pop_front() {
        let alerts: Vec<&AlertRecord> = batch.iter().map(Item::alert).collect();
        match send_with_retries(cfg, sink, &alerts, &mut report).await {
            Ok(()) => {
                ledger.record(batch.iter().flat_map(Item::covered_ids))?;
                report.messages += batch.len();
                for item in batch {
                    match item {
                        Item::One(_) => report.alerts += 1,
                        Item::Summary { covers, .. } => {
                            report.alerts += covers.len();
                            report.summaries += 1;
                        }
                    }
                }
            }
            Err((e, _)) if e.refused_content && batch.len() > 1 => {
                let (first, second) = batch.split_at(batch.len() / 2);
                tracing::warn!(output = %cfg.name, target = %sink.target(), messages = batch.len(), error = %e.message, "the receiver refused a batch's content; sending it in halves");
                report.splits += 1;
                pending.push_front(second);
                pending.push_front(first);
                continue;
            }
            Err((e, _)) if e.refused_content => {
                let item = &batch[0];
                let at = rfc3339_us(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as i64)
                        .unwrap_or(0),
                );
                let reason = format!("{}: {}", sink.target(), e.message);
                ledger.park(item.covered_ids(), &reason, &at)?;
                tracing::warn!(output = %cfg.name, target = %sink.target(), alert = %item.alert().id, error = %e.message, path = %ledger.parked_path().display(), "the receiver refused one alert; parked it and going on");
                for id in item.covered_ids() {
                    report.parked.push((id.to_string(), e.message.clone()));
                }
            }
            Err((e, waited)) => {
                let owed = plan.items.len() - done;
                return Err(AnalyticsError::Delivery(format!(
                    "output `{}` ({}): {}{}; {owed} of {} messages not delivered, they stay queued for the next `fnwatch alerts send`",
                    cfg.name,
                    sink.target(),
                    e.message,
                    if e.retryable {
                        format!(
                            " (gave up after retrying for {})",
                            humantime::format_duration(Duration::from_secs(waited.as_secs()))
                        )
                    } else {
                        String::new()
                    },
                    plan.items.len()
                )));
            }
        }
        done += batch.len();
        progress(done);
    }
    Ok(report)
}

/// Sends one batch, retrying what can be retried for up to `retry_for`;
/// the last failure and how long was spent retrying otherwise.
async fn send_with_retries(
    cfg: &OutputConfig,
    sink: &mut Sink,
    alerts: &[&AlertRecord],
    report: &mut Report,
) -> std::result::Result<(), (SendError, Duration)> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(250);
    loop {
        match sink.send(alerts).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let waited = started.elapsed();
                let pause = e
                    .retry_after
                    .unwrap_or(backoff)
                    .max(backoff)
                    .min(cfg.retry_max_backoff);
                let pause = jitter(pause);
                if !e.retryable || waited + pause > cfg.retry_for {
                    return Err((e, waited));
                }
                tracing::warn!(output = %cfg.name, target = %sink.target(), retry_in_ms = pause.as_millis() as u64, error = %e.message, "delivery failed; retrying");
                report.retries += 1;
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(cfg.retry_max_backoff);
            }
        }
    }
}

/// `d` scaled by a factor in [0.75, 1.25), so many senders retrying the same
/// receiver spread out.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let f = 0.75 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(f)
}

/// Describes a send failure for [`SendError`] users.
pub fn failure(retryable: bool, message: impl Into<String>) -> SendError {
    SendError {
        retryable,
        retry_after: None,
        message: message.into(),
        refused_content: false,
    }
}
