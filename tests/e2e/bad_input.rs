//! Bad input: every kind of bad record becomes a dead letter with a reason
//! naming its line and field, the rest of the file is ingested, and the run
//! exits 0 unless nothing at all could be read.

use std::path::Path;

use crate::common::*;

/// Writes `good, bad, good` (the bad line is line 2), ingests it and checks
/// the two good events landed and one dead letter names line 2.
#[track_caller]
fn one_bad_line(bad: &[u8], reason_has: &[&str], field: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = Vec::new();
    text.extend_from_slice(
        dns_line("orders-api", "r1", "dynamodb.us-east-1.amazonaws.com").as_bytes(),
    );
    text.push(b'\n');
    text.extend_from_slice(bad);
    text.push(b'\n');
    text.extend_from_slice(invocation_line("orders-api", "r1").as_bytes());
    text.push(b'\n');
    let file = write(dir.path(), "in.jsonl", &text);
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    assert!(run.stdout.contains("2 events"), "summary: {}", run.stdout);
    assert!(
        run.stdout.contains("1 dead letters"),
        "summary: {}",
        run.stdout
    );
    check_dead_letter(&lake, 2, reason_has, field);
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 2);
    assert_eq!(count(&lake, "SELECT count(*) FROM dns"), 1);
    assert_eq!(count(&lake, "SELECT count(*) FROM invocations"), 1);
}

#[track_caller]
fn check_dead_letter(lake: &Path, line: i64, reason_has: &[&str], field: Option<&str>) {
    let rows = query(
        lake,
        "SELECT reason, field, line, source, position FROM dead_letters",
    );
    assert_eq!(rows.len(), 1, "dead letters: {rows:?}");
    let r = &rows[0];
    assert_eq!(r["line"].as_i64(), Some(line), "{r:?}");
    let reason = r["reason"].as_str().expect("reason");
    for needle in reason_has {
        assert!(
            reason.contains(needle),
            "reason `{reason}` lacks `{needle}`"
        );
    }
    assert_eq!(r.get("field").and_then(|f| f.as_str()), field, "{r:?}");
    assert!(r["source"].as_str().expect("source").ends_with("in.jsonl"));
    assert!(
        r["position"]
            .as_str()
            .expect("position")
            .ends_with(&format!("in.jsonl:{line}")),
        "{r:?}"
    );
}

#[test]
fn json_syntax_error_names_the_line() {
    one_bad_line(
        br#"{"type":"dns","time": oops}"#,
        &["JSON syntax error", "column"],
        None,
    );
}

#[test]
fn missing_required_field() {
    one_bad_line(
        br#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r"}"#,
        &["missing required field `query`"],
        Some("query"),
    );
}

#[test]
fn wrong_type_names_the_field() {
    one_bad_line(
        br#"{"type":"invocation","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","duration_ms":"fast","status":"success"}"#,
        &["`duration_ms`", "wrong type", "fast"],
        Some("duration_ms"),
    );
}

#[test]
fn unknown_type_lists_valid_values() {
    one_bad_line(
        br#"{"type":"telepathy","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r"}"#,
        &["unknown event type `telepathy`", "valid values"],
        Some("type"),
    );
}

#[test]
fn timestamp_without_offset() {
    one_bad_line(
        br#"{"type":"file","time":"2026-11-23T10:00:00","function":"f","request_id":"r","path":"/tmp/x","op":"read"}"#,
        &["`time`", "no UTC offset"],
        Some("time"),
    );
}

#[test]
fn invalid_utf8() {
    let mut bad = br#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"f"#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(br#"","request_id":"r","query":"x.com"}"#);
    one_bad_line(&bad, &["not valid UTF-8"], None);
    // The raw bytes are kept, base64-encoded.
}

#[test]
fn empty_record() {
    one_bad_line(b"   ", &["empty record"], None);
}

#[test]
fn ten_megabyte_record() {
    let mut bad =
        br#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","query":""#
            .to_vec();
    bad.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    bad.extend_from_slice(br#""}"#);
    one_bad_line(&bad, &["record too large", "limit"], None);
}

#[test]
fn invalid_raw_bytes_are_kept_as_base64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "in.jsonl", b"{\"a\":\"\xff\"}\n");
    let lake = dir.path().join("lake");
    // Nothing decodes: the dead letter is committed, and the run fails loudly.
    let run = fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.contains("no event could be decoded"),
        "{}",
        run.stderr
    );
    let rows = query(
        &lake,
        "SELECT raw, raw_encoding, raw_size FROM dead_letters",
    );
    assert_eq!(rows[0]["raw_encoding"], "base64");
    assert_eq!(rows[0]["raw"], "eyJhIjoi/yJ9");
    assert_eq!(rows[0]["raw_size"], 9);
}

#[test]
fn truncated_gzip_keeps_what_was_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&dns_line(
            "orders-api",
            &format!("r{i}"),
            &format!("h{i}.example.com"),
        ));
        text.push('\n');
    }
    let gz = gzip(text.as_bytes());
    let cut = &gz[..gz.len() * 2 / 3];
    let file = write(dir.path(), "cut.jsonl.gz", cut);
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    assert!(run.stdout.contains("1 dead letters"), "{}", run.stdout);
    let n = count(&lake, "SELECT count(*) FROM dns");
    assert!(n > 100 && n < 2000, "readable part ingested: {n}");
    let rows = query(&lake, "SELECT reason, line FROM dead_letters");
    let reason = rows[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("gzip stream is corrupt or truncated"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("past line {n}")) || rows[0]["line"].as_i64().unwrap_or(0) > n,
        "{reason}"
    );
}

// A KPL aggregate with a bad digest arrives through Kinesis, not in a JSON Lines
// file: its dead letter is tested in the ingest crate (decode::tests).

#[test]
fn cloudwatch_payload_with_unknown_log_group() {
    let payload = br#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/ecs/web","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1795428000000,"message":"hello"}]}"#;
    one_bad_line(payload, &["/ecs/web", "/aws/lambda/"], Some("logGroup"));
}

#[test]
fn nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let run = fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        dir.path().join("missing.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("fnwatch: nothing could be read"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("missing.jsonl: cannot be read"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_folder_that_is_not_a_lake() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "notes.txt", b"hello");
    let run = fnwatch(&["sql", "--lake", dir.path().to_str().unwrap(), "SELECT 1"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is not a fnwatch lake"),
        "{}",
        run.stderr
    );
    let file = write(
        dir.path(),
        "in.jsonl",
        dns_line("f", "r", "a.b.com").as_bytes(),
    );
    let run = fnwatch(&[
        "ingest",
        "--lake",
        dir.path().to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is not a fnwatch lake"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_lake_from_a_newer_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let file = write(
        dir.path(),
        "in.jsonl",
        dns_line("f", "r", "a.b.com").as_bytes(),
    );
    ingest(&lake, &[&file]);
    let marker = lake.join("_fnwatch.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).expect("marker")).expect("json");
    m["version"] = 99.into();
    std::fs::write(&marker, m.to_string()).expect("write");
    let run = fnwatch(&["sql", "--lake", lake.to_str().unwrap(), "SELECT 1"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("newer fnwatch (lake format 99"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_tolerated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "\u{feff}{}\r\n{}\r\n",
        dns_line("f", "r1", "a.example.com"),
        invocation_line("f", "r1")
    );
    let file = write(dir.path(), "windows.jsonl", text.as_bytes());
    let lake = dir.path().join("lake");
    let run = ingest(&lake, &[&file]);
    assert!(run.stdout.contains("2 events"), "{}", run.stdout);
    assert!(run.stdout.contains("0 dead letters"), "{}", run.stdout);
}
