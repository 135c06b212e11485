//! Benchmark: the Kinesis worker's decode+write path without the emulator.
//! The worker (the same code `fnwatch ingest --kinesis` runs) reads replayed
//! GetRecords pages from memory and commits to a fresh local lake; the
//! figures are records/s, CPU seconds per million records and peak memory.
//! Run it on one core to measure what one core sustains:
//!
//!   cargo bench --bench kinesis_replay --no-run     # build (both cores)
//!   taskset -c 0 cargo bench --bench kinesis_replay -- \
//!       [--input telemetry.jsonl.gz ...] [--records 1000000] [--shards 8]
//!
//! Input: telemetry files, one record per line (what `fnwatch simulate`
//! writes and benches/kinesis_worker.py puts on the emulator), repeated
//! until --records; without --input, a synthetic mix of the native event
//! types (about 330 bytes a record). benches/kinesis_worker.py runs this and
//! the emulator run in one go.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fnwatch_ingest::lake::{EVENTS, Lake};
use fnwatch_ingest::sources::kinesis::checkpoint::{self, Checkpoint};
use fnwatch_ingest::sources::kinesis::metrics::WorkerMetrics;
use fnwatch_ingest::sources::kinesis::{
    IteratorStart, KinesisApi, KinesisError, KinesisRecord, KinesisSourceConfig, PutOutcome,
    RecordsPage, ShardInfo, Worker,
};

/// Closed shards whose records are served from memory: each shard is a list
/// of indexes into the distinct record bodies, and a page is materialised
/// only when asked for, as the SDK would hand it over.
struct Replay {
    bodies: Vec<Vec<u8>>,
    shards: Vec<Vec<u32>>,
    served: AtomicU64,
}

/// The sequence number of the `n`-th record of a shard (1-based).
fn seq(n: usize) -> String {
    format!("49{n:054}")
}

impl KinesisApi for Replay {
    async fn list_shards(&self, _stream: &str) -> Result<Vec<ShardInfo>, KinesisError> {
        Ok((0..self.shards.len())
            .map(|i| ShardInfo {
                id: format!("shardId-{i:012}"),
                parent: None,
                adjacent_parent: None,
                ending_sequence: Some("9".repeat(56)),
            })
            .collect())
    }

    async fn get_shard_iterator(
        &self,
        _stream: &str,
        shard: &str,
        start: &IteratorStart,
    ) -> Result<String, KinesisError> {
        let i: usize = shard.trim_start_matches("shardId-").parse().unwrap();
        let offset: usize = match start {
            IteratorStart::AfterSequence(s) => s[2..].parse().unwrap(),
            _ => 0,
        };
        Ok(format!("{i}:{offset}"))
    }

    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, KinesisError> {
        let (i, off) = iterator.split_once(':').unwrap();
        let (i, off): (usize, usize) = (i.parse().unwrap(), off.parse().unwrap());
        let shard = &self.shards[i];
        let end = (off + limit as usize).min(shard.len());
        let records: Vec<KinesisRecord> = (off..end)
            .map(|n| KinesisRecord {
                sequence_number: seq(n + 1),
                partition_key: format!("k{n}"),
                data: self.bodies[shard[n] as usize].clone(),
                arrival_ms: None,
            })
            .collect();
        self.served
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(RecordsPage {
            records,
            next_iterator: (end < shard.len()).then(|| format!("{i}:{end}")),
            millis_behind_latest: Some(0),
        })
    }

    async fn put_records(
        &self,
        _stream: &str,
        _entries: &[(String, Vec<u8>)],
    ) -> Result<Vec<PutOutcome>, KinesisError> {
        Ok(Vec::new())
    }
}

