//! `fnwatch inventory`: every function of the account's regions, with its
//! configuration, triggers and role policies, as one `function_config`
//! event per function per run.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use clap::Args;
use fnwatch_ingest::lake::Lake;
use fnwatch_ingest::sources::inventory::{
    AwsEndpoint, CollectOptions, Inventory, Region, RunWrite, SdkIam, SdkLambda, caller_account,
    collect, last_run_ms, load_config, write_run,
};
use tracing::{info, warn};

use super::thousands;

const LONG_ABOUT: &str = "\
Read every Lambda function of the account (in each --region) with the AWS SDK
and write one `function_config` event per function to the lake: runtime,
handler, memory, timeout, role, layers, code hash, the NAMES of environment
variables (never their values), triggers (event source mappings and the
resource policy), and the role's attached and inline policies as `statements`
and a flat `permissions` list.

Credentials come from the standard AWS chain (environment, profile, SSO,
container or instance role); infra/aws/README.md lists the read-only
permissions needed. A call that is denied is reported and the run goes on.

Examples:
  fnwatch inventory --lake ./lake --region eu-west-1 --region us-east-1
  fnwatch inventory --lake s3://acme/lake --every 6h      # stays up; SIGTERM stops it";

/// `fnwatch inventory` arguments.
#[derive(Debug, Args)]
#[command(long_about = LONG_ABOUT)]
pub struct InventoryArgs {
    /// The lake (a folder or s3://bucket/prefix), created if missing.
    #[arg(long, value_name = "LAKE")]
    pub lake: String,
    /// A region to inventory (repeat for several; default: the AWS chain's region).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// An AWS-compatible endpoint for Lambda, IAM and STS (an emulator, a VPC endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Stay up and take an inventory this often (e.g. 6h, 30m); the first run
    /// comes when the last one in the lake is this old.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
    /// API calls in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
}

pub async fn run(a: InventoryArgs) -> anyhow::Result<()> {
    if a.every.is_some_and(|d| d < Duration::from_secs(1)) {
        bail!("--every must be at least 1s");
    }
    let mut lake = Lake::open_or_create(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let base = load_config(&AwsEndpoint {
        region: a.regions.first().cloned(),
        endpoint_url: a.endpoint_url.clone(),
    })
    .await;
    let regions: Vec<String> = if a.regions.is_empty() {
        match base.region() {
            Some(r) => vec![r.to_string()],
            None => bail!(
                "no AWS region: pass --region, or set AWS_REGION (or a region in the AWS profile)"
            ),
        }
    } else {
        let mut r = a.regions.clone();
        r.sort();
        r.dedup();
        r
    };
    let account = caller_account(&base)
        .await
        .map_err(|e| anyhow::anyhow!("sts:GetCallerIdentity: {e}"))
        .context("finding the account of the AWS credentials")?;
    let mut clients = Vec::new();
    for r in &regions {
        let config = load_config(&AwsEndpoint {
            region: Some(r.clone()),
            endpoint_url: a.endpoint_url.clone(),
        })
        .await;
        let mut lambda = SdkLambda::new(&config);
        if let Some(n) = std::env::var("FNWATCH_TUNE_FUNCTIONS_PER_PAGE")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            lambda = lambda.with_page_size(n);
        }
        clients.push(Region {
            name: r.clone(),
            lambda,
        });
    }
    let iam = SdkIam::new(&base);
    let Some(every) = a.every else {
        let outcome = one_run(
            &mut lake,
            &clients,
            &iam,
            &account,
            &regions,
            &a,
            Utc::now(),
        )
        .await?;
        if outcome.all_regions_failed {
            bail!("no region could be listed (see the problems above)");
        }
        return Ok(());
    };

    let stop = super::server::shutdown_signal();
    tokio::pin!(stop);
    eprintln!(
        "fnwatch: inventory of account {account} ({}) every {} into {}; stop with Ctrl-C or SIGTERM",
        regions.join(", "),
        humantime::format_duration(every),
        a.lake
    );
    let every_chrono = chrono::Duration::from_std(every).context("--every is too long")?;
    let retry = chrono::Duration::from_std(Duration::from_secs(60).min(every))
        .context("--every is too long")?;
    // The first run comes when the lake's last one is `every` old (a restart
    // does not take a run twice); later ones follow this process's own runs.
    let mut next_due: Option<DateTime<Utc>> = last_run_ms(&lake, &account, &regions)
        .await?
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t + every_chrono);
    loop {
        let now = Utc::now();
        if let Some(due) = next_due.filter(|d| *d > now) {
            eprintln!(
                "fnwatch: next inventory at {}",
                due.to_rfc3339_opts(SecondsFormat::Secs, true)
            );
            let wait = (due - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => continue,
            }
        }
        let run_time = Utc::now();
        let result = tokio::select! {
            _ = &mut stop => {
                eprintln!("fnwatch: stopped during a run (a run is in the lake whole or not at all)");
                return Ok(());
            }
            r = one_run(&mut lake, &clients, &iam, &account, &regions, &a, run_time) => r,
        };
        next_due = match result {
            Ok(o) if !o.all_regions_failed => Some(run_time + every_chrono),
            Ok(_) => Some(Utc::now() + retry),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "inventory run failed; trying again soon");
                Some(Utc::now() + retry)
            }
        };
    }
    eprintln!("fnwatch: inventory stopped");
    Ok(())
}

