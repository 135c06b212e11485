//! Worker tests against an in-memory stream and a local lake: when records
//! are stamped, what a flush counts, how much the reader queue holds, and
//! that leases are renewed while the worker catches up.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::*;
use crate::sources::kinesis::client::{KinesisRecord, PutOutcome, RecordsPage};

/// A stream held in memory: open shards whose records the test appends
/// while the worker runs, or that are endless (every call returns a full
/// page of the same record).
#[derive(Clone, Default)]
struct MemStream {
    shards: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
    endless: Option<Arc<Vec<u8>>>,
    calls: Arc<AtomicU64>,
}

fn seq(n: usize) -> String {
    format!("49{n:054}")
}

impl MemStream {
    fn new(shards: usize) -> MemStream {
        MemStream {
            shards: Arc::new(Mutex::new(vec![Vec::new(); shards])),
            ..Default::default()
        }
    }

    fn put(&self, shard: usize, data: Vec<u8>) {
        self.shards.lock().unwrap()[shard].push(data);
    }
}

impl KinesisApi for MemStream {
    async fn list_shards(
        &self,
        _stream: &str,
    ) -> std::result::Result<Vec<ShardInfo>, KinesisError> {
        let n = self.shards.lock().unwrap().len();
        Ok((0..n)
            .map(|i| ShardInfo {
                id: format!("shardId-{i:012}"),
                parent: None,
                adjacent_parent: None,
                ending_sequence: None,
            })
            .collect())
    }

    async fn get_shard_iterator(
        &self,
        _stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> std::result::Result<String, KinesisError> {
        let i: usize = shard.trim_start_matches("shardId-").parse().unwrap();
        let offset: usize = match start {
            IteratorStart::AfterSequence(s) => s[2..].parse().unwrap(),
            _ => 0,
        };
        Ok(format!("{i}:{offset}"))
    }

    async fn get_records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> std::result::Result<RecordsPage, KinesisError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (i, off) = iterator.split_once(':').unwrap();
        let (i, off): (usize, usize) = (i.parse().unwrap(), off.parse().unwrap());
        let (records, end) = match &self.endless {
            Some(body) => {
                let end = off + limit as usize;
                let records = (off..end)
                    .map(|n| KinesisRecord {
                        sequence_number: seq(n + 1),
                        partition_key: format!("k{n}"),
                        data: body.as_ref().clone(),
                        arrival_ms: None,
                    })
                    .collect();
                (records, end)
            }
            None => {
                let shards = self.shards.lock().unwrap();
                let shard = &shards[i];
                let end = (off + limit as usize).min(shard.len());
                let records = (off..end)
                    .map(|n| KinesisRecord {
                        sequence_number: seq(n + 1),
                        partition_key: format!("k{n}"),
                        data: shard[n].clone(),
                        arrival_ms: None,
                    })
                    .collect();
                (records, end)
            }
        };
        Ok(RecordsPage {
            records,
            next_iterator: Some(format!("{i}:{end}")),
            millis_behind_latest: Some(0),
        })
    }

    async fn put_records(
        &self,
        _stream: &str,
        _entries: &[(String, Vec<u8>)],
    ) -> std::result::Result<Vec<PutOutcome>, KinesisError> {
        Ok(Vec::new())
    }
}

fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"file","time":"2026-11-23T10:00:{:02}.000Z","function":"fn-a","request_id":"req-{i}","path":"/tmp/cache-{i}/data.json","op":"write"}}"#,
        i % 60
    )
    .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn config() -> KinesisSourceConfig {
    let mut cfg = KinesisSourceConfig::new("s");
    cfg.flush_interval = Duration::from_secs(3600);
    cfg.idle_poll = Duration::from_millis(10);
    cfg.min_call_interval = Duration::ZERO;
    cfg.lease_timeout = Duration::from_secs(30);
    cfg.shard_sync = Duration::from_secs(3600);
    cfg
}

/// Runs `worker` on `lake` until `driver` returns, then stops it.
async fn run_with<C: KinesisApi>(
    worker: Worker<C>,
    lake: &mut Lake,
    driver: impl std::future::Future<Output = ()>,
) -> WorkerReport {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let drive = async move {
        driver.await;
        let _ = stop_tx.send(());
    };
    let (report, ()) = tokio::join!(worker.run(lake, stop), drive);
    report.unwrap()
}

