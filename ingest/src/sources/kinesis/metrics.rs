//! The worker's Prometheus metrics (prometheus-client) and the small HTTP
//! endpoint (hyper) that serves them with a health check:
//! `GET /metrics` (OpenMetrics text) and `GET /health` (200 `ok`, or 503
//! with the reason when the worker loop is stuck or has failed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::error::{IngestError, Result};

/// Label of per-shard series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    pub shard: String,
}

/// Everything the worker counts.
pub struct WorkerMetrics {
    registry: Registry,
    pub records: Family<ShardLabel, Counter>,
    pub bytes: Family<ShardLabel, Counter>,
    pub millis_behind_latest: Family<ShardLabel, Gauge>,
    pub throttles: Family<ShardLabel, Counter>,
    pub get_records_errors: Family<ShardLabel, Counter>,
    pub events: Counter,
    pub dead_letters: Counter,
    /// CloudTrail records of identities that are not functions (users,
    /// services, other role sessions), skipped rather than dead-lettered.
    pub skipped_cloudtrail: Counter,
    pub commits: Counter,
    pub commit_conflicts: Counter,
    pub flush_seconds: Histogram,
    pub owned_shards: Gauge,
    pub shard_list_failures: Counter,
    /// Unix seconds of the worker loop's last turn, for the health check.
    pub last_turn: AtomicI64,
    /// Set when the worker has stopped with an error.
    pub failure: Mutex<Option<String>>,
}

impl WorkerMetrics {
    pub fn new() -> Arc<WorkerMetrics> {
        let mut registry = Registry::with_prefix("fnwatch_kinesis");
        let m = WorkerMetrics {
            records: Family::default(),
            bytes: Family::default(),
            millis_behind_latest: Family::default(),
            throttles: Family::default(),
            get_records_errors: Family::default(),
            events: Counter::default(),
            dead_letters: Counter::default(),
            skipped_cloudtrail: Counter::default(),
            commits: Counter::default(),
            commit_conflicts: Counter::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            owned_shards: Gauge::default(),
            shard_list_failures: Counter::default(),
            last_turn: AtomicI64::new(now_s()),
            failure: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register(
            "records",
            "Kinesis records read, per shard",
            m.records.clone(),
        );
        registry.register(
            "bytes",
            "Bytes of Kinesis record data read, per shard",
            m.bytes.clone(),
        );
        registry.register(
            "millis_behind_latest",
            "MillisBehindLatest of the shard's last GetRecords",
            m.millis_behind_latest.clone(),
        );
        registry.register(
            "throttles",
            "GetRecords calls throttled (ProvisionedThroughputExceeded), per shard",
            m.throttles.clone(),
        );
        registry.register(
            "get_records_errors",
            "GetRecords calls failed for other reasons (retried), per shard",
            m.get_records_errors.clone(),
        );
        registry.register("events", "Events committed to the lake", m.events.clone());
        registry.register(
            "dead_letters",
            "Records or parts of records dead-lettered",
            m.dead_letters.clone(),
        );
        registry.register(
            "skipped_cloudtrail",
            "CloudTrail records of other identities than functions, skipped",
            m.skipped_cloudtrail.clone(),
        );
        registry.register("commits", "Lake commits", m.commits.clone());
        registry.register(
            "commit_conflicts",
            "Commits refused because another worker had committed the same shard",
            m.commit_conflicts.clone(),
        );
        registry.register(
            "flush_seconds",
            "Time to write and commit one flush",
            m.flush_seconds.clone(),
        );
        registry.register(
            "owned_shards",
            "Shards this worker holds the lease of",
            m.owned_shards.clone(),
        );
        registry.register(
            "shard_list_failures",
            "Shard-list refreshes that failed while running (the last list was kept)",
            m.shard_list_failures.clone(),
        );
        Arc::new(WorkerMetrics { registry, ..m })
    }

    /// The metrics as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            warn!(error = %e, "metrics could not be encoded");
        }
        out
    }

    pub fn turn(&self) {
        self.last_turn.store(now_s(), Ordering::Relaxed);
    }

    /// `None` when healthy, else why not. `stall_s`: the longest the worker
    /// loop may go without a turn.
    pub fn unhealthy(&self, stall_s: i64) -> Option<String> {
        if let Ok(f) = self.failure.lock()
            && let Some(why) = f.as_ref()
        {
            return Some(format!("worker failed: {why}"));
        }
        let idle = now_s() - self.last_turn.load(Ordering::Relaxed);
        (idle > stall_s).then(|| format!("worker loop has not turned for {idle} s"))
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the metrics endpoint puts up with from its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A client must send a request's whole head within this time after
    /// connecting or after the previous answer; otherwise its connection is
    /// closed (a slow or silent client cannot hold one open).
    pub header_read_timeout: Duration,
    /// Connections served at once; one more is closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Serves `/metrics` and `/health` on `addr` until the process ends, within
/// [`ServeLimits::default`]. Returns the bound address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<WorkerMetrics>,
    stall_s: i64,
) -> Result<SocketAddr> {
    serve_with(addr, metrics, stall_s, ServeLimits::default()).await
}

