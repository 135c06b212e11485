//! The Kinesis worker: reads every shard it holds the lease of, decodes the
//! records, and commits them to the lake with each shard's position in the
//! same Delta commit, so a restart resumes exactly after the last committed
//! record.
//!
//! Structure: one reader task per shard (GetRecords loop, decoding on the
//! blocking pool) feeds one loop that buffers decoded events, flushes by
//! size or interval, keeps the leases, follows resharding and stops cleanly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::checkpoint::{self, Checkpoint};
use super::client::{IteratorStart, KinesisApi, KinesisError, ShardInfo};
use super::lease::Leases;
use super::metrics::{ShardLabel, WorkerMetrics};
use crate::builder::{BatchSink, Counts, DeadLettersBuilder};
use crate::decode::{DecodeState, Limits, decode_record};
use crate::error::{IngestError, Result};
use crate::event::{DeadLetter, Origin, Position};
use crate::lake::{DEAD_LETTERS, EVENTS, Lake, LakeWriter, WriteOptions};
use crate::writer_pool::WriterPool;

/// Where a shard with no checkpoint starts, on a stream new to the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    TrimHorizon,
    Latest,
    /// Milliseconds since the Unix epoch.
    AtTimestamp(i64),
}

/// Test failpoints: abort the process at a chosen point of the N-th commit.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailPoints {
    /// After the files of commit N are written, before it is committed.
    pub before_commit: Option<u64>,
    /// After commit N.
    pub after_commit: Option<u64>,
    /// Between the dead-letter and events commits of a flush.
    pub between_commits: bool,
}

/// The wall clock the worker stamps `ingested_at` with, in microseconds
/// since the Unix epoch: the system clock, or a test's.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(now_us))
    }

    /// A clock that reads `f` (tests: a time they move on).
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now_us(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now_us())
    }
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct KinesisSourceConfig {
    pub stream: String,
    pub from: StartFrom,
    pub flush_interval: Duration,
    /// Commit once the decoded records buffered (Arrow batches and dead
    /// letters, as held in memory) reach this size.
    pub flush_bytes: usize,
    /// Most bytes of decoded pages queued between the shard readers and the
    /// loop that buffers them (besides the one page each reader may hold
    /// while it waits for room).
    pub queue_bytes: usize,
    pub worker_id: String,
    pub lease_timeout: Duration,
    /// Pause after a GetRecords that returned nothing.
    pub idle_poll: Duration,
    /// Shortest time between two GetRecords calls on one shard (Kinesis
    /// allows five per second per shard).
    pub min_call_interval: Duration,
    pub records_per_call: i32,
    /// How often the shard list is read again (resharding).
    pub shard_sync: Duration,
    pub limits: Limits,
    pub write: WriteOptions,
    /// Events per sorted run handed to a writer.
    pub run_rows: usize,
    pub fail: FailPoints,
    /// Stamps `ingested_at`: each page of events when it is decoded, the
    /// dead letters of a flush when it is committed.
    pub clock: Clock,
}

impl KinesisSourceConfig {
    pub fn new(stream: impl Into<String>) -> Self {
        KinesisSourceConfig {
            stream: stream.into(),
            from: StartFrom::TrimHorizon,
            flush_interval: Duration::from_secs(30),
            flush_bytes: 128 * 1024 * 1024,
            queue_bytes: 64 * 1024 * 1024,
            worker_id: default_worker_id(),
            lease_timeout: Duration::from_secs(30),
            idle_poll: Duration::from_millis(1000),
            min_call_interval: Duration::from_millis(200),
            records_per_call: 10_000,
            shard_sync: Duration::from_secs(30),
            limits: Limits::default(),
            write: WriteOptions::default(),
            run_rows: 128 * 1024,
            fail: FailPoints::default(),
            clock: Clock::system(),
        }
    }
}

/// `HOST-PID-RANDOM`: unique per process.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "worker".into());
    let n: u32 = rand::rng().random();
    format!("{host}-{}-{n:08x}", std::process::id())
}

/// What the worker did, for its final log line.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub records: u64,
    pub counts: Counts,
    pub commits: u64,
    pub shards_finished: u64,
}

