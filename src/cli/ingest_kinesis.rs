//! `fnwatch ingest --kinesis STREAM`: the long-lived Kinesis worker.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use fnwatch_ingest::lake::Lake;
use fnwatch_ingest::sources::kinesis::metrics::{WorkerMetrics, serve};
use fnwatch_ingest::sources::kinesis::{
    FailPoints, FaultyKinesis, KinesisApi, KinesisEndpoint, KinesisSourceConfig, SdkKinesis,
    StartFrom, Worker,
};
use tracing::info;

use super::{human_bytes, thousands};

/// Where a shard the lake has never seen starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromArg {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records put after the worker starts.
    Latest,
    /// Records from --timestamp on.
    AtTimestamp,
}

/// The flags of the Kinesis worker (part of `fnwatch ingest`).
#[derive(Debug, Clone, Args)]
pub struct KinesisArgs {
    /// Read this Kinesis stream (name) with a long-lived worker instead of files.
    #[arg(long, value_name = "STREAM", help_heading = "Kinesis worker")]
    pub kinesis: Option<String>,
    /// AWS region (default: the standard chain: AWS_REGION, the profile, ...).
    #[arg(long, value_name = "REGION", help_heading = "Kinesis worker")]
    pub region: Option<String>,
    /// A Kinesis-compatible endpoint instead of AWS's (a local emulator, a VPC endpoint).
    #[arg(long, value_name = "URL", help_heading = "Kinesis worker")]
    pub endpoint_url: Option<String>,
    /// Where shards without a checkpoint in the lake start (children of
    /// shards already read always start at their beginning).
    #[arg(long, value_enum, default_value_t = FromArg::TrimHorizon, help_heading = "Kinesis worker")]
    pub from: FromArg,
    /// With --from at-timestamp: RFC 3339 time or relative (-1h, -2d).
    #[arg(long, value_name = "TIME", help_heading = "Kinesis worker")]
    pub timestamp: Option<String>,
    /// Commit at least this often while records arrive (e.g. 30s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, help_heading = "Kinesis worker")]
    pub flush_interval: Duration,
    /// Commit once the records buffered take this much memory decoded (Arrow
    /// arrays and dead letters, not their compressed size on the stream;
    /// e.g. 64MiB, 500k).
    #[arg(long, value_name = "BYTES", default_value = "128MiB", value_parser = parse_bytes, help_heading = "Kinesis worker")]
    pub flush_bytes: u64,
    /// Serve Prometheus metrics (/metrics) and a health check (/health) here, e.g. 0.0.0.0:9464.
    #[arg(long, value_name = "ADDR", help_heading = "Kinesis worker")]
    pub metrics_addr: Option<SocketAddr>,
    /// This worker's name in the shard leases (default: host-pid-random).
    #[arg(long, value_name = "ID", help_heading = "Kinesis worker")]
    pub worker_id: Option<String>,
    /// A worker that has not renewed its leases for this long is presumed
    /// dead and its shards are taken over.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, help_heading = "Kinesis worker")]
    pub lease_timeout: Duration,
    /// How often the shard list is read again to follow splits and merges.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, help_heading = "Kinesis worker")]
    pub shard_sync: Duration,
    /// Pause after a GetRecords call that returned nothing.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, help_heading = "Kinesis worker")]
    pub idle_poll: Duration,
}

/// `64MiB`, `500k`, `1000000`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 64MiB or 500k"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use k, M, G, KiB, MiB, GiB)"
            ));
        }
    };
    Ok((n * mult) as u64)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