/// [`serve`] with chosen limits.
pub async fn serve_with(
    addr: SocketAddr,
    metrics: Arc<WorkerMetrics>,
    stall_s: i64,
    limits: ServeLimits,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| IngestError::Storage {
            path: format!("metrics address {addr}"),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| IngestError::Storage {
            path: format!("metrics address {addr}"),
            source,
        })?;
    info!(address = %bound, "metrics and health check at /metrics and /health");
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(peer = %peer, limit = limits.max_connections, "metrics endpoint: too many connections; closing this one");
                drop(stream);
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics, stall_s)) }
                });
                if let Err(e) = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn answer<B>(req: &Request<B>, metrics: &WorkerMetrics, stall_s: i64) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        "/health" | "/healthz" => match metrics.unhealthy(stall_s) {
            None => (
                StatusCode::OK,
                "text/plain; charset=utf-8",
                "ok\n".to_string(),
            ),
            Some(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{why}\n"),
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /health\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: ServeLimits) -> SocketAddr {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        serve_with(addr, WorkerMetrics::new(), 120, limits)
            .await
            .unwrap()
    }

    /// Reads until the server closes the connection; the answer and how long.
    async fn read_to_close(s: &mut TcpStream, within: Duration) -> (String, Duration) {
        let started = Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "the connection was still open after {within:?}");
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    }

    #[tokio::test]
    async fn a_slowloris_client_is_cut_off_after_the_header_timeout() {
        let timeout = Duration::from_millis(500);
        let addr = start(ServeLimits {
            header_read_timeout: timeout,
            max_connections: 8,
        })
        .await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        // One header byte every 100 ms, never the blank line.
        let dribble = async {
            for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if slow.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), dribble)
            .await
            .unwrap();
        let (_, _) = read_to_close(&mut slow, Duration::from_secs(5)).await;
        let open = started.elapsed();
        assert!(
            open < Duration::from_secs(4),
            "the slow client was served for {open:?}"
        );
        // A silent client is closed as well.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let (got, took) = read_to_close(&mut silent, Duration::from_secs(5)).await;
        assert!(took >= timeout / 2, "closed too early: {took:?} {got:?}");
        // And a prompt one is answered.
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (got, _) = read_to_close(&mut ok, Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }

    #[tokio::test]
    async fn connections_above_the_limit_are_closed_at_once() {
        let addr = start(ServeLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 2,
        })
        .await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (got, took) = read_to_close(&mut c, Duration::from_secs(5)).await;
        assert!(got.is_empty() && took < Duration::from_secs(5), "{got}");
        drop(_a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = TcpStream::connect(addr).await.unwrap();
        d.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (got, _) = read_to_close(&mut d, Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
}