async fn wait_for(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn parquet_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

/// (partition directory, ingested_at) of every row of a table.
fn stamps(table: &Path) -> Vec<(String, i64)> {
    let mut files = Vec::new();
    parquet_files(table, &mut files);
    let mut out = Vec::new();
    for f in files {
        let part = f
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            let col = b
                .column_by_name("ingested_at")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            for i in 0..col.len() {
                out.push((part.clone(), col.value(i)));
            }
        }
    }
    out.sort();
    out
}

const DAY_US: i64 = 86_400_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flush_is_stamped_with_its_own_time_and_dead_letters_land_in_its_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open_or_create(dir.path().to_str().unwrap())
        .await
        .unwrap();
    // 2026-11-23 23:59:00 UTC, then the next day.
    let day1 = 1_795_478_340_000_000i64;
    let day2 = day1 + 3_600_000_000;
    let now = Arc::new(AtomicI64::new(day1));
    let stream = MemStream::new(1);
    let mut cfg = config();
    cfg.flush_interval = Duration::from_millis(100);
    let clock = now.clone();
    cfg.clock = Clock::from_fn(move || clock.load(Ordering::SeqCst));
    let metrics = WorkerMetrics::new();
    let worker = Worker::new(stream.clone(), &lake, cfg, metrics.clone()).unwrap();
    let m = metrics.clone();
    let report = run_with(worker, &mut lake, async move {
        stream.put(0, event(1));
        stream.put(0, b"not telemetry".to_vec());
        wait_for("the first commit", Duration::from_secs(30), || {
            m.commits.get() >= 1
        })
        .await;
        now.store(day2, Ordering::SeqCst);
        stream.put(0, event(2));
        stream.put(0, b"not telemetry either".to_vec());
        wait_for("the second commit", Duration::from_secs(30), || {
            m.commits.get() >= 2
        })
        .await;
    })
    .await;
    assert_eq!(report.counts.dead_letters, 2, "{report:?}");
    let events = stamps(&dir.path().join("events"));
    assert_eq!(
        events.iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![day1, day2],
        "each event carries the time its page was read: {events:?}"
    );
    let dead = stamps(&dir.path().join("dead_letters"));
    let d1 = format!("date={}", crate::builder::day_text(day1 / DAY_US));
    let d2 = format!("date={}", crate::builder::day_text(day2 / DAY_US));
    assert_ne!(d1, d2);
    assert_eq!(
        dead,
        vec![(d1, day1), (d2, day2)],
        "each dead letter is stamped at its commit and filed under that day"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_bytes_counts_what_the_records_decode_to_not_their_compressed_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open_or_create(dir.path().to_str().unwrap())
        .await
        .unwrap();
    // One gzip record of 4,000 events: about 10 KB on the stream, well over
    // a megabyte once decoded into Arrow arrays.
    let lines: Vec<u8> = (0..4000)
        .flat_map(|i| {
            let mut l = event(i);
            l.push(b'\n');
            l
        })
        .collect();
    let record = gzip(&lines);
    assert!(record.len() < 64 * 1024, "{}", record.len());
    let stream = MemStream::new(1);
    stream.put(0, record);
    let mut cfg = config();
    cfg.flush_bytes = 512 * 1024;
    let metrics = WorkerMetrics::new();
    let worker = Worker::new(stream.clone(), &lake, cfg, metrics.clone()).unwrap();
    let m = metrics.clone();
    let report = run_with(worker, &mut lake, async move {
        // No flush interval will come: only the size can trigger this commit.
        wait_for(
            "a commit triggered by the decoded size",
            Duration::from_secs(30),
            || m.commits.get() >= 1,
        )
        .await;
    })
    .await;
    assert_eq!(report.counts.total_events(), 4000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_queue_holds_at_most_its_bytes_of_decoded_pages() {
    let mut stream = MemStream::new(1);
    // Each page: 20 records, each a gzip of 50 events (about 0.4 MB decoded).
    let lines: Vec<u8> = (0..50)
        .flat_map(|i| {
            let mut l = event(i);
            l.push(b'\n');
            l
        })
        .collect();
    stream.endless = Some(Arc::new(gzip(&lines)));
    let queue_bytes = 4 * 1024 * 1024;
    let (tx, mut rx) = mpsc::channel(32);
    let spec = ReaderSpec {
        api: Arc::new(stream.clone()),
        stream: Arc::from("s"),
        shard: Arc::from("shardId-000000000000"),
        epoch: 0,
        start: IteratorStart::TrimHorizon,
        suppress_dead_through: None,
        limits: Limits::default(),
        records_per_call: 20,
        min_call_interval: Duration::ZERO,
        idle_poll: Duration::from_millis(10),
        clock: Clock::system(),
        metrics: WorkerMetrics::new(),
        tx,
        room: Arc::new(Semaphore::new(queue_units(queue_bytes) as usize)),
        room_units: queue_units(queue_bytes),
    };
    let task = tokio::spawn(reader(spec));
    // Nobody takes the pages: the reader fills the queue, then waits.
    let calls = stream.calls.clone();
    let mut last = u64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = calls.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    task.abort();
    let mut queued = 0u64;
    let mut pages = 0;
    while let Ok(msg) = rx.try_recv() {
        if let ReaderMsg::Page(p) = msg {
            assert!(p.decoded_bytes > 0);
            queued += p.decoded_bytes;
            pages += 1;
        }
    }
    assert!(pages >= 1, "the reader queued nothing");
    assert!(
        pages < 32,
        "{pages} pages queued: the page count, not the bytes, stopped the reader"
    );
    assert!(
        queued <= queue_bytes as u64,
        "{pages} pages of {queued} decoded bytes queued, over the {queue_bytes} allowed"
    );
}

/// The generation of the newest lease file of a shard.
fn lease_generation(lake: &Path, shard: &str) -> Option<u64> {
    let dir = lake.join("_kinesis/s/leases").join(shard);
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_pages_are_always_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = Lake::open_or_create(dir.path().to_str().unwrap())
        .await
        .unwrap();
    // A shard far behind: every GetRecords returns a page at once, and each
    // page is committed on its own (flush size one byte), so the loop is
    // always behind the reader and a page is always waiting.
    let mut stream = MemStream::new(1);
    stream.endless = Some(Arc::new(event(7)));
    let mut cfg = config();
    cfg.flush_bytes = 1;
    cfg.records_per_call = 1;
    cfg.lease_timeout = Duration::from_secs(2);
    let metrics = WorkerMetrics::new();
    let worker = Worker::new(stream, &lake, cfg, metrics.clone()).unwrap();
    let root = dir.path().to_path_buf();
    let m = metrics.clone();
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    run_with(worker, &mut lake, async move {
        wait_for("the first commit", Duration::from_secs(30), || {
            m.commits.get() >= 1
        })
        .await;
        let start = Instant::now();
        let mut last = lease_generation(&root, "shardId-000000000000");
        let mut times = vec![Instant::now()];
        while start.elapsed() < Duration::from_secs(6) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let g = lease_generation(&root, "shardId-000000000000");
            if g != last {
                last = g;
                times.push(Instant::now());
            }
        }
        times.push(Instant::now());
        *seen.lock().unwrap() = times;
    })
    .await;
    let commits = metrics.commits.get();
    assert!(commits >= 5, "only {commits} commits: not catching up");
    let times = changes.lock().unwrap().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        gaps.len() >= 4 && longest < Duration::from_secs(2),
        "lease renewals {} in 6 s, longest gap {longest:?} (time-out 2 s), over {commits} commits",
        gaps.len() - 1
    );
}

#[test]
fn decoded_size_counts_arrays_and_dead_letters() {
    let pos = Position::kinesis(Arc::from("s"), Arc::from("shard"), seq(1));
    let dl = DeadLetter::new("bad", &pos, &[0u8; 10_000]);
    assert!(decoded_size(None, std::slice::from_ref(&dl)) >= 10_000);
    let mut sink = crate::builder::BatchSink::new(0);
    let mut state = DecodeState::default();
    for i in 0..100 {
        decode_record(&event(i), &pos, &mut state, &mut sink);
    }
    let batch = sink.events.finish();
    let arrays = decoded_size(Some(&batch), &[]);
    assert!(arrays >= 100 * 40, "{arrays}");
}
