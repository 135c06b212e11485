//! The Kinesis worker against a real emulator (kinesalite, started by
//! tests/e2e/kinesis_harness.rs), with records put by boto3
//! (tests/e2e/kinesis_tool.py), not by our own code: every shard, exactly
//! once, through resharding, crashes, outages, throttling, poison records and
//! a second worker.
//!
//! The oracle: the same telemetry files ingested with `fnwatch ingest FILES`
//! into a reference lake; the worker's lake must hold exactly the same rows
//! (no loss, no duplicate).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, count, fnwatch, fnwatch_env};
use crate::kinesis_harness::{Kinesalite, aws_env};
use crate::s3_harness::MotoS3;

/// Telemetry of a small fleet (simulated), as gzip JSON Lines files.
pub fn telemetry(dir: &Path, seed: u64, invocations: u64) -> Vec<PathBuf> {
    let (seed, invocations) = (seed.to_string(), invocations.to_string());
    simulated(
        &dir.join(format!("telemetry-{seed}")),
        &[
            "--seed",
            &seed,
            "--days",
            "1",
            "--invocations-per-day",
            &invocations,
            "--attack-days",
            "0",
        ],
    )
}

/// `fnwatch simulate --out OUT --start 2026-11-20 ARGS...`: its telemetry
/// files, sorted.
pub fn simulated(out: &Path, args: &[&str]) -> Vec<PathBuf> {
    let mut all = vec![
        "simulate",
        "--out",
        out.to_str().unwrap(),
        "--start",
        "2026-11-20",
    ];
    all.extend_from_slice(args);
    fnwatch(&all).ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "simulate wrote no telemetry");
    files
}

/// Every event row, canonically ordered, as CSV text.
fn dump(lake: &Path) -> String {
    dump_at(lake.to_str().unwrap(), &[])
}

/// [`dump`] of a lake at any location, with `env` for the `fnwatch` process.
pub fn dump_at(lake: &str, env: &[(&str, &str)]) -> String {
    fnwatch_env(
        &[
            "sql",
            "--lake",
            lake,
            "--format",
            "csv",
            "SELECT type, function, coalesce(request_id, '') AS r, CAST(time AS VARCHAR) AS t, \
             coalesce(query, exe, path, action, remote_ip, message, '') AS what \
             FROM events ORDER BY 1, 2, 3, 4, 5",
        ],
        env,
    )
    .ok()
    .stdout
}

fn events(lake: &Path) -> i64 {
    if !lake.join("events").join("_delta_log").is_dir() {
        return 0;
    }
    count(lake, "SELECT count(*) FROM events")
}

