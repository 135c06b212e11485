//! The Kinesis calls the worker and the producer make, behind a trait: the
//! AWS SDK implements it for real streams (and for local emulators through an
//! endpoint URL), and [`FaultyKinesis`] wraps any implementation to inject the
//! failures no emulator produces (throttling, partial `PutRecords` failures).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
    /// Set once the shard is closed (after a split or merge).
    pub ending_sequence: Option<String>,
}

impl ShardInfo {
    /// The shard's parents (none, one after a split, two after a merge).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent
            .iter()
            .chain(self.adjacent_parent.iter())
            .map(String::as_str)
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    /// Milliseconds since the Unix epoch.
    AtTimestamp(i64),
    AfterSequence(String),
}

/// One Kinesis record.
#[derive(Debug, Clone)]
pub struct KinesisRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Approximate arrival time, milliseconds since the Unix epoch.
    pub arrival_ms: Option<i64>,
}

/// One `GetRecords` answer.
#[derive(Debug, Clone, Default)]
pub struct RecordsPage {
    pub records: Vec<KinesisRecord>,
    /// `None` once a closed shard has been read to its end.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

/// Why a call failed, as far as the caller's reaction goes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KinesisError {
    /// `ProvisionedThroughputExceededException` or another throttle: back off.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The shard iterator is older than five minutes: get a new one.
    #[error("shard iterator expired: {0}")]
    ExpiredIterator(String),
    /// The stream or shard does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Network trouble, time-outs, 5xx: retry with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// Credentials, permissions, bad requests: retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

impl KinesisError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KinesisError::Throttled(_)
                | KinesisError::Transient(_)
                | KinesisError::ExpiredIterator(_)
        )
    }
}

/// The outcome of one entry of a `PutRecords` call: `None` when stored,
/// else the error code (`ProvisionedThroughputExceededException`, ...).
pub type PutOutcome = Option<String>;

/// The Kinesis API surface fnwatch uses.
pub trait KinesisApi: Send + Sync + 'static {
    /// Every shard of the stream (all pages of `ListShards`), closed ones included.
    fn list_shards(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Vec<ShardInfo>, KinesisError>> + Send;

    fn get_shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> impl Future<Output = Result<String, KinesisError>> + Send;

    fn get_records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> impl Future<Output = Result<RecordsPage, KinesisError>> + Send;

    /// Puts up to 500 records; one outcome per entry, in order.
    fn put_records(
        &self,
        stream: &str,
        entries: &[(String, Vec<u8>)],
    ) -> impl Future<Output = Result<Vec<PutOutcome>, KinesisError>> + Send;
}

/// Where to reach Kinesis.
#[derive(Debug, Clone, Default)]
pub struct KinesisEndpoint {
    /// AWS region; the standard chain (AWS_REGION, profile) when `None`.
    pub region: Option<String>,
    /// A Kinesis-compatible endpoint (a local emulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
}

/// Time limits of every Kinesis call, so a network that swallows packets
/// or an endpoint that never answers costs a retry, not a hung reader (or,
/// for `ListShards`, which the worker's loop calls itself, lapsed leases:
/// `operation` stays under the default lease time-out of 30 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KinesisTimeouts {
    /// Establishing the TCP and TLS connection.
    pub connect: Duration,
    /// One attempt, request sent to answer read (a full GetRecords page is
    /// at most 10 MB).
    pub attempt: Duration,
    /// The whole call, the SDK's own retries included.
    pub operation: Duration,
}

impl Default for KinesisTimeouts {
    fn default() -> Self {
        KinesisTimeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(20),
        }
    }
}