/// One decoded GetRecords page.
struct Page {
    shard: Arc<str>,
    epoch: u64,
    batch: Option<RecordBatch>,
    dead: Vec<DeadLetter>,
    counts: Counts,
    records: u64,
    /// What the decoded page holds in memory (see [`decoded_size`]).
    decoded_bytes: u64,
    last_seq: Option<String>,
    /// The shard is closed and this was its last page.
    end: bool,
    /// Its room in the queue, given back when the page is buffered.
    _room: Option<OwnedSemaphorePermit>,
}

enum ReaderMsg {
    Page(Page),
    Fatal {
        shard: Arc<str>,
        epoch: u64,
        error: String,
    },
}

struct ReaderSpec<C> {
    api: Arc<C>,
    stream: Arc<str>,
    shard: Arc<str>,
    epoch: u64,
    start: IteratorStart,
    suppress_dead_through: Option<Checkpoint>,
    limits: Limits,
    records_per_call: i32,
    min_call_interval: Duration,
    idle_poll: Duration,
    clock: Clock,
    metrics: Arc<WorkerMetrics>,
    tx: mpsc::Sender<ReaderMsg>,
    /// The queue's room, in [`QUEUE_UNIT`] units.
    room: Arc<Semaphore>,
    room_units: u32,
}

/// The unit the queue's room is counted in.
const QUEUE_UNIT: usize = 1024;

/// The queue's room for `queue_bytes`, in units (at least one).
fn queue_units(queue_bytes: usize) -> u32 {
    (queue_bytes / QUEUE_UNIT).clamp(1, u32::MAX as usize >> 4) as u32
}

/// What a decoded page holds in memory: its Arrow arrays (capacity
/// included) and its dead letters with their raw bytes. This, not the
/// compressed size of the records, is what a flush buffers: a gzip record
/// can inflate a hundred times.
fn decoded_size(batch: Option<&RecordBatch>, dead: &[DeadLetter]) -> u64 {
    let arrays = batch.map_or(0, RecordBatch::get_array_memory_size);
    let letters: usize = dead
        .iter()
        .map(|d| {
            let seq = match &d.position.origin {
                Origin::Kinesis {
                    sequence_number, ..
                } => sequence_number.capacity(),
                Origin::File { .. } => 0,
            };
            std::mem::size_of::<DeadLetter>()
                + d.reason.capacity()
                + d.field.as_ref().map_or(0, String::capacity)
                + d.raw.capacity()
                + seq
                + d.position.steps.capacity() * std::mem::size_of::<crate::event::Step>()
        })
        .sum();
    (arrays + letters) as u64
}

fn backoff(attempt: u32) -> Duration {
    let base = 200u64 << attempt.min(6);
    let capped = base.min(10_000);
    let jitter = rand::rng().random_range(0..=capped / 2);
    Duration::from_millis(capped / 2 + jitter)
}