/// The reference: the same files through the file ingest.
pub fn reference(dir: &Path, files: &[PathBuf]) -> (PathBuf, i64) {
    let lake = dir.join("reference-lake");
    let mut args = vec!["ingest", "--lake", lake.to_str().unwrap(), "--no-progress"];
    for f in files {
        args.push(f.to_str().unwrap());
    }
    fnwatch(&args).ok();
    let n = events(&lake);
    assert!(n > 500, "reference lake has {n} events");
    (lake, n)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running `fnwatch ingest --kinesis` process.
struct WorkerProc {
    child: Child,
    log: PathBuf,
}

impl WorkerProc {
    fn start(
        k: &Kinesalite,
        lake: &Path,
        stream: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> WorkerProc {
        let log = lake.with_file_name(format!("{name}.log"));
        WorkerProc::start_at(k, lake.to_str().unwrap(), log, stream, name, extra, env)
    }

    /// A worker on any lake location (a folder or `s3://...`), logging to `log`.
    fn start_at(
        k: &Kinesalite,
        lake: &str,
        log: PathBuf,
        stream: &str,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> WorkerProc {
        let mut cmd = Command::new(bin());
        cmd.args([
            "ingest",
            "--lake",
            lake,
            "--kinesis",
            stream,
            "--endpoint-url",
            &k.endpoint(),
            "--region",
            "us-east-1",
            "--flush-interval",
            "700ms",
            "--idle-poll",
            "100ms",
            "--shard-sync",
            "1s",
            "--lease-timeout",
            "3s",
            "--worker-id",
            name,
            // A port the worker binds itself (and logs): no other socket
            // can take it between a probe and the worker's bind.
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in aws_env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("fnwatch starts");
        WorkerProc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The metrics port, once the worker has logged it.
    fn metrics_port(&self) -> Option<u16> {
        let log = self.log();
        let rest = log.split("metrics at http://127.0.0.1:").nth(1)?;
        rest.split('/').next()?.parse().ok()
    }

    fn http(&self, path: &str) -> String {
        let Some(port) = self.metrics_port() else {
            return String::new();
        };
        let mut s = match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(_) => return String::new(),
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// The value of a metric line (first series matching `prefix`), summed
    /// over all series whose name starts with it.
    fn metric_sum(&self, name: &str) -> f64 {
        self.http("/metrics")
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits for the process to exit on its own.
    fn wait(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("worker did not exit within {timeout:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit code and stdout.
    fn term(&mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let code = self.wait(Duration::from_secs(60));
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        (code, out)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running emulator with an empty stream, the telemetry to put on it,
/// and the reference lake of that telemetry.
struct Scenario {
    // Fields drop in order: the emulator is stopped (its pid file is in
    // `dir`) before its folder is removed.
    k: Kinesalite,
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
    reference: PathBuf,
    want: i64,
}

impl Scenario {
    fn new(seed: u64, invocations: u64, stream: &str, shards: u32, persist: bool) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let k = Kinesalite::start(&dir.path().join("kinesalite"), persist);
        let files = telemetry(dir.path(), seed, invocations);
        let (reference, want) = reference(dir.path(), &files);
        k.create_stream(stream, shards);
        Scenario {
            k,
            dir,
            files,
            reference,
            want,
        }
    }
}

/// All lines of `files`, cut into two files: the first half and the rest.
fn halves(dir: &Path, files: &[PathBuf]) -> [PathBuf; 2] {
    let mut lines = Vec::new();
    for f in files {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(f).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        lines.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    let mid = lines.len() / 2;
    let a = dir.join("first-half.jsonl");
    let b = dir.join("second-half.jsonl");
    std::fs::write(&a, lines[..mid].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[mid..].join("\n") + "\n").unwrap();
    [a, b]
}

fn put_files(k: &Kinesalite, stream: &str, files: &[PathBuf]) -> u64 {
    files.iter().map(|f| k.put_file(stream, f)).sum()
}

/// The worker's lake holds exactly the reference's rows.
#[track_caller]
fn assert_same_rows(lake: &Path, reference: &Path, log: &str) {
    let got = dump(lake);
    let want = dump(reference);
    if got != want {
        let g: Vec<&str> = got.lines().collect();
        let w: Vec<&str> = want.lines().collect();
        panic!(
            "the worker's lake differs from the reference: {} rows vs {} (first difference near {:?} / {:?})\nworker log:\n{log}",
            g.len(),
            w.len(),
            g.iter().zip(&w).find(|(a, b)| a != b),
            (g.len(), w.len())
        );
    }
}

#[test]
fn worker_reads_every_shard_exactly_once_and_stops_cleanly() {
    let Scenario {
        dir,
        k,
        files,
        reference,
        want,
    } = Scenario::new(11, 250, "telemetry", 3, false);
    let put = put_files(&k, "telemetry", &files);
    assert!(put > 0);

    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "telemetry", "w1", &[], &[]);
    wait_until("every event in the lake", Duration::from_secs(120), || {
        events(&lake) >= want
    });
    // Metrics and health while it runs.
    let m = w.http("/metrics");
    assert!(
        m.contains("fnwatch_kinesis_records_total{shard=\"shardId-000000000000\"}"),
        "{m}"
    );
    assert!(m.contains("fnwatch_kinesis_millis_behind_latest"), "{m}");
    assert!(m.contains("fnwatch_kinesis_commits_total"), "{m}");
    assert_eq!(
        w.metric_sum("fnwatch_kinesis_records_total"),
        put as f64,
        "{m}"
    );
    assert!(w.http("/health").starts_with("HTTP/1.1 200"));
    let (code, out) = w.term();
    assert_eq!(code, 0, "SIGTERM exits 0\n{}", w.log());
    assert!(out.contains("stopped:"), "{out}");
    assert_same_rows(&lake, &reference, &w.log());

    // A restart reads nothing twice; records put meanwhile arrive once.
    let more = telemetry(dir.path(), 12, 60);
    put_files(&k, "telemetry", &more);
    let mut all = files.clone();
    all.extend(more.iter().cloned());
    let reference2 = dir.path().join("reference2");
    let mut args = vec![
        "ingest",
        "--lake",
        reference2.to_str().unwrap(),
        "--no-progress",
    ];
    for f in &all {
        args.push(f.to_str().unwrap());
    }
    fnwatch(&args).ok();
    let want2 = events(&reference2);
    let mut w = WorkerProc::start(&k, &lake, "telemetry", "w1", &[], &[]);
    wait_until("the new events", Duration::from_secs(120), || {
        events(&lake) >= want2
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &reference2, &w.log());
}

#[test]
fn kill_9_before_a_commit_and_between_its_two_halves_loses_and_duplicates_nothing() {
    // One shard, so which commit holds what is certain: the poison record
    // first, then the telemetry, read 100 records at a time.
    let Scenario {
        dir,
        k,
        files,
        reference,
        want,
    } = Scenario::new(21, 300, "s", 1, false);
    let poison = dir.path().join("poison.bin");
    std::fs::write(&poison, b"{\"type\":\"dns\",\"time\":").unwrap();
    k.tool(&[
        "put-raw",
        "s",
        "--partition-key",
        "p1",
        "--data-file",
        poison.to_str().unwrap(),
    ]);
    put_files(&k, "s", &files);
    let lake = dir.path().join("lake");
    let small = ["--flush-bytes", "20k"];
    let tune = ("FNWATCH_TUNE_RECORDS_PER_CALL", "100");

    // Dies during its first commit: after the dead letters, before the events.
    let mut w = WorkerProc::start(
        &k,
        &lake,
        "s",
        "w1",
        &small,
        &[tune, ("FNWATCH_FAIL_BETWEEN_COMMITS", "1")],
    );
    let code = w.wait(Duration::from_secs(120));
    assert_ne!(code, 0, "the failpoint aborts the worker\n{}", w.log());
    assert!(w.log().contains("failpoint"), "{}", w.log());
    assert_eq!(count(&lake, "SELECT count(*) FROM dead_letters"), 1);
    assert_eq!(events(&lake), 0);

    // Dies after writing the files of its second commit, before committing it.
    let mut w = WorkerProc::start(
        &k,
        &lake,
        "s",
        "w1",
        &small,
        &[tune, ("FNWATCH_FAIL_BEFORE_COMMIT", "2")],
    );
    let code = w.wait(Duration::from_secs(120));
    assert_ne!(code, 0, "the failpoint aborts the worker\n{}", w.log());
    let after_first = events(&lake);
    assert!(
        after_first > 0 && after_first < want,
        "one commit only: {after_first} of {want}"
    );

    // Then runs to the end.
    let mut w = WorkerProc::start(&k, &lake, "s", "w1", &small, &[tune]);
    wait_until("every event", Duration::from_secs(120), || {
        events(&lake) >= want
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &reference, &w.log());
    assert_eq!(
        count(&lake, "SELECT count(*) FROM dead_letters"),
        1,
        "the poison record is dead-lettered exactly once"
    );
}

#[test]
fn poison_record_is_dead_lettered_with_its_shard_and_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start(&dir.path().join("kinesalite"), false);
    k.create_stream("p", 1);
    let good = dir.path().join("good.jsonl");
    let line = crate::common::dns_line("orders", "r-1", "example.com");
    std::fs::write(&good, format!("{line}\n")).unwrap();
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, [0xffu8, 0xfe, 0x00, 0x12, 0x80]).unwrap();
    k.put_file("p", &good);
    k.tool(&[
        "put-raw",
        "p",
        "--partition-key",
        "x",
        "--data-file",
        bad.to_str().unwrap(),
    ]);
    let good2 = dir.path().join("good2.jsonl");
    std::fs::write(
        &good2,
        format!(
            "{}\n",
            crate::common::dns_line("orders", "r-2", "example.org")
        ),
    )
    .unwrap();
    k.put_file("p", &good2);
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "p", "w1", &[], &[]);
    wait_until("both good records", Duration::from_secs(60), || {
        events(&lake) >= 2
    });
    wait_until("the dead letter", Duration::from_secs(30), || {
        lake.join("dead_letters/_delta_log").is_dir()
            && count(&lake, "SELECT count(*) FROM dead_letters") >= 1
    });
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    let rows = crate::common::query(
        &lake,
        "SELECT source_kind, source, shard, sequence_number, reason FROM dead_letters",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["source_kind"], "kinesis");
    assert_eq!(r["source"], "p");
    assert_eq!(r["shard"], "shardId-000000000000");
    let seq = r["sequence_number"].as_str().unwrap();
    assert!(
        seq.len() > 20 && seq.chars().all(|c| c.is_ascii_digit()),
        "{seq}"
    );
    assert_eq!(
        events(&lake),
        2,
        "the records beside the poison one are kept"
    );
}

/// Peak resident memory of a running process, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A gzip record of a few kilobytes that inflates to ten million bad array
/// elements, between two good records: the worker stays within bounded
/// memory, dead-letters the bomb as one summarised row and keeps the good
/// records after it (before, such a record took the worker to 16 GB and a
/// panic, before any checkpoint).
#[test]
fn a_record_bomb_is_one_dead_letter_and_the_records_after_it_land() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start(&dir.path().join("kinesalite"), false);
    k.create_stream("bomb", 1);
    let n = 10_000_000;
    let mut text = Vec::with_capacity(2 * n + 2);
    text.push(b'[');
    for i in 0..n {
        if i > 0 {
            text.push(b',');
        }
        text.push(b'1');
    }
    text.push(b']');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&text).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let line = |r: &str, q: &str| crate::common::dns_line("orders", r, q);
    k.put_raw("bomb", "orders", line("r-1", "example.com").as_bytes());
    k.put_raw("bomb", "orders", &bomb);
    k.put_raw("bomb", "orders", line("r-2", "example.org").as_bytes());
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "bomb", "w1", &[], &[]);
    wait_until("both good records", Duration::from_secs(120), || {
        events(&lake) >= 2
    });
    wait_until("the dead letter", Duration::from_secs(30), || {
        lake.join("dead_letters/_delta_log").is_dir()
            && count(&lake, "SELECT count(*) FROM dead_letters") >= 1
    });
    let peak = peak_rss(w.child.id());
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert!(
        peak > 0 && peak < 1024 * 1024 * 1024,
        "the worker's peak memory was {} MB",
        peak / (1024 * 1024)
    );
    let rows = crate::common::query(&lake, "SELECT reason, raw_size FROM dead_letters");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("record has {n} bad parts")),
        "{reason}"
    );
    assert_eq!(rows[0]["raw_size"].as_i64(), Some(bomb.len() as i64));
    assert_eq!(events(&lake), 2, "the records beside the bomb are kept");
}

/// CloudTrail through the stream: a trail's CloudWatch Logs subscription
/// (gzip payloads from a log group outside `/aws/lambda/`) and EventBridge
/// "AWS API Call via CloudTrail" events in the same stream as telemetry;
/// the same `eventID` from both is one row of `api_calls`.
#[test]
fn cloudtrail_from_a_trails_log_group_and_eventbridge_lands_once_per_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start(&dir.path().join("kinesalite"), false);
    k.create_stream("ct", 1);
    let rec = |id: &str, ip: &str| {
        serde_json::json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/orders-role/orders-api", "accountId": "123456789012"},
            "eventTime": "2026-11-23T10:00:00Z", "eventSource": "dynamodb.amazonaws.com", "eventName": "PutItem",
            "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": "Boto3/1.34.34 exec-env/AWS_Lambda_python3.12",
            "requestParameters": {"tableName": "orders"}, "eventID": id, "recipientAccountId": "123456789012"
        })
    };
    let cw = serde_json::json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012",
        "logGroup": "aws-cloudtrail-logs-123456789012-abcd", "logStream": "123456789012_CloudTrail_us-east-1",
        "subscriptionFilters": ["fnwatch"],
        "logEvents": [
            {"id": "1", "timestamp": 1_795_428_000_000i64, "message": rec("ev-1", "3.91.1.2").to_string()},
            {"id": "2", "timestamp": 1_795_428_000_000i64, "message": rec("ev-2", "3.91.1.3").to_string()},
            // A user's console sign-in: another identity, skipped and counted.
            {"id": "3", "timestamp": 1_795_428_000_000i64, "message": serde_json::json!({
                "eventVersion": "1.08",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice", "accountId": "123456789012", "userName": "alice"},
                "eventTime": "2026-11-23T10:00:00Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
                "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.5", "eventID": "ev-3",
                "eventType": "AwsConsoleSignIn", "recipientAccountId": "123456789012"
            }).to_string()}
        ]
    });
    let eb = serde_json::json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.dynamodb", "account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": rec("ev-1", "3.91.1.2")
    });
    k.put_raw(
        "ct",
        "trail",
        &crate::common::gzip(cw.to_string().as_bytes()),
    );
    k.put_raw("ct", "trail", eb.to_string().as_bytes());
    k.put_raw(
        "ct",
        "orders",
        crate::common::dns_line("orders-api", "r-1", "example.com").as_bytes(),
    );
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "ct", "w1", &[], &[]);
    wait_until("every record", Duration::from_secs(60), || {
        events(&lake) >= 4
    });
    wait_until(
        "the skipped record counted",
        Duration::from_secs(30),
        || w.metric_sum("fnwatch_kinesis_skipped_cloudtrail_total") >= 1.0,
    );
    assert_eq!(
        w.metric_sum("fnwatch_kinesis_skipped_cloudtrail_total"),
        1.0
    );
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_eq!(
        count(&lake, "SELECT count(*) FROM events WHERE type = 'api_call'"),
        3
    );
    let rows = crate::common::query(
        &lake,
        "SELECT event_id, function, resource, source FROM api_calls ORDER BY event_id",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["event_id"], "ev-1");
    assert_eq!(rows[0]["function"], "orders-api");
    assert_eq!(
        rows[0]["resource"],
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    );
    assert_eq!(rows[1]["source"], "cloudtrail");
    assert!(
        !lake.join("dead_letters/_delta_log").is_dir()
            || count(&lake, "SELECT count(*) FROM dead_letters") == 0
    );
}