struct Outcome {
    all_regions_failed: bool,
}

async fn one_run(
    lake: &mut Lake,
    clients: &[Region<SdkLambda>],
    iam: &SdkIam,
    account: &str,
    regions: &[String],
    a: &InventoryArgs,
    run_time: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let opts = CollectOptions {
        account: account.to_string(),
        run_time,
        concurrency: a.concurrency.max(1),
    };
    info!(account, regions = ?regions, "inventory run starting");
    let inv = collect(clients, iam, &opts).await;
    let collected = started.elapsed();
    let ok_regions: Vec<String> = regions
        .iter()
        .filter(|r| !inv.failed_regions.iter().any(|(f, _)| f == *r))
        .cloned()
        .collect();
    let write = if ok_regions.is_empty() {
        RunWrite::default()
    } else {
        let ingested_at = Utc::now().timestamp_micros();
        write_run(
            lake,
            account,
            &ok_regions,
            run_time.timestamp_millis(),
            &inv.events,
            ingested_at,
        )
        .await
        .with_context(|| format!("writing the inventory run to {}", a.lake))?
    };
    print_summary(
        &inv,
        &write,
        account,
        regions,
        run_time,
        collected,
        started.elapsed(),
        &a.lake,
    );
    Ok(Outcome {
        all_regions_failed: ok_regions.is_empty(),
    })
}

#[allow(clippy::too_many_arguments)]
fn print_summary(
    inv: &Inventory,
    write: &RunWrite,
    account: &str,
    regions: &[String],
    run_time: DateTime<Utc>,
    collected: Duration,
    total: Duration,
    lake: &str,
) {
    let calls: u64 = inv.calls.values().sum();
    println!(
        "inventory of account {account} at {}: {} function{} in {} ({}), {} role{}, {} managed polic{}",
        run_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        thousands(inv.events.len() as u64),
        if inv.events.len() == 1 { "" } else { "s" },
        if regions.len() == 1 {
            "1 region".to_string()
        } else {
            format!("{} regions", regions.len())
        },
        regions.join(", "),
        thousands(inv.roles as u64),
        if inv.roles == 1 { "" } else { "s" },
        thousands(inv.managed_policies as u64),
        if inv.managed_policies == 1 {
            "y"
        } else {
            "ies"
        },
    );
    println!(
        "API calls: {} in {:.2} s ({})",
        thousands(calls),
        collected.as_secs_f64(),
        inv.calls
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if write.written {
        println!(
            "wrote {} function_config events to {lake} in one commit ({:.2} s in all)",
            thousands(write.counts.total_events()),
            total.as_secs_f64()
        );
    } else if !inv.events.is_empty() {
        println!("the lake already holds this run: nothing written");
    }
    if !write.first_dead_letters.is_empty() {
        println!(
            "dead letters ({} of {}):",
            write.first_dead_letters.len(),
            write.counts.dead_letters
        );
        for (pos, why) in &write.first_dead_letters {
            println!("  {pos}: {why}");
        }
    }
    if !inv.problems.is_empty() {
        println!("problems ({}):", inv.problems.len());
        for p in &inv.problems {
            println!("  {p}");
        }
    }
}
