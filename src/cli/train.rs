//! `fnwatch train`: learn each function's normal behaviour from a window.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use arrow::array::RecordBatch;
use clap::Args;
use fnwatch_analytics::session::{LakeSession, VIEWS_SQL};
use fnwatch_ingest::lake::Lake;
use fnwatch_models::rows::COLUMNS;
use fnwatch_models::{store, train::Trainer};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::thousands;
use super::window::Window;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  fnwatch train --lake ./lake                                  # the last 7 days
  fnwatch train --lake ./lake --from 2026-11-01T00:00:00Z --to 2026-11-04T00:00:00Z
  fnwatch train --lake ./lake --from -30d --model monthly

Train on a window of normal traffic. Each run stores a new version of the
model under LAKE/_models/NAME/; `fnwatch detect` uses the latest.")]
pub struct TrainArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Start of the training window: RFC 3339, a date, or relative (-7d, -24h).
    #[arg(
        long,
        default_value = "-7d",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub from: String,
    /// End of the training window (exclusive).
    #[arg(
        long,
        default_value = "now",
        value_name = "TIME",
        allow_hyphen_values = true
    )]
    pub to: String,
    /// Name of the model, to keep several (letters, digits, - and _).
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub model: String,
}

/// Streams the window's events through `f`, with a spinner on a terminal.
pub async fn scan_window(
    lake: &Lake,
    window: &Window,
    verb: &str,
    mut f: impl FnMut(&RecordBatch) -> anyhow::Result<()> + Send,
) -> anyhow::Result<u64> {
    let session = LakeSession::from_lake(lake, VIEWS_SQL, "queries/views.sql")
        .await
        .with_context(|| format!("opening lake {}", lake.display()))?;
    let sql = window.events_sql(COLUMNS);
    let mut stream = session.stream(&sql).await.context("reading the window")?;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    // The models fold batches on their own thread while the query engine
    // keeps decoding the next ones on the runtime's threads.
    let start = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let n = tokio::task::block_in_place(|| -> anyhow::Result<u64> {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
            let worker = scope.spawn(move || -> anyhow::Result<()> {
                for batch in rx {
                    f(&batch)?;
                }
                Ok(())
            });
            let mut n = 0u64;
            let mut read_error = None;
            while let Some(batch) = handle.block_on(stream.next()) {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        read_error = Some(LakeSession::stream_error(&sql, &e));
                        break;
                    }
                };
                n += batch.num_rows() as u64;
                if tx.send(batch).is_err() {
                    break; // the worker stopped on an error, reported below
                }
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{verb} {} events ({}/s)",
                    thousands(n),
                    thousands((n as f64 / secs) as u64)
                ));
            }
            drop(tx);
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("the model worker thread panicked"))??;
            match read_error {
                Some(e) => Err(e.into()),
                None => Ok(n),
            }
        })
    })?;
    bar.finish_and_clear();
    Ok(n)
}

pub async fn run(a: TrainArgs) -> anyhow::Result<()> {
    let window = Window::parse(&a.from, &a.to)?;
    let lake = Lake::open(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let version = store::next_version(&lake, &a.model).await?;
    let start = Instant::now();
    let mut trainer = Trainer::new();
    let events = scan_window(&lake, &window, "read", |b| {
        trainer.add_batch(b).map_err(anyhow::Error::from)
    })
    .await?;
    if events == 0 {
        anyhow::bail!(
            "no events in {} .. {}: nothing to learn from (check --from/--to against `fnwatch sql --lake {} \"SELECT min(time), max(time) FROM events\"`)",
            window.start_text(),
            window.end_text(),
            a.lake
        );
    }
    let now = super::window::now()?.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut model = trainer.finish(
        &a.model,
        version,
        &window.start_text(),
        &window.end_text(),
        &now,
    );
    let path = store::save(&lake, &mut model).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "Trained model `{}` version {} on {} events from {} to {} in {secs:.1} s.",
        model.name,
        model.version,
        thousands(events),
        window.start_text(),
        window.end_text()
    );
    println!(
        "\n{:<28} {:>12} {:>8} {:>6} {:>6} {:>6} {:>8} {:>7}",
        "function", "invocations", "timeouts", "sites", "peers", "exes", "actions", "numeric"
    );
    for (name, p) in &model.functions {
        println!(
            "{:<28} {:>12} {:>8} {:>6} {:>6} {:>6} {:>8} {:>7}",
            truncate(name, 28),
            thousands(p.invocations),
            p.timeouts,
            p.dns_sites.len(),
            p.peer_sites.len(),
            p.exes.len(),
            p.api_actions.len(),
            match &p.numeric {
                Some(n) => format!("k={}", n.centroids.len()),
                None => "-".to_string(),
            }
        );
    }
    println!("\nModel file: {}", path);
    Ok(())
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