/// Versions of the events table's commits that wrote each shard's
/// position, from the Delta log: (first version with a position, version
/// that marked it finished).
fn shard_commit_versions(
    lake: &Path,
    stream: &str,
) -> std::collections::BTreeMap<String, (u64, Option<u64>)> {
    let mut out = std::collections::BTreeMap::new();
    let log = lake.join("events/_delta_log");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let prefix = format!("fnwatch-kinesis:{stream}:");
    for f in files {
        let version: u64 = f.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(txn) = v.get("txn") else { continue };
            let app = txn["appId"].as_str().unwrap();
            let Some(shard) = app.strip_prefix(&prefix) else {
                continue;
            };
            if shard.contains('#') {
                continue;
            }
            let e = out.entry(shard.to_string()).or_insert((version, None));
            if txn["version"].as_i64() == Some(-1) {
                e.1 = Some(version);
            }
        }
    }
    out
}

/// One worker reads the first half of the telemetry from a 2-shard stream;
/// `reshard` runs; the second half is put; the worker stops cleanly and the
/// lake holds exactly the reference's rows. Returns the scenario, the lake
/// and what `reshard` returned.
fn reshard_while_running<T>(
    seed: u64,
    stream: &str,
    reshard: impl FnOnce(&Kinesalite) -> T,
) -> (Scenario, PathBuf, T) {
    let s = Scenario::new(seed, 300, stream, 2, false);
    let [first, second] = halves(s.dir.path(), &s.files);
    s.k.put_file(stream, &first);
    let lake = s.dir.path().join("lake");
    let mut w = WorkerProc::start(&s.k, &lake, stream, "w1", &[], &[]);
    wait_until("the first half", Duration::from_secs(120), || {
        events(&lake) > 0
    });
    let out = reshard(&s.k);
    s.k.put_file(stream, &second);
    wait_until("every event", Duration::from_secs(120), || {
        events(&lake) >= s.want
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &s.reference, &w.log());
    (s, lake, out)
}

#[test]
fn a_split_while_running_loses_nothing_and_reads_children_after_the_parent() {
    let (s, lake, _) = reshard_while_running(31, "r", |k| k.split("r", "shardId-000000000000"));
    let k = &s.k;
    let shards = k.shards("r");
    let versions = shard_commit_versions(&lake, "r");
    let parent = "shardId-000000000000";
    let end = versions
        .get(parent)
        .and_then(|v| v.1)
        .unwrap_or_else(|| panic!("the parent was never marked finished: {versions:?}"));
    let mut children = 0;
    for s in shards.as_array().unwrap() {
        if s["parent"].as_str() == Some(parent) {
            children += 1;
            let id = s["id"].as_str().unwrap();
            if let Some((first, _)) = versions.get(id) {
                assert!(
                    *first > end,
                    "child {id} committed at version {first}, before its parent finished at {end}"
                );
            }
        }
    }
    assert_eq!(children, 2, "{shards}");
    assert!(
        versions
            .keys()
            .any(|s| s != parent && s != "shardId-000000000001"),
        "the children were read: {versions:?}"
    );
}

#[test]
fn worker_rides_out_an_emulator_outage_throttling_and_expired_iterators() {
    let Scenario {
        dir,
        k,
        files,
        reference,
        want,
    } = Scenario::new(41, 250, "o", 2, true);
    let [first, second] = halves(dir.path(), &files);
    k.put_file("o", &first);
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(
        &k,
        &lake,
        "o",
        "w1",
        &[],
        &[("FNWATCH_KINESIS_FAULTS", "throttle_every=3,expire_every=7")],
    );
    wait_until("the first records", Duration::from_secs(120), || {
        events(&lake) > 0
    });
    k.stop();
    std::thread::sleep(Duration::from_secs(4));
    k.restart();
    k.put_file("o", &second);
    wait_until("every event", Duration::from_secs(180), || {
        events(&lake) >= want
    });
    let throttles = w.metric_sum("fnwatch_kinesis_throttles_total");
    assert!(throttles > 0.0, "throttles are counted");
    let list_failures = w.metric_sum("fnwatch_kinesis_shard_list_failures_total");
    assert!(
        list_failures > 0.0,
        "failed shard-list refreshes are counted"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    let log = w.log();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("retrying"), "the outage is logged:\n{log}");
    // A shard-list refresh (every second here) fell in the outage and the
    // worker went on with the list it had.
    assert!(
        log.contains("cannot re-read the shard list; keeping the last one"),
        "a failed shard-list refresh is ridden out:\n{log}"
    );
    assert!(
        log.contains("shard iterator expired; getting a new one"),
        "expired iterators are renewed:\n{log}"
    );
    assert_same_rows(&lake, &reference, &log);
}

#[test]
fn a_merge_while_running_reads_the_child_after_both_parents() {
    let (_s, lake, child) = reshard_while_running(33, "g", |k| {
        k.merge("g", "shardId-000000000000", "shardId-000000000001")
    });
    let versions = shard_commit_versions(&lake, "g");
    let child_id = child["id"].as_str().unwrap();
    let (child_first, _) = versions
        .get(child_id)
        .unwrap_or_else(|| panic!("the merged shard {child_id} was never read: {versions:?}"));
    for parent in ["shardId-000000000000", "shardId-000000000001"] {
        let end = versions
            .get(parent)
            .and_then(|v| v.1)
            .unwrap_or_else(|| panic!("parent {parent} never marked finished: {versions:?}"));
        assert!(
            *child_first > end,
            "child {child_id} committed at version {child_first}, before parent {parent} finished at {end}"
        );
    }
}

#[test]
fn from_at_timestamp_starts_a_new_lake_at_that_time() {
    let Scenario {
        dir,
        k,
        files,
        reference: _,
        want: _,
    } = Scenario::new(35, 200, "ts", 2, false);
    let [first, second] = halves(dir.path(), &files);
    k.put_file("ts", &first);
    // Arrival times are kept to the millisecond; a clear gap either side.
    std::thread::sleep(Duration::from_millis(1500));
    let cut = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(1500));
    k.put_file("ts", &second);
    let only_second = dir.path().join("second-reference");
    fnwatch(&[
        "ingest",
        "--lake",
        only_second.to_str().unwrap(),
        "--no-progress",
        second.to_str().unwrap(),
    ])
    .ok();
    let want = events(&only_second);
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(
        &k,
        &lake,
        "ts",
        "w1",
        &["--from", "at-timestamp", "--timestamp", &cut],
        &[],
    );
    wait_until(
        "the records after the cut",
        Duration::from_secs(120),
        || events(&lake) >= want,
    );
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &only_second, &w.log());
}

