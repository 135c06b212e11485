//! The lake end to end: ingest, SQL in every format, exactly once per file,
//! resume after a crash, and an independent Delta reader agreeing with us.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A file with a known mix of events: per request, one invocation, two DNS
/// lookups, one connection and one API call; every 10th request also starts a
/// process and reads a file; one function_config per function.
fn mixed_file(dir: &Path, name: &str, requests: usize) -> (std::path::PathBuf, [usize; 7]) {
    let mut text = String::new();
    let mut counts = [0usize; 7]; // invocation dns process network file api_call function_config
    for f in ["orders-api", "billing-worker", "thumbnailer"] {
        text.push_str(&format!(
            r#"{{"type":"function_config","time":"2026-11-23T00:00:00Z","function":"{f}","runtime":"python3.12","handler":"app.handler","memory_mb":256,"timeout_ms":6000,"role_arn":"arn:aws:iam::123456789012:role/{f}","permissions":["dynamodb:*","s3:GetObject"],"triggers":["apigateway"],"layers":[],"code_sha256":"abc"}}"#
        ));
        text.push('\n');
        counts[6] += 1;
    }
    for i in 0..requests {
        let f = ["orders-api", "billing-worker", "thumbnailer"][i % 3];
        let r = format!("req-{i:06}");
        let minute = i % 60;
        text.push_str(
            &invocation_line(f, &r).replace("10:00:00.412Z", &format!("10:{minute:02}:00.412Z")),
        );
        text.push('\n');
        text.push_str(&dns_line(f, &r, "dynamodb.us-east-1.amazonaws.com"));
        text.push('\n');
        text.push_str(&dns_line(
            f,
            &r,
            &format!("bucket-{}.s3.amazonaws.com", i % 7),
        ));
        text.push('\n');
        text.push_str(&format!(
            r#"{{"type":"network","time":"2026-11-23T10:00:00.5Z","function":"{f}","request_id":"{r}","direction":"outbound","protocol":"tcp","remote_ip":"3.218.182.10","remote_port":443,"remote_host":"dynamodb.us-east-1.amazonaws.com","bytes_out":1200,"bytes_in":5300}}"#
        ));
        text.push('\n');
        text.push_str(&format!(
            r#"{{"type":"api_call","time":"2026-11-23T10:00:00.6Z","function":"{f}","request_id":"{r}","service":"dynamodb","action":"PutItem","resource":"arn:aws:dynamodb:us-east-1:123456789012:table/orders"}}"#
        ));
        text.push('\n');
        counts[0] += 1;
        counts[1] += 2;
        counts[3] += 1;
        counts[5] += 1;
        if i % 10 == 0 {
            text.push_str(&format!(
                r#"{{"type":"process","time":"2026-11-23T10:00:00.7Z","function":"{f}","request_id":"{r}","exe":"/usr/bin/convert","args":["convert","in.png","out.jpg"],"parent_exe":"/var/lang/bin/python3"}}"#
            ));
            text.push('\n');
            text.push_str(&format!(
                r#"{{"type":"file","time":"2026-11-23T10:00:00.8Z","function":"{f}","request_id":"{r}","path":"/tmp/img-{i}.png","op":"write","inode":{i}}}"#
            ));
            text.push('\n');
            counts[2] += 1;
            counts[4] += 1;
        }
    }
    let p = write(dir, name, &gzip(text.as_bytes()));
    (p, counts)
}