impl KinesisTimeouts {
    /// The SDK's form of these limits.
    pub fn sdk_config(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// The AWS SDK client.
#[derive(Clone)]
pub struct SdkKinesis {
    client: Client,
    /// `MaxResults` of each ListShards call (the service's default when unset).
    shards_per_page: Option<i32>,
}

impl SdkKinesis {
    /// A client from the standard AWS configuration chain (environment,
    /// profile, SSO, container and instance roles), with the given overrides.
    /// Every call is limited by [`KinesisTimeouts::default`].
    pub async fn connect(endpoint: &KinesisEndpoint) -> SdkKinesis {
        SdkKinesis::connect_with(endpoint, KinesisTimeouts::default()).await
    }

    /// [`connect`](Self::connect) with chosen time limits.
    pub async fn connect_with(endpoint: &KinesisEndpoint, timeouts: KinesisTimeouts) -> SdkKinesis {
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        SdkKinesis::load(loader, endpoint, timeouts).await
    }

    async fn load(
        mut loader: aws_config::ConfigLoader,
        endpoint: &KinesisEndpoint,
        timeouts: KinesisTimeouts,
    ) -> SdkKinesis {
        loader = loader.timeout_config(timeouts.sdk_config());
        if let Some(region) = &endpoint.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &endpoint.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let config = loader.load().await;
        SdkKinesis {
            client: Client::new(&config),
            shards_per_page: None,
        }
    }

    /// Asks ListShards for at most `n` shards a page (1 to 10,000).
    pub fn with_shards_per_page(mut self, n: i32) -> SdkKinesis {
        self.shards_per_page = Some(n.clamp(1, 10_000));
        self
    }

    /// The region the configuration chain resolved, if any.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }
}

fn classify<E>(what: &str, err: SdkError<E, HttpResponse>) -> KinesisError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = format!("{what}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            match code {
                "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "KMSThrottlingException"
                | "ThrottlingException" => KinesisError::Throttled(text),
                "ExpiredIteratorException" => KinesisError::ExpiredIterator(text),
                "ResourceNotFoundException" => KinesisError::NotFound(text),
                "InternalFailure"
                | "ServiceUnavailable"
                | "InternalFailureException"
                | "ResourceInUseException" => KinesisError::Transient(text),
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidArgumentException"
                | "ValidationException"
                | "KMSAccessDeniedException"
                | "ExpiredTokenException"
                | "InvalidSignatureException" => KinesisError::Fatal(text),
                _ => {
                    let status = se.raw().status().as_u16();
                    if status >= 500 {
                        KinesisError::Transient(text)
                    } else {
                        KinesisError::Fatal(text)
                    }
                }
            }
        }
        // No answer, a time-out, a connection refused: all worth retrying.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            KinesisError::Transient(text)
        }
        _ => KinesisError::Fatal(text),
    }
}

impl KinesisApi for SdkKinesis {
    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.client.list_shards();
            // The stream name and a paging token must not be sent together.
            req = match &token {
                Some(t) => req.next_token(t),
                None => req.stream_name(stream),
            };
            if let Some(n) = self.shards_per_page {
                req = req.max_results(n);
            }
            let resp = req.send().await.map_err(|e| classify("ListShards", e))?;
            for s in resp.shards() {
                out.push(ShardInfo {
                    id: s.shard_id().to_string(),
                    parent: s.parent_shard_id().map(str::to_string),
                    adjacent_parent: s.adjacent_parent_shard_id().map(str::to_string),
                    ending_sequence: s
                        .sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .map(str::to_string),
                });
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() && !resp.shards().is_empty() => {
                    token = Some(t.to_string())
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn get_shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> Result<String, KinesisError> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard);
        req = match start {
            IteratorStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            IteratorStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            IteratorStart::AtTimestamp(ms) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            IteratorStart::AfterSequence(seq) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| classify("GetShardIterator", e))?;
        resp.shard_iterator()
            .map(str::to_string)
            .ok_or_else(|| KinesisError::Transient("GetShardIterator returned no iterator".into()))
    }

    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
        let resp = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| classify("GetRecords", e))?;
        // Owned fields: the record data moves out without a copy.
        let records = resp
            .records
            .into_iter()
            .map(|r| KinesisRecord {
                arrival_ms: r
                    .approximate_arrival_timestamp
                    .and_then(|t| t.to_millis().ok()),
                sequence_number: r.sequence_number,
                partition_key: r.partition_key.unwrap_or_default(),
                data: r.data.into_inner(),
            })
            .collect();
        Ok(RecordsPage {
            records,
            next_iterator: resp.next_shard_iterator,
            millis_behind_latest: resp.millis_behind_latest,
        })
    }

    async fn put_records(
        &self,
        stream: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<Vec<PutOutcome>, KinesisError> {
        let mut req = self.client.put_records().stream_name(stream);
        for (key, data) in entries {
            let entry = PutRecordsRequestEntry::builder()
                .partition_key(key)
                .data(Blob::new(data.clone()))
                .build()
                .map_err(|e| KinesisError::Fatal(format!("PutRecords entry: {e}")))?;
            req = req.records(entry);
        }
        let resp = req.send().await.map_err(|e| classify("PutRecords", e))?;
        Ok(resp
            .records()
            .iter()
            .map(|r| r.error_code().map(str::to_string))
            .collect())
    }
}

/// Failure injection for tests and drills: every `throttle_every`-th
/// `GetRecords` call fails with a throttle before reaching the stream, every
/// `expire_every`-th with an expired iterator (as after five idle minutes),
/// and every `fail_put_every`-th `PutRecords` entry comes back failed.
///
/// Configured with
/// `FNWATCH_KINESIS_FAULTS=throttle_every=3,expire_every=5,fail_put_every=7`.
pub struct FaultyKinesis<C> {
    inner: C,
    throttle_every: u64,
    expire_every: u64,
    fail_put_every: u64,
    calls: AtomicU64,
    entries: AtomicU64,
}