/// Events in a lake at any location (0 while it does not exist yet).
fn events_at(lake: &str, env: &[(&str, &str)]) -> i64 {
    let r = fnwatch_env(
        &[
            "sql",
            "--lake",
            lake,
            "--format",
            "csv",
            "SELECT count(*) FROM events",
        ],
        env,
    );
    r.stdout
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

/// Two workers start on a lake that does not exist yet (one creates it),
/// split the shards without overlap; one is killed and the other takes its
/// shards over after the lease time-out; the lake ends up with exactly the
/// reference's rows.
fn two_workers_take_over(s: &Scenario, lake: &str, env: &[(&str, &str)]) {
    let [first, second] = halves(s.dir.path(), &s.files);
    s.k.put_file("t", &first);
    let log = |n: &str| s.dir.path().join(format!("{n}.log"));
    let mut a = WorkerProc::start_at(&s.k, lake, log("a"), "t", "a", &[], env);
    let mut b = WorkerProc::start_at(&s.k, lake, log("b"), "t", "b", &[], env);
    // A worker gives up its surplus before the other takes it, so for a
    // moment a shard can be held by neither: wait for the settled split.
    // An overlap would hold the sum above 4 and time this wait out.
    wait_until(
        "both workers hold shards, the four split between them",
        Duration::from_secs(60),
        || {
            let owned_a = a.metric_sum("fnwatch_kinesis_owned_shards");
            let owned_b = b.metric_sum("fnwatch_kinesis_owned_shards");
            eprintln!("owned shards: a {owned_a} b {owned_b}");
            owned_a >= 1.0 && owned_b >= 1.0 && owned_a + owned_b == 4.0
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    b.kill9();
    s.k.put_file("t", &second);
    wait_until(
        "a takes over and reads everything",
        Duration::from_secs(120),
        || events_at(lake, env) >= s.want,
    );
    assert_eq!(a.metric_sum("fnwatch_kinesis_owned_shards"), 4.0);
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = a.term();
    let logs = format!("{}\n--- b ---\n{}", a.log(), b.log());
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("took over an expired lease"), "{logs}");
    let got = dump_at(lake, env);
    let want = dump(&s.reference);
    assert!(
        got == want,
        "the lake differs from the reference: {} rows vs {}\n{logs}",
        got.lines().count(),
        want.lines().count()
    );
}

#[test]
fn two_workers_share_the_shards_and_one_takes_over_when_the_other_dies() {
    let s = Scenario::new(51, 300, "t", 4, false);
    let lake = s.dir.path().join("lake");
    two_workers_take_over(&s, lake.to_str().unwrap(), &[]);
}

#[test]
fn simulate_puts_every_record_shape_and_the_worker_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start(&dir.path().join("kinesalite"), false);
    k.create_stream("sim", 2);
    let sim = [
        "--seed",
        "61",
        "--start",
        "2026-11-20",
        "--days",
        "1",
        "--invocations-per-day",
        "300",
    ];
    // The same simulation as files, through the file ingest: the reference.
    let out = dir.path().join("files");
    let mut args = vec!["simulate", "--out", out.to_str().unwrap()];
    args.extend(sim);
    fnwatch(&args).ok();
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.gz"))
        .collect();
    let (reference, want) = reference(dir.path(), &files);

    // On the stream, in every record shape, with failed PutRecords entries.
    let endpoint = k.endpoint();
    let mut cmd = Command::new(bin());
    cmd.args([
        "simulate",
        "--kinesis",
        "sim",
        "--endpoint-url",
        &endpoint,
        "--region",
        "us-east-1",
        "--rate",
        "0",
    ])
    .args(sim)
    .env("FNWATCH_KINESIS_FAULTS", "fail_put_every=9");
    for (key, v) in aws_env() {
        cmd.env(key, v);
    }
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("failed records re-put"), "{stdout}");
    for shape in ["kpl", "cloudwatch"] {
        assert!(
            stdout.to_lowercase().contains(shape),
            "shape {shape} missing: {stdout}"
        );
    }

    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "sim", "w1", &[], &[]);
    wait_until("every simulated event", Duration::from_secs(120), || {
        events(&lake) >= want
    });
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &reference, &w.log());
    assert!(
        !lake.join("dead_letters/_delta_log").is_dir()
            || count(&lake, "SELECT count(*) FROM dead_letters") == 0,
        "no dead letters"
    );
}