#[test]
fn ingest_then_query_every_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, c) = mixed_file(dir.path(), "day.jsonl.gz", 600);
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    let total: usize = c.iter().sum();
    assert!(
        run.stdout.contains(&format!("{} events", thousands(total))),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("0 dead letters"), "{}", run.stdout);
    for (view, n) in [
        ("invocations", c[0]),
        ("dns", c[1]),
        ("processes", c[2]),
        ("network", c[3]),
        ("files", c[4]),
        ("api_calls", c[5]),
        ("function_configs", c[6]),
    ] {
        assert_eq!(
            count(&lake, &format!("SELECT count(*) FROM {view}")) as usize,
            n,
            "{view}"
        );
    }
    // Derived DNS columns and unknown fields.
    let rows = query(
        &lake,
        "SELECT registrable_domain, label_count, count(*) AS n FROM dns GROUP BY 1, 2 ORDER BY 1",
    );
    // The public suffix list's private section makes each bucket under
    // s3.amazonaws.com (and each regional service endpoint) its own domain.
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert_eq!(rows[0]["registrable_domain"], "bucket-0.s3.amazonaws.com");
    assert_eq!(rows[0]["label_count"], 4);
    let rows = query(&lake, "SELECT extra FROM files LIMIT 1");
    assert!(
        rows[0]["extra"]
            .as_str()
            .unwrap_or("")
            .starts_with("{\"inode\":"),
        "{rows:?}"
    );
    let rows = query(&lake, "SELECT cmdline, args FROM processes LIMIT 1");
    assert_eq!(rows[0]["cmdline"], "convert in.png out.jpg");
    assert_eq!(
        rows[0]["args"],
        serde_json::json!(["convert", "in.png", "out.jpg"])
    );
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[test]
fn output_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = mixed_file(dir.path(), "day.jsonl.gz", 30);
    let lake = dir.path().join("lake");
    ingest(&lake, &[&file]);
    let l = lake.to_str().expect("utf-8");
    let q = "SELECT function, count(*) AS n FROM invocations GROUP BY function ORDER BY function";
    let csv = fnwatch(&["sql", "--lake", l, "--format", "csv", q]).ok();
    assert_eq!(
        csv.stdout,
        "function,n\nbilling-worker,10\norders-api,10\nthumbnailer,10\n"
    );
    let table = fnwatch(&["sql", "--lake", l, q]).ok();
    assert!(
        table.stdout.contains("| function       | n  |"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("| billing-worker | 10 |"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("(3 rows)"), "{}", table.stdout);
    let jsonl = fnwatch(&["sql", "--lake", l, "--format", "jsonl", q]).ok();
    assert_eq!(jsonl.stdout.lines().count(), 3);
    let out = dir.path().join("r.parquet");
    fnwatch(&[
        "sql",
        "--lake",
        l,
        "--format",
        "parquet",
        "--output",
        out.to_str().unwrap(),
        q,
    ])
    .ok();
    let bytes = std::fs::read(&out).expect("parquet written");
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    // Lists and timestamps in CSV.
    let csv = fnwatch(&[
        "sql",
        "--lake",
        l,
        "--format",
        "csv",
        "SELECT time, answers FROM dns ORDER BY time LIMIT 1",
    ])
    .ok();
    assert_eq!(
        csv.stdout,
        "time,answers\n2026-11-23T10:00:00.371000Z,\"[\"\"3.218.182.10\"\"]\"\n"
    );
    // Empty results still have a header.
    let csv = fnwatch(&[
        "sql",
        "--lake",
        l,
        "--format",
        "csv",
        "SELECT function FROM dns WHERE false",
    ])
    .ok();
    assert_eq!(csv.stdout, "function\n");
}

#[test]
fn sql_errors_are_shown_as_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = mixed_file(dir.path(), "day.jsonl.gz", 3);
    let lake = dir.path().join("lake");
    ingest(&lake, &[&file]);
    let l = lake.to_str().expect("utf-8");
    let r = fnwatch(&["sql", "--lake", l, "SELECT function FROM dns WHERE"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("fnwatch: "), "{}", r.stderr);
    assert!(!r.stderr.contains("ParserError("), "{}", r.stderr);
    let r = fnwatch(&["sql", "--lake", l, "SELECT nope FROM dns"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    let r = fnwatch(&["sql", "--lake", l, "SELECT * FROM no_such_table"]);
    assert!(
        r.stderr.contains("no_such_table") && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );
    let r = fnwatch(&["sql", "--lake", l, "DROP TABLE events"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("only queries are allowed"),
        "{}",
        r.stderr
    );
    let r = fnwatch(&[
        "sql",
        "--lake",
        l,
        "SELECT 1 FROM dns WHERE function = = 'x'",
    ]);
    assert!(
        r.stderr.contains(
            "  | SELECT 1 FROM dns WHERE function = = 'x'\n  |                                    ^"
        ),
        "caret context: {}",
        r.stderr
    );
    let r = fnwatch(&["sql", "--lake", l, "SELECT nope FROM dns"]);
    assert!(
        r.stderr.starts_with("fnwatch: No field named nope"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_same_file_twice_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, c) = mixed_file(dir.path(), "day.jsonl.gz", 100);
    let total: usize = c.iter().sum();
    let lake = dir.path().join("lake");
    ingest(&lake, &[&file]);
    // Same content under another name: still the same file.
    let copy = dir.path().join("copy.jsonl.gz");
    std::fs::copy(&file, &copy).expect("copy");
    let again = ingest(&lake, &[&file, &copy]);
    assert!(
        again.stdout.contains("already in the lake"),
        "{}",
        again.stdout
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM events") as usize, total);
    let forced = fnwatch(&[
        "ingest",
        "--force",
        "--lake",
        lake.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
    .ok();
    assert!(
        forced.stdout.contains("ingested 1 file"),
        "{}",
        forced.stdout
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM events") as usize,
        2 * total
    );
}

/// Three files that share size and ends, and so the probe a file is first
/// known by: `b` differs from `a` in one byte in the middle, `a2` is `a`.
fn look_alike_files(dir: &Path) -> [std::path::PathBuf; 3] {
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&dns_line("f", &format!("r{i:05}"), "a.example.com"));
        text.push('\n');
    }
    assert!(
        text.len() > 4 * 64 * 1024,
        "the middle is outside the probe"
    );
    let mid = text.len() / 2;
    let at = mid + text[mid..].find("a.example.com").expect("a query");
    let mut changed = text.clone();
    changed.replace_range(at..at + 1, "b");
    [
        write(dir, "a.jsonl", text.as_bytes()),
        write(dir, "b.jsonl", changed.as_bytes()),
        write(dir, "a2.jsonl", text.as_bytes()),
    ]
}

#[test]
fn files_alike_at_both_ends_are_still_told_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, b, a2] = look_alike_files(dir.path());
    let lake = dir.path().join("lake");
    ingest(&lake, &[&a]);
    let r = ingest(&lake, &[&b]);
    assert!(r.stdout.contains("ingested 1 file"), "{}", r.stdout);
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 6000);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM dns WHERE query = 'b.example.com'"
        ),
        1
    );
    let again = ingest(&lake, &[&b, &a2]);
    assert!(
        again.stdout.contains("already in the lake") && !again.stdout.contains("ingested 1"),
        "{}",
        again.stdout
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 6000);

    // All three at once into a new lake: two files, the copy is a duplicate.
    let fresh = dir.path().join("fresh");
    let r = ingest(&fresh, &[&a, &b, &a2]);
    assert!(r.stdout.contains("ingested 2 files"), "{}", r.stdout);
    assert_eq!(count(&fresh, "SELECT count(*) FROM events"), 6000);
}

#[test]
fn a_lake_of_layout_version_1_is_still_written_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, b, _] = look_alike_files(dir.path());
    let lake = dir.path().join("lake");
    ingest(&lake, &[&a]);
    let marker = lake.join("_fnwatch.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).expect("marker")).expect("json");
    assert_eq!(m["version"], 2, "{m}");
    // Version 1 lakes may hold files ingested without a probe: every file is
    // then hashed before it is read.
    m["version"] = 1.into();
    std::fs::write(&marker, m.to_string()).expect("write");
    let r = ingest(&lake, &[&b, &a]);
    assert!(
        r.stdout.contains("ingested 1 file") && r.stdout.contains("already in the lake"),
        "{}",
        r.stdout
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 6000);
}