/// How long a running worker goes on without a successful `ListShards`
/// before it stops: five minutes, or ten sync intervals if that is longer.
fn sync_give_up(cfg: &KinesisSourceConfig) -> Duration {
    (cfg.shard_sync * 10).max(Duration::from_secs(300))
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Decodes one page of records (on the blocking pool).
fn decode_page(
    records: Vec<super::client::KinesisRecord>,
    stream: &Arc<str>,
    shard: &Arc<str>,
    state: &mut DecodeState,
    ingested_at: i64,
    suppress: Option<&Checkpoint>,
) -> (Option<RecordBatch>, Vec<DeadLetter>, Counts) {
    let mut sink = BatchSink::with_capacity(ingested_at, records.len() * 2);
    for r in &records {
        let pos = Position::kinesis(stream.clone(), shard.clone(), r.sequence_number.clone());
        decode_record(&r.data, &pos, state, &mut sink);
    }
    let mut dead = std::mem::take(&mut sink.dead);
    if let Some(cp) = suppress {
        // Dead letters of these records were committed before a crash.
        dead.retain(|dl| match &dl.position.origin {
            Origin::Kinesis {
                sequence_number, ..
            } => !checkpoint::covers(cp, sequence_number),
            _ => true,
        });
    }
    let mut counts = sink.counts.clone();
    counts.dead_letters = dead.len() as u64;
    let batch = (!sink.events.is_empty()).then(|| sink.events.finish());
    (batch, dead, counts)
}

async fn reader<C: KinesisApi>(spec: ReaderSpec<C>) {
    let label = ShardLabel {
        shard: spec.shard.to_string(),
    };
    let mut last_seq: Option<String> = None;
    let mut state = Some(DecodeState::new(spec.limits));
    let mut attempt = 0u32;
    let mut iterator: Option<String> = None;
    let mut last_call = Instant::now() - spec.min_call_interval;
    let fatal = |error: String| ReaderMsg::Fatal {
        shard: spec.shard.clone(),
        epoch: spec.epoch,
        error,
    };
    loop {
        let it = match &iterator {
            Some(it) => it.clone(),
            None => {
                let start = match &last_seq {
                    Some(s) => IteratorStart::AfterSequence(s.clone()),
                    None => spec.start.clone(),
                };
                match spec
                    .api
                    .get_shard_iterator(&spec.stream, &spec.shard, &start)
                    .await
                {
                    Ok(it) => {
                        attempt = 0;
                        iterator = Some(it.clone());
                        it
                    }
                    Err(e) if e.is_retryable() => {
                        if matches!(e, KinesisError::Throttled(_)) {
                            spec.metrics.throttles.get_or_create(&label).inc();
                        }
                        warn!(shard = %spec.shard, error = %e, "GetShardIterator failed; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    Err(e) => {
                        let _ = spec.tx.send(fatal(e.to_string())).await;
                        return;
                    }
                }
            }
        };
        let wait = spec.min_call_interval.saturating_sub(last_call.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        last_call = Instant::now();
        let page = match spec.api.get_records(&it, spec.records_per_call).await {
            Ok(p) => {
                attempt = 0;
                p
            }
            Err(KinesisError::ExpiredIterator(e)) => {
                info!(shard = %spec.shard, error = %e, "shard iterator expired; getting a new one from the last record read");
                iterator = None;
                continue;
            }
            Err(KinesisError::Throttled(e)) => {
                spec.metrics.throttles.get_or_create(&label).inc();
                let pause = backoff(attempt);
                debug!(shard = %spec.shard, error = %e, pause_ms = pause.as_millis() as u64, "throttled; backing off");
                tokio::time::sleep(pause).await;
                attempt += 1;
                continue;
            }
            Err(e @ KinesisError::Transient(_)) => {
                spec.metrics.get_records_errors.get_or_create(&label).inc();
                let pause = backoff(attempt);
                warn!(shard = %spec.shard, error = %e, retry_in_ms = pause.as_millis() as u64, "GetRecords failed; retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
                continue;
            }
            Err(e) => {
                let _ = spec.tx.send(fatal(e.to_string())).await;
                return;
            }
        };
        if let Some(ms) = page.millis_behind_latest {
            spec.metrics
                .millis_behind_latest
                .get_or_create(&label)
                .set(ms);
        }
        let end = page.next_iterator.is_none();
        let n = page.records.len() as u64;
        if n == 0 && !end {
            iterator = page.next_iterator;
            tokio::time::sleep(spec.idle_poll).await;
            continue;
        }
        let bytes: u64 = page.records.iter().map(|r| r.data.len() as u64).sum();
        let page_last = page.records.last().map(|r| r.sequence_number.clone());
        spec.metrics.records.get_or_create(&label).inc_by(n);
        spec.metrics.bytes.get_or_create(&label).inc_by(bytes);
        let (batch, dead, counts) = if n > 0 {
            let mut st = state
                .take()
                .unwrap_or_else(|| DecodeState::new(spec.limits));
            let stream = spec.stream.clone();
            let shard = spec.shard.clone();
            let suppress = spec.suppress_dead_through.clone();
            let ingested_at = spec.clock.now_us();
            let records = page.records;
            let joined = tokio::task::spawn_blocking(move || {
                let out = decode_page(
                    records,
                    &stream,
                    &shard,
                    &mut st,
                    ingested_at,
                    suppress.as_ref(),
                );
                (out, st)
            })
            .await;
            match joined {
                Ok((out, st)) => {
                    state = Some(st);
                    out
                }
                Err(e) => {
                    let _ = spec.tx.send(fatal(format!("decoder failed: {e}"))).await;
                    return;
                }
            }
        } else {
            (None, Vec::new(), Counts::default())
        };
        if page_last.is_some() {
            last_seq = page_last.clone();
        }
        let decoded_bytes = decoded_size(batch.as_ref(), &dead);
        // Wait for room in the queue: a page larger than the whole queue
        // waits until the queue is empty.
        let units = (decoded_bytes as usize)
            .div_ceil(QUEUE_UNIT)
            .clamp(1, spec.room_units as usize) as u32;
        let room = match spec.room.clone().acquire_many_owned(units).await {
            Ok(r) => Some(r),
            // Closed only when the worker is gone.
            Err(_) => return,
        };
        let msg = ReaderMsg::Page(Page {
            shard: spec.shard.clone(),
            epoch: spec.epoch,
            batch,
            dead,
            counts,
            records: n,
            decoded_bytes,
            last_seq: page_last,
            end,
            _room: room,
        });
        if spec.tx.send(msg).await.is_err() {
            return;
        }
        if end {
            info!(shard = %spec.shard, "shard closed and read to its end");
            return;
        }
        iterator = page.next_iterator;
    }
}

/// What the worker knows of one shard.
#[derive(Debug, Clone)]
struct ShardState {
    info: ShardInfo,
    /// The events table's checkpoint, as last read or committed.
    committed: Option<Checkpoint>,
}

/// The buffered, not yet committed part of the stream.
struct Flush {
    writer: LakeWriter,
    pool: WriterPool,
    /// Stamped with the commit's time when it is written.
    dead: Vec<DeadLetter>,
    run: Vec<RecordBatch>,
    run_rows: usize,
    /// Per shard: the last sequence number buffered, and whether it ended.
    positions: HashMap<String, (Option<String>, bool)>,
    /// Decoded bytes buffered (see [`decoded_size`]).
    bytes: u64,
    records: u64,
    counts: Counts,
    started: Option<Instant>,
}

impl Flush {
    fn new(lake: &Lake, cfg: &KinesisSourceConfig) -> Result<Flush> {
        Ok(Flush {
            writer: LakeWriter::new(lake, &cfg.write)?,
            pool: WriterPool::new(lake, &cfg.write, 1)?,
            dead: Vec::new(),
            run: Vec::new(),
            run_rows: 0,
            positions: HashMap::new(),
            bytes: 0,
            records: 0,
            counts: Counts::default(),
            started: None,
        })
    }

    fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// What a commit did.
enum Committed {
    Nothing,
    /// Committed; `finished` shards were closed and are now complete.
    Done {
        finished: u64,
    },
    /// Dropped: another worker had committed one of the shards (reset).
    Dropped,
}

/// The worker.
pub struct Worker<C: KinesisApi> {
    api: Arc<C>,
    cfg: KinesisSourceConfig,
    stream: Arc<str>,
    metrics: Arc<WorkerMetrics>,
    leases: Leases,
    shards: HashMap<String, ShardState>,
    readers: HashMap<String, JoinHandle<()>>,
    epoch: u64,
    tx: mpsc::Sender<ReaderMsg>,
    rx: mpsc::Receiver<ReaderMsg>,
    report: WorkerReport,
    /// Room of the queue between the readers and the loop.
    room: Arc<Semaphore>,
    /// When the shard list was last read.
    last_listed: Instant,
}

impl<C: KinesisApi> Worker<C> {
    pub fn new(
        api: C,
        lake: &Lake,
        cfg: KinesisSourceConfig,
        metrics: Arc<WorkerMetrics>,
    ) -> Result<Worker<C>> {
        let leases = Leases::new(lake, &cfg.stream, &cfg.worker_id, cfg.lease_timeout);
        let (tx, rx) = mpsc::channel(32);
        let room = Arc::new(Semaphore::new(queue_units(cfg.queue_bytes) as usize));
        Ok(Worker {
            api: Arc::new(api),
            stream: Arc::from(cfg.stream.as_str()),
            cfg,
            metrics,
            leases,
            shards: HashMap::new(),
            last_listed: Instant::now(),
            readers: HashMap::new(),
            epoch: 0,
            tx,
            rx,
            report: WorkerReport::default(),
            room,
        })
    }

    /// Reads the shard list (with retries on transient errors).
    async fn list_shards(&self) -> Result<Vec<ShardInfo>> {
        let mut attempt = 0;
        loop {
            match self.api.list_shards(&self.cfg.stream).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() && attempt < 8 => {
                    warn!(stream = %self.cfg.stream, error = %e, "ListShards failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(IngestError::Source(format!(
                        "cannot list the shards of Kinesis stream `{}`: {e}",
                        self.cfg.stream
                    )));
                }
            }
        }
    }

    /// Reads the shard list (with retries) and the checkpoints of shards not
    /// held here: at start, where a failure is fatal.
    async fn sync_shards(&mut self, lake: &mut Lake) -> Result<()> {
        let listed = self.list_shards().await?;
        self.apply_shards(lake, listed).await?;
        self.last_listed = Instant::now();
        Ok(())
    }

    /// The same while running, with one `ListShards` call: its retries would
    /// hold up lease renewals and commits for longer than a lease lasts. A
    /// transient failure (throttling, Kinesis unreachable) keeps the shard
    /// list the worker has, and the next sync tries again, unless no sync has
    /// succeeded for [`sync_give_up`]; any other failure (the stream deleted,
    /// access denied) stops the worker.
    async fn resync_shards(&mut self, lake: &mut Lake) -> Result<()> {
        match self.api.list_shards(&self.cfg.stream).await {
            Ok(listed) => {
                self.apply_shards(lake, listed).await?;
                self.last_listed = Instant::now();
                Ok(())
            }
            Err(e) if e.is_retryable() && self.last_listed.elapsed() < sync_give_up(&self.cfg) => {
                self.metrics.shard_list_failures.inc();
                warn!(stream = %self.cfg.stream, error = %e, "cannot re-read the shard list; keeping the last one until the next sync");
                Ok(())
            }
            Err(e) => Err(IngestError::Source(format!(
                "cannot list the shards of Kinesis stream `{}` (last listed {:.0?} ago): {e}",
                self.cfg.stream,
                self.last_listed.elapsed()
            ))),
        }
    }

    /// Takes in a listed shard set: new shards, and the checkpoints of shards
    /// not held here. All or nothing: a failed checkpoint read leaves the
    /// known shards as they were, so a child is never taken without its parent.
    async fn apply_shards(&mut self, lake: &mut Lake, listed: Vec<ShardInfo>) -> Result<()> {
        lake.refresh().await?;
        let mut shards = self.shards.clone();
        for info in listed {
            let id = info.id.clone();
            let owned = self.leases.owns(&id);
            match shards.get_mut(&id) {
                Some(s) => {
                    s.info = info;
                    if !owned && s.committed != Some(Checkpoint::End) {
                        s.committed = checkpoint::read(lake, EVENTS, &self.cfg.stream, &id).await?;
                    }
                }
                None => {
                    let committed = checkpoint::read(lake, EVENTS, &self.cfg.stream, &id).await?;
                    shards.insert(id, ShardState { info, committed });
                }
            }
        }
        self.shards = shards;
        Ok(())
    }

    fn is_done(&self, shard: &str) -> bool {
        self.shards
            .get(shard)
            .is_none_or(|s| s.committed == Some(Checkpoint::End))
    }

    /// Shards that may be read now: not finished, parents finished (KCL's rule).
    fn eligible(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .shards
            .values()
            .filter(|s| s.committed != Some(Checkpoint::End))
            .filter(|s| s.info.parents().all(|p| self.is_done(p)))
            .map(|s| s.info.id.clone())
            .collect();
        out.sort();
        out
    }

    fn start_for(&self, shard: &ShardState) -> IteratorStart {
        match &shard.committed {
            Some(Checkpoint::At(seq)) => IteratorStart::AfterSequence(seq.clone()),
            Some(Checkpoint::End) => IteratorStart::TrimHorizon,
            None => {
                // A child of a shard this stream already had: from its start.
                if shard.info.parents().any(|p| self.shards.contains_key(p)) {
                    return IteratorStart::TrimHorizon;
                }
                match self.cfg.from {
                    StartFrom::TrimHorizon => IteratorStart::TrimHorizon,
                    StartFrom::Latest => IteratorStart::Latest,
                    StartFrom::AtTimestamp(ms) => IteratorStart::AtTimestamp(ms),
                }
            }
        }
    }

    async fn spawn_reader(&mut self, lake: &Lake, shard: &str) -> Result<()> {
        let Some(state) = self.shards.get(shard).cloned() else {
            return Ok(());
        };
        let start = self.start_for(&state);
        let dead_cp = checkpoint::read(lake, DEAD_LETTERS, &self.cfg.stream, shard).await?;
        info!(shard = %shard, start = ?start, "reading shard");
        let spec = ReaderSpec {
            api: self.api.clone(),
            stream: self.stream.clone(),
            shard: Arc::from(shard),
            epoch: self.epoch,
            start,
            suppress_dead_through: dead_cp,
            limits: self.cfg.limits,
            records_per_call: self.cfg.records_per_call,
            min_call_interval: self.cfg.min_call_interval,
            idle_poll: self.cfg.idle_poll,
            clock: self.cfg.clock.clone(),
            metrics: self.metrics.clone(),
            tx: self.tx.clone(),
            room: self.room.clone(),
            room_units: queue_units(self.cfg.queue_bytes),
        };
        if let Some(old) = self
            .readers
            .insert(shard.to_string(), tokio::spawn(reader(spec)))
        {
            old.abort();
        }
        Ok(())
    }

    fn stop_reader(&mut self, shard: &str) {
        if let Some(h) = self.readers.remove(shard) {
            h.abort();
        }
    }

    /// One lease round: start readers for acquired shards, reset on lost ones.
    async fn lease_round(&mut self, lake: &mut Lake, flush: &mut Flush) -> Result<()> {
        let eligible = self.eligible();
        let changes = self.leases.round(&eligible).await?;
        if !changes.lost.is_empty() {
            warn!(shards = ?changes.lost, "leases lost: dropping everything not yet committed and re-reading from the lake");
            self.reset(lake, flush).await?;
        }
        if !changes.acquired.is_empty() {
            lake.refresh().await?;
            for s in &changes.acquired {
                let cp = checkpoint::read(lake, EVENTS, &self.cfg.stream, s).await?;
                if let Some(st) = self.shards.get_mut(s) {
                    st.committed = cp;
                }
                self.spawn_reader(lake, s).await?;
            }
        }
        // Readers that ended (closed shards) stay stopped; owned shards
        // without a reader (after a reset) get one.
        let owned = self.leases.owned();
        for s in &owned {
            if !self.readers.contains_key(s) && !flush.positions.get(s).is_some_and(|p| p.1) {
                self.spawn_reader(lake, s).await?;
            }
        }
        let stale: Vec<String> = self
            .readers
            .keys()
            .filter(|s| !owned.contains(*s))
            .cloned()
            .collect();
        for s in stale {
            self.stop_reader(&s);
        }
        self.metrics.owned_shards.set(owned.len() as i64);
        Ok(())
    }

    /// Drops everything not committed, and restarts every reader from the lake.
    async fn reset(&mut self, lake: &mut Lake, flush: &mut Flush) -> Result<()> {
        self.epoch += 1;
        let shards: Vec<String> = self.readers.keys().cloned().collect();
        for s in shards {
            self.stop_reader(&s);
        }
        *flush = Flush::new(lake, &self.cfg)?;
        lake.refresh().await?;
        let owned = self.leases.owned();
        for s in &owned {
            let cp = checkpoint::read(lake, EVENTS, &self.cfg.stream, s).await?;
            if let Some(st) = self.shards.get_mut(s) {
                st.committed = cp;
            }
        }
        for s in &owned {
            if self
                .shards
                .get(s)
                .is_some_and(|st| st.committed != Some(Checkpoint::End))
            {
                self.spawn_reader(lake, s).await?;
            }
        }
        Ok(())
    }

    fn take_page(&mut self, page: Page, flush: &mut Flush) {
        if page.epoch != self.epoch || !self.leases.owns(&page.shard) {
            return;
        }
        flush.started.get_or_insert_with(Instant::now);
        flush.records += page.records;
        flush.bytes += page.decoded_bytes;
        flush.counts.add(&page.counts);
        flush.dead.extend(page.dead);
        if let Some(b) = page.batch {
            flush.run_rows += b.num_rows();
            flush.run.push(b);
        }
        let entry = flush
            .positions
            .entry(page.shard.to_string())
            .or_insert((None, false));
        if page.last_seq.is_some() {
            entry.0 = page.last_seq;
        }
        entry.1 |= page.end;
        if page.end {
            self.readers.remove(page.shard.as_ref());
        }
    }

    /// Writes and commits the buffered records with the shards' positions.
    async fn commit(&mut self, lake: &mut Lake, flush: &mut Flush) -> Result<Committed> {
        if flush.is_empty() {
            return Ok(Committed::Nothing);
        }
        let started = Instant::now();
        // Fence: every shard's checkpoint in the lake must still be the one
        // this worker read or wrote last; otherwise another worker took over.
        lake.refresh().await?;
        for shard in flush.positions.keys() {
            let now = checkpoint::read(lake, EVENTS, &self.cfg.stream, shard).await?;
            let mine = self.shards.get(shard).and_then(|s| s.committed.clone());
            if now != mine || !self.leases.owns(shard) {
                warn!(shard = %shard, lake = ?now, expected = ?mine, "another worker committed this shard; dropping what is buffered");
                self.metrics.commit_conflicts.inc();
                self.reset(lake, flush).await?;
                return Ok(Committed::Dropped);
            }
        }
        if !flush.run.is_empty() {
            flush.pool.submit(std::mem::take(&mut flush.run)).await?;
            flush.run_rows = 0;
        }
        if !flush.dead.is_empty() {
            // Stamped now, so they land in the partition of the day they
            // were committed, however long the worker has been running.
            let mut dead = DeadLettersBuilder::new(self.cfg.clock.now_us());
            for dl in flush.dead.drain(..) {
                dead.push(dl);
            }
            flush.writer.write_dead_letters(dead.finish()).await?;
        }
        let adds = flush.pool.flush().await?;
        let next = self.report.commits + 1;
        if self.cfg.fail.before_commit == Some(next) {
            warn!(
                commit = next,
                "failpoint: aborting after writing files, before the commit"
            );
            std::process::abort();
        }
        let mut txns = Vec::new();
        let mut new_cps = Vec::new();
        for (shard, (seq, end)) in &flush.positions {
            let cp = if *end {
                Checkpoint::End
            } else if let Some(s) = seq {
                Checkpoint::At(s.clone())
            } else {
                continue;
            };
            txns.extend(checkpoint::encode(&self.cfg.stream, shard, &cp));
            new_cps.push((shard.clone(), cp));
        }
        let mut meta = serde_json::Map::new();
        meta.insert("fnwatch.operation".into(), "ingest-kinesis".into());
        meta.insert("fnwatch.stream".into(), self.cfg.stream.clone().into());
        meta.insert("fnwatch.worker".into(), self.cfg.worker_id.clone().into());
        flush.writer.abort_between_commits = self.cfg.fail.between_commits;
        match flush.writer.commit(lake, adds, &txns, meta).await {
            Ok(summary) => {
                debug!(?summary, "committed");
            }
            Err(e) if e.is_commit_conflict() => {
                warn!(error = %e, "a concurrent commit wrote the same shard; dropping what is buffered");
                self.metrics.commit_conflicts.inc();
                self.reset(lake, flush).await?;
                return Ok(Committed::Dropped);
            }
            Err(e) => return Err(e),
        }
        self.report.commits += 1;
        self.report.records += flush.records;
        self.report.counts.add(&flush.counts);
        self.metrics.commits.inc();
        self.metrics.events.inc_by(flush.counts.total_events());
        self.metrics.dead_letters.inc_by(flush.counts.dead_letters);
        self.metrics
            .skipped_cloudtrail
            .inc_by(flush.counts.skipped_cloudtrail);
        self.metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut finished = 0;
        for (shard, cp) in new_cps {
            if cp == Checkpoint::End {
                finished += 1;
            }
            if let Some(s) = self.shards.get_mut(&shard) {
                s.committed = Some(cp);
            }
        }
        self.report.shards_finished += finished;
        info!(
            records = flush.records,
            events = flush.counts.total_events(),
            dead_letters = flush.counts.dead_letters,
            shards = flush.positions.len(),
            finished_shards = finished,
            seconds = started.elapsed().as_secs_f64(),
            "committed to the lake"
        );
        flush.positions.clear();
        flush.records = 0;
        flush.bytes = 0;
        flush.counts = Counts::default();
        flush.started = None;
        if self.cfg.fail.after_commit == Some(self.report.commits) {
            warn!(
                commit = self.report.commits,
                "failpoint: aborting after the commit"
            );
            std::process::abort();
        }
        Ok(Committed::Done { finished })
    }

    /// Gives up the shards above this worker's share (another worker has
    /// joined), after committing what is buffered so nothing is read twice.
    async fn release_surplus(&mut self, lake: &mut Lake, flush: &mut Flush) -> Result<()> {
        let extra = self.leases.surplus(self.eligible().len()).await?;
        if extra.is_empty() {
            return Ok(());
        }
        if !flush.is_empty() && !matches!(self.commit(lake, flush).await?, Committed::Done { .. }) {
            return Ok(());
        }
        for s in &extra {
            self.stop_reader(s);
            self.leases.release(s).await?;
        }
        info!(shards = ?extra, "released shards above this worker's share");
        self.metrics
            .owned_shards
            .set(self.leases.owned().len() as i64);
        Ok(())
    }

    /// Runs until `stop` resolves (SIGTERM/SIGINT), then commits what is
    /// buffered, releases its leases and returns.
    pub async fn run(
        mut self,
        lake: &mut Lake,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<WorkerReport> {
        let result = self.run_inner(lake, stop).await;
        if let Err(e) = &result
            && let Ok(mut f) = self.metrics.failure.lock()
        {
            *f = Some(e.to_string());
        }
        for (_, h) in self.readers.drain() {
            h.abort();
        }
        if result.is_ok() {
            self.leases.release_all().await;
        }
        result.map(|()| self.report.clone())
    }

    async fn run_inner(
        &mut self,
        lake: &mut Lake,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(stop);
        info!(stream = %self.cfg.stream, worker = %self.cfg.worker_id, "Kinesis worker starting");
        self.sync_shards(lake).await?;
        if self.shards.is_empty() {
            return Err(IngestError::Source(format!(
                "Kinesis stream `{}` has no shards",
                self.cfg.stream
            )));
        }
        let mut flush = Flush::new(lake, &self.cfg)?;
        self.lease_round(lake, &mut flush).await?;
        let lease_every = (self.cfg.lease_timeout / 3).max(Duration::from_millis(100));
        let mut lease_tick = tokio::time::interval(lease_every);
        // A renewal that came late is not made up for with a burst.
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = tokio::time::interval(self.cfg.shard_sync);
        // After a slow sync, the next one a full interval later, not at once.
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush_tick =
            tokio::time::interval((self.cfg.flush_interval / 4).max(Duration::from_millis(50)));
        let mut surplus_check = false;
        loop {
            self.metrics.turn();
            // Biased, in this order: stopping, then the timers, then pages.
            // During catch-up a page is always ready; were pages first, a
            // due lease renewal (or time-based flush) would wait for the
            // queue to run dry and the leases would lapse.
            tokio::select! {
                biased;
                () = &mut stop => {
                    info!("stopping: committing what is buffered");
                    for (_, h) in self.readers.drain() {
                        h.abort();
                    }
                    // Pages already decoded and queued belong to the flush.
                    while let Ok(msg) = self.rx.try_recv() {
                        if let ReaderMsg::Page(p) = msg {
                            self.take_page(p, &mut flush);
                        }
                    }
                    self.commit(lake, &mut flush).await?;
                    return Ok(());
                }
                _ = lease_tick.tick() => {
                    self.lease_round(lake, &mut flush).await?;
                    surplus_check = true;
                }
                _ = flush_tick.tick() => {
                    if flush.started.is_some_and(|t| t.elapsed() >= self.cfg.flush_interval) {
                        self.commit(lake, &mut flush).await?;
                        surplus_check = true;
                    }
                }
                _ = sync_tick.tick() => {
                    self.resync_shards(lake).await?;
                    self.lease_round(lake, &mut flush).await?;
                }
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { continue };
                    match msg {
                        ReaderMsg::Page(p) => {
                            let ended = p.end && p.epoch == self.epoch;
                            self.take_page(p, &mut flush);
                            if flush.run_rows >= self.cfg.run_rows {
                                flush.pool.submit(std::mem::take(&mut flush.run)).await?;
                                flush.run_rows = 0;
                            }
                            if flush.bytes as usize >= self.cfg.flush_bytes {
                                self.commit(lake, &mut flush).await?;
                                surplus_check = true;
                            }
                            if ended {
                                // Commit the end at once so the children can start.
                                let done = self.commit(lake, &mut flush).await?;
                                if matches!(done, Committed::Done { finished } if finished > 0) {
                                    self.resync_shards(lake).await?;
                                    self.lease_round(lake, &mut flush).await?;
                                }
                            }
                        }
                        ReaderMsg::Fatal { shard, epoch, error } => {
                            if epoch == self.epoch {
                                return Err(IngestError::Source(format!(
                                    "reading shard {shard} of Kinesis stream `{}`: {error}",
                                    self.cfg.stream
                                )));
                            }
                        }
                    }
                }
            }
            if surplus_check {
                surplus_check = false;
                self.release_surplus(lake, &mut flush).await?;
            }
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