fn synthetic(i: u64) -> Vec<u8> {
    let f = format!("fn-{:02}", i % 40);
    let r = format!("{:08x}-7c1e-4b7e-9d0a-{:012x}", i / 5, i * 7919);
    let t = format!(
        "2026-11-23T10:{:02}:{:02}.{:03}Z",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i % 1000
    );
    match i % 5 {
        0 => format!(r#"{{"type":"invocation","time":"{t}","function":"{f}","request_id":"{r}","duration_ms":84.2,"billed_ms":85,"cpu_ms":31.0,"memory_mb":256,"max_memory_mb":91,"init_ms":null,"timeout_ms":6000,"status":"success","trigger":"apigateway","event_bytes":733}}"#),
        1 => format!(r#"{{"type":"dns","time":"{t}","function":"{f}","request_id":"{r}","query":"api{}.example.com","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10","3.218.182.11"]}}"#, i % 13),
        2 => format!(r#"{{"type":"network","time":"{t}","function":"{f}","request_id":"{r}","direction":"outbound","protocol":"tcp","remote_ip":"3.218.182.{}","remote_port":443,"remote_host":"api.example.com","bytes_out":{},"bytes_in":{}}}"#, i % 250, i % 9000, i % 70000),
        3 => format!(r#"{{"type":"api_call","time":"{t}","function":"{f}","request_id":"{r}","service":"dynamodb","action":"PutItem","resource":"arn:aws:dynamodb:us-east-1:123456789012:table/orders","error_code":null}}"#),
        _ => format!(r#"{{"type":"file","time":"{t}","function":"{f}","request_id":"{r}","path":"/tmp/cache-{}/data.json","op":"write"}}"#, i % 97),
    }
    .into_bytes()
}

fn read_lines(path: &str) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let reader: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    std::io::BufReader::new(reader)
        .split(b'\n')
        .map(|l| l.unwrap())
        .filter(|l| !l.is_empty())
        .collect()
}

/// (user+system CPU seconds, peak resident MB) of this process, from /proc.
fn cpu_and_peak() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, peak_kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let inputs: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--input")
        .map(|w| w[1].clone())
        .collect();
    let n: u64 = arg("--records")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 1_000_000 } else { 20_000 });
    let shard_count: usize = arg("--shards").and_then(|v| v.parse().ok()).unwrap_or(8);

    let mut bodies: Vec<Vec<u8>> = inputs.iter().flat_map(|p| read_lines(p)).collect();
    if bodies.is_empty() {
        bodies = (0..100_000).map(synthetic).collect();
    }
    let mut shards: Vec<Vec<u32>> = vec![Vec::new(); shard_count];
    let mut bytes = 0u64;
    for i in 0..n {
        let b = (i as usize) % bodies.len();
        bytes += bodies[b].len() as u64;
        shards[(i as usize) % shard_count].push(b as u32);
    }
    let dir = tempfile::tempdir().unwrap();
    let lake_path = dir.path().join("lake");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The replay's own input stays in memory; the worker's share of the
    // peak is what comes on top of it.
    let (cpu0, input_mb) = cpu_and_peak();
    let started = Instant::now();
    let replay = Replay {
        bodies,
        shards,
        served: AtomicU64::new(0),
    };
    let report = rt.block_on(async {
        let mut lake = Lake::open_or_create(lake_path.to_str().unwrap())
            .await
            .unwrap();
        let mut cfg = KinesisSourceConfig::new("bench");
        cfg.flush_interval = Duration::from_secs(30);
        cfg.idle_poll = Duration::from_millis(10);
        cfg.min_call_interval = Duration::ZERO;
        let watch = lake_path.clone();
        let ids: Vec<String> = (0..shard_count)
            .map(|i| format!("shardId-{i:012}"))
            .collect();
        let done = async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(l) = Lake::open(watch.to_str().unwrap()).await else {
                    continue;
                };
                let mut all = true;
                for s in &ids {
                    if checkpoint::read(&l, EVENTS, "bench", s)
                        .await
                        .ok()
                        .flatten()
                        != Some(Checkpoint::End)
                    {
                        all = false;
                        break;
                    }
                }
                if all {
                    return;
                }
            }
        };
        let worker = Worker::new(replay, &lake, cfg, WorkerMetrics::new()).unwrap();
        worker.run(&mut lake, done).await.unwrap()
    });
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, peak_mb) = cpu_and_peak();
    let cpu = cpu1 - cpu0;
    assert_eq!(report.records, n, "every record committed");
    let events = report.counts.total_events();
    println!(
        "kinesis replay: {n} records ({:.0} bytes/record, {} events, {} dead letters) over {shard_count} shards in {secs:.2} s: {:.0} records/s; CPU {cpu:.2} s = {:.2} CPU-s per million records; peak memory {peak_mb:.0} MB ({:.0} MB above the {input_mb:.0} MB of replay input); {} commits",
        bytes as f64 / n as f64,
        events,
        report.counts.dead_letters,
        n as f64 / secs,
        cpu / (n as f64 / 1e6),
        peak_mb - input_mb,
        report.commits,
    );
}