#[test]
fn stdin_is_an_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let text = format!(
        "{}\n{}\n",
        dns_line("f", "r1", "a.example.com"),
        invocation_line("f", "r1")
    );
    fnwatch_stdin(
        &["ingest", "--lake", lake.to_str().unwrap(), "-"],
        text.as_bytes(),
    )
    .ok();
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 2);
    // The same bytes again: already there.
    let r = fnwatch_stdin(
        &["ingest", "--lake", lake.to_str().unwrap(), "-"],
        text.as_bytes(),
    )
    .ok();
    assert!(r.stdout.contains("already in the lake"), "{}", r.stdout);
    // Standard input is read once: a second `-` is an input that cannot be read.
    let other = format!("{}\n", dns_line("f", "r2", "b.example.com"));
    let r = fnwatch_stdin(
        &["ingest", "--lake", lake.to_str().unwrap(), "-", "-"],
        other.as_bytes(),
    )
    .ok();
    assert!(r.stdout.contains("given more than once"), "{}", r.stdout);
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 3);
}

#[test]
fn a_crash_mid_ingest_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, c) = mixed_file(dir.path(), "day.jsonl.gz", 3000);
    let total: usize = c.iter().sum();
    let lake = dir.path().join("lake");
    let l = lake.to_str().expect("utf-8");
    // Commit every few thousand rows and die right after the second commit.
    let crashed = Command::new(bin())
        .args([
            "ingest",
            "--lake",
            l,
            "--threads",
            "1",
            file.to_str().unwrap(),
        ])
        .env("FNWATCH_TUNE_RUN_ROWS", "2000")
        .env("FNWATCH_TUNE_CHUNK_BYTES", "65536")
        .env("FNWATCH_TUNE_COMMIT_BYTES", "1")
        .env("FNWATCH_FAIL_AFTER_COMMITS", "2")
        .output()
        .expect("runs");
    assert!(
        !crashed.status.success(),
        "the failpoint aborts the process"
    );
    let partial = count(&lake, "SELECT count(*) FROM events") as usize;
    assert!(
        partial > 0 && partial < total,
        "partial: {partial} of {total}"
    );
    let resumed = ingest(&lake, &[&file]);
    assert!(
        resumed.stdout.contains("resumed at line"),
        "{}",
        resumed.stdout
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM events") as usize, total);
    // Every row is distinct by these columns: a duplicate would shrink the count.
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM (SELECT DISTINCT type, function, request_id, query, exe, path, remote_ip, action FROM events)"
        ) as usize,
        total
    );
    let again = ingest(&lake, &[&file]);
    assert!(
        again.stdout.contains("already in the lake"),
        "{}",
        again.stdout
    );
}