pub async fn run(lake_spec: &str, stream: &str, a: &KinesisArgs) -> anyhow::Result<()> {
    let mut lake = Lake::open_or_create(lake_spec)
        .await
        .with_context(|| format!("opening lake {lake_spec}"))?;
    let mut cfg = KinesisSourceConfig::new(stream);
    cfg.from = match a.from {
        FromArg::TrimHorizon => StartFrom::TrimHorizon,
        FromArg::Latest => StartFrom::Latest,
        FromArg::AtTimestamp => {
            let Some(t) = &a.timestamp else {
                bail!("--from at-timestamp needs --timestamp (RFC 3339 or relative like -1h)");
            };
            let at = super::window::parse_time(t, chrono::Utc::now())
                .with_context(|| format!("--timestamp {t}"))?;
            StartFrom::AtTimestamp(at.timestamp_millis())
        }
    };
    if a.timestamp.is_some() && a.from != FromArg::AtTimestamp {
        bail!("--timestamp only applies with --from at-timestamp");
    }
    cfg.flush_interval = a.flush_interval.max(Duration::from_millis(100));
    cfg.flush_bytes = a.flush_bytes.max(1) as usize;
    cfg.lease_timeout = a.lease_timeout.max(Duration::from_millis(300));
    cfg.shard_sync = a.shard_sync.max(Duration::from_millis(100));
    cfg.idle_poll = a.idle_poll;
    if let Some(id) = &a.worker_id {
        cfg.worker_id = id.clone();
    }
    if let Some(n) = env_number("FNWATCH_TUNE_RECORDS_PER_CALL") {
        cfg.records_per_call = n.clamp(1, 10_000) as i32;
    }
    // Failpoints for the crash tests, deliberately not flags.
    cfg.fail = FailPoints {
        before_commit: env_number("FNWATCH_FAIL_BEFORE_COMMIT"),
        after_commit: env_number("FNWATCH_FAIL_AFTER_COMMITS"),
        between_commits: std::env::var_os("FNWATCH_FAIL_BETWEEN_COMMITS").is_some(),
    };
    let endpoint = KinesisEndpoint {
        region: a.region.clone(),
        endpoint_url: a.endpoint_url.clone(),
    };
    let mut client = SdkKinesis::connect(&endpoint).await;
    if let Some(n) = env_number("FNWATCH_TUNE_SHARDS_PER_PAGE") {
        client = client.with_shards_per_page(n.min(10_000) as i32);
    }
    if client.region().is_none() {
        bail!("no AWS region: pass --region, or set AWS_REGION (or a region in the AWS profile)");
    }
    info!(
        stream,
        region = ?client.region(),
        endpoint = ?a.endpoint_url,
        worker = %cfg.worker_id,
        flush_interval = ?cfg.flush_interval,
        flush_bytes = cfg.flush_bytes,
        "starting the Kinesis worker"
    );
    eprintln!(
        "fnwatch: reading Kinesis stream `{stream}` into {lake_spec} as worker {} (commit every {} or {}); stop with Ctrl-C or SIGTERM",
        cfg.worker_id,
        humantime::format_duration(cfg.flush_interval),
        human_bytes(cfg.flush_bytes as u64),
    );
    match std::env::var("FNWATCH_KINESIS_FAULTS") {
        Ok(spec) => {
            let faulty = FaultyKinesis::from_spec(client, &spec)
                .map_err(|e| anyhow::anyhow!("FNWATCH_KINESIS_FAULTS: {e}"))?;
            run_worker(faulty, &mut lake, cfg, a, stream).await
        }
        Err(_) => run_worker(client, &mut lake, cfg, a, stream).await,
    }
}

async fn run_worker<C: KinesisApi>(
    client: C,
    lake: &mut Lake,
    cfg: KinesisSourceConfig,
    a: &KinesisArgs,
    stream: &str,
) -> anyhow::Result<()> {
    let stop = super::server::shutdown_signal();
    let metrics = WorkerMetrics::new();
    if let Some(addr) = a.metrics_addr {
        let stall = (cfg.flush_interval.as_secs() as i64 * 4).max(120);
        let bound = serve(addr, metrics.clone(), stall)
            .await
            .with_context(|| format!("--metrics-addr {addr}"))?;
        eprintln!("fnwatch: metrics at http://{bound}/metrics, health at http://{bound}/health");
    }
    let worker = Worker::new(client, lake, cfg, metrics)?;
    let report = worker
        .run(lake, stop)
        .await
        .with_context(|| format!("Kinesis worker on stream `{stream}`"))?;
    println!(
        "stopped: {} records, {} events, {} dead letters in {} commits; {} closed shard{} finished",
        thousands(report.records),
        thousands(report.counts.total_events()),
        thousands(report.counts.dead_letters),
        thousands(report.commits),
        report.shards_finished,
        if report.shards_finished == 1 { "" } else { "s" },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("500k"), Ok(500_000));
        assert_eq!(parse_bytes("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("1.5GB"), Ok(1_500_000_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