impl<C: KinesisApi> FaultyKinesis<C> {
    pub fn new(inner: C, throttle_every: u64, expire_every: u64, fail_put_every: u64) -> Self {
        FaultyKinesis {
            inner,
            throttle_every,
            expire_every,
            fail_put_every,
            calls: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }

    /// Parses `throttle_every=N,expire_every=E,fail_put_every=M` (any may be
    /// missing).
    pub fn from_spec(inner: C, spec: &str) -> Result<Self, String> {
        let mut throttle = 0;
        let mut expire = 0;
        let mut fail_put = 0;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault `{part}` is not key=value"))?;
            let n: u64 = v
                .parse()
                .map_err(|_| format!("fault `{k}`: `{v}` is not a number"))?;
            match k {
                "throttle_every" => throttle = n,
                "expire_every" => expire = n,
                "fail_put_every" => fail_put = n,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (known: throttle_every, expire_every, fail_put_every)"
                    ));
                }
            }
        }
        Ok(Self::new(inner, throttle, expire, fail_put))
    }
}

impl<C: KinesisApi> KinesisApi for FaultyKinesis<C> {
    fn list_shards(
        &self,
        stream: &str,
    ) -> impl Future<Output = Result<Vec<ShardInfo>, KinesisError>> + Send {
        self.inner.list_shards(stream)
    }

    fn get_shard_iterator(
        &self,
        stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> impl Future<Output = Result<String, KinesisError>> + Send {
        self.inner.get_shard_iterator(stream, shard, start)
    }

    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.throttle_every > 0 && n.is_multiple_of(self.throttle_every) {
            return Err(KinesisError::Throttled(
                "GetRecords: ProvisionedThroughputExceededException (injected)".into(),
            ));
        }
        if self.expire_every > 0 && n.is_multiple_of(self.expire_every) {
            return Err(KinesisError::ExpiredIterator(
                "GetRecords: ExpiredIteratorException (injected)".into(),
            ));
        }
        self.inner.get_records(iterator, limit).await
    }

    async fn put_records(
        &self,
        stream: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<Vec<PutOutcome>, KinesisError> {
        if self.fail_put_every == 0 {
            return self.inner.put_records(stream, entries).await;
        }
        // Entries chosen to fail are not sent at all, as Kinesis would not store them.
        let mut send = Vec::with_capacity(entries.len());
        let mut failed = Vec::with_capacity(entries.len());
        for e in entries {
            let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
            let fail = n.is_multiple_of(self.fail_put_every);
            failed.push(fail);
            if !fail {
                send.push(e.clone());
            }
        }
        let sent = if send.is_empty() {
            Vec::new()
        } else {
            self.inner.put_records(stream, &send).await?
        };
        let mut sent = sent.into_iter();
        Ok(failed
            .into_iter()
            .map(|fail| {
                if fail {
                    Some("ProvisionedThroughputExceededException".to_string())
                } else {
                    sent.next().flatten()
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use super::*;

    async fn client(url: String, timeouts: KinesisTimeouts) -> SdkKinesis {
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
                "test", "test", None, None, "test",
            ));
        let endpoint = KinesisEndpoint {
            region: Some("us-east-1".into()),
            endpoint_url: Some(url),
        };
        SdkKinesis::load(loader, &endpoint, timeouts).await
    }

    #[tokio::test]
    async fn every_call_has_time_limits() {
        let c = client("http://127.0.0.1:9".into(), KinesisTimeouts::default()).await;
        let t = c.client.config().timeout_config().cloned().unwrap();
        let d = KinesisTimeouts::default();
        assert_eq!(t.connect_timeout(), Some(d.connect));
        assert_eq!(t.operation_attempt_timeout(), Some(d.attempt));
        assert_eq!(t.operation_timeout(), Some(d.operation));
        assert!(
            d.operation < Duration::from_secs(30),
            "under the lease time-out"
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_a_transient_error_not_a_hang() {
        // Connections are accepted (by the kernel's backlog) and never answered.
        let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", hole.local_addr().unwrap());
        let c = client(
            url,
            KinesisTimeouts {
                connect: Duration::from_millis(300),
                attempt: Duration::from_millis(300),
                operation: Duration::from_secs(1),
            },
        )
        .await;
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(20), c.list_shards("s")).await;
        let took = started.elapsed();
        let r = r.expect("ListShards hung past 20 s");
        assert!(
            matches!(r, Err(KinesisError::Transient(_))),
            "{r:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        drop(hole);
    }
}