#[test]
fn from_latest_skips_what_was_on_the_stream_before_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start(&dir.path().join("kinesalite"), false);
    k.create_stream("l", 1);
    let old = dir.path().join("old.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| crate::common::dns_line("orders", &format!("old-{i}"), "example.com"))
        .collect();
    std::fs::write(&old, lines.join("\n") + "\n").unwrap();
    k.put_file("l", &old);
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(&k, &lake, "l", "w1", &["--from", "latest"], &[]);
    // The first GetRecords answered: the LATEST iterator is taken.
    wait_until("the first GetRecords", Duration::from_secs(60), || {
        w.http("/metrics")
            .contains("fnwatch_kinesis_millis_behind_latest{")
    });
    let new = dir.path().join("new.jsonl");
    let lines: Vec<String> = (0..2)
        .map(|i| crate::common::dns_line("orders", &format!("new-{i}"), "example.com"))
        .collect();
    std::fs::write(&new, lines.join("\n") + "\n").unwrap();
    k.put_file("l", &new);
    wait_until("the new records", Duration::from_secs(60), || {
        events(&lake) >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    let rows = crate::common::query(&lake, "SELECT request_id FROM events ORDER BY 1");
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new-0", "new-1"]);
}

#[test]
fn two_workers_on_an_s3_lake_share_the_shards_and_take_over_exactly_once() {
    let s = Scenario::new(53, 300, "t", 4, false);
    let s3 = MotoS3::start(&s.dir.path().join("moto"), &["stream-lake"]);
    // The tables and the marker are created once, by conditional writes.
    two_workers_take_over(&s, "s3://stream-lake/kinesis/lake", &s3.env());
    let leases = s3.keys("stream-lake", "kinesis/lake/_kinesis/t/leases/");
    assert!(leases.len() >= 4, "leases live in the bucket: {leases:?}");
}

#[test]
fn list_shards_is_paged_and_every_shard_read_on_kinesis_mock() {
    // kinesis-mock pages ListShards with MaxResults/NextToken as AWS does
    // (kinesalite returns every shard at once): five shards, two a page.
    let dir = tempfile::tempdir().unwrap();
    let k = Kinesalite::start_kinesis_mock(&dir.path().join("kinesis-mock"));
    let files = telemetry(dir.path(), 57, 150);
    let (reference, want) = reference(dir.path(), &files);
    k.create_stream("p5", 5);
    put_files(&k, "p5", &files);
    let lake = dir.path().join("lake");
    let mut w = WorkerProc::start(
        &k,
        &lake,
        "p5",
        "w1",
        &[],
        &[("FNWATCH_TUNE_SHARDS_PER_PAGE", "2")],
    );
    wait_until("every event", Duration::from_secs(180), || {
        events(&lake) >= want
    });
    assert_eq!(w.metric_sum("fnwatch_kinesis_owned_shards"), 5.0);
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = w.term();
    assert_eq!(code, 0, "{}", w.log());
    assert_same_rows(&lake, &reference, &w.log());
}