#[test]
fn an_independent_delta_reader_agrees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, c) = mixed_file(dir.path(), "day.jsonl.gz", 300);
    let lake = dir.path().join("lake");
    let bad = write(dir.path(), "bad.jsonl", b"{\"type\":\"nope\"}\nnot json\n");
    ingest(&lake, &[&file, &bad]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/read_lake.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&lake)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "independent reader failed (install it with: bash infra/local/install-python-tools.sh)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["events_total"].as_i64(),
        Some(count(&lake, "SELECT count(*) FROM events"))
    );
    assert_eq!(
        v["events_total"].as_u64(),
        Some(c.iter().sum::<usize>() as u64)
    );
    assert_eq!(
        v["events"]["dns"].as_i64(),
        Some(count(&lake, "SELECT count(*) FROM dns"))
    );
    assert_eq!(v["dead_letters"].as_i64(), Some(2));
}

#[test]
fn compact_rewrites_small_files_into_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    for i in 0..3 {
        let (file, _) = mixed_file(dir.path(), &format!("part{i}.jsonl.gz"), 20 + i);
        ingest(&lake, &[&file]);
    }
    let before = count(&lake, "SELECT count(*) FROM events");
    let l = lake.to_str().expect("utf-8");
    let r = fnwatch(&["compact", "--lake", l]).ok();
    // One day's partition, three small files.
    assert!(
        r.stdout.contains("events: 3 files rewritten into 1"),
        "{}",
        r.stdout
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), before);
    let again = fnwatch(&["compact", "--lake", l]).ok();
    assert!(
        again.stdout.contains("events: 0 files rewritten"),
        "{}",
        again.stdout
    );
}

#[test]
fn sql_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, c) = mixed_file(dir.path(), "day.jsonl.gz", 30);
    let lake = dir.path().join("lake");
    ingest(&lake, &[&file]);
    let q = write(
        dir.path(),
        "q.sql",
        b"-- connections per port\nSELECT remote_port, count(*) AS n\nFROM network\nGROUP BY remote_port;\n",
    );
    let r = fnwatch(&[
        "sql",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "--file",
        q.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(r.stdout, format!("remote_port,n\n443,{}\n", c[3]));
}

#[test]
fn a_crash_between_the_dead_letter_and_event_commits_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&dns_line("f", &format!("r{i}"), "a.example.com"));
        text.push('\n');
        if i % 10 == 0 {
            text.push_str("{\"type\":\"dns\"}\n");
        }
    }
    let file = write(dir.path(), "in.jsonl", text.as_bytes());
    let lake = dir.path().join("lake");
    let l = lake.to_str().expect("utf-8");
    let crashed = Command::new(bin())
        .args(["ingest", "--lake", l, file.to_str().unwrap()])
        .env("FNWATCH_FAIL_BETWEEN_COMMITS", "1")
        .output()
        .expect("runs");
    assert!(
        !crashed.status.success(),
        "the failpoint aborts the process"
    );
    // The dead letters are in, the events are not.
    assert_eq!(count(&lake, "SELECT count(*) FROM dead_letters"), 5);
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 0);
    let again = ingest(&lake, &[&file]);
    assert!(again.stdout.contains("50 events"), "{}", again.stdout);
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 50);
    assert_eq!(
        count(&lake, "SELECT count(*) FROM dead_letters"),
        5,
        "no duplicate dead letters"
    );
}
