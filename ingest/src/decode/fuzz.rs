//! Property and mutation tests of every decoder (stable toolchain, no
//! coverage-guided fuzzer): generated and mutated records of every shape go
//! through [`decode_record`], which must never panic, must keep the good
//! events beside bad ones, and must keep its dead letters bounded.
//!
//! Each property runs a few hundred cases, from a fixed seed, in every
//! `cargo test`. The long
//! run is the `#[ignore]`d tests named `fuzz_long_*`:
//! `FNWATCH_FUZZ_CASES=10000000 cargo test -p fnwatch-ingest --release -- --ignored fuzz_long`
//! (default 10,000,000 cases each; the native decoder's fast path against
//! serde lives in `native/fast.rs` under the same names).

use std::io::Write;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::*;
use crate::event::{EventType, VecSink};

/// Cases per property: `FNWATCH_FUZZ_CASES`, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("FNWATCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Runs `test` on `cases` values of `strategy`, without a persistence file;
/// a failure panics with the (shrunk) input.
pub(crate) fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // The short runs of every `cargo test` use a fixed seed, so CI is
    // repeatable; a long run (`FNWATCH_FUZZ_CASES` set) explores new inputs.
    let mut runner = if std::env::var_os("FNWATCH_FUZZ_CASES").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let start = std::time::Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    if cases >= 100_000 {
        eprintln!(
            "{name}: {cases} cases in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
}

const FN: &str = "orders-api";

fn pos() -> Position {
    Position::kinesis(Arc::from("s"), Arc::from("shardId-0"), "1".to_string())
}

fn decode(bytes: &[u8]) -> VecSink {
    let mut sink = VecSink::default();
    let mut state = DecodeState::default();
    decode_record(bytes, &pos(), &mut state, &mut sink);
    sink
}

/// What every decoded record must satisfy, whatever it held.
fn bounded(sink: &VecSink) -> Result<(), TestCaseError> {
    let limit = Limits::default().max_dead_letters_per_record;
    prop_assert!(sink.dead.len() <= limit, "{} dead letters", sink.dead.len());
    for dl in &sink.dead {
        prop_assert!(dl.raw.len() <= crate::event::MAX_DEAD_LETTER_RAW);
        prop_assert!(dl.raw_size >= dl.raw.len());
        prop_assert!(!dl.reason.is_empty());
    }
    for e in &sink.events {
        prop_assert!(!e.function.is_empty() || e.event_type == EventType::Log);
    }
    Ok(())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// A valid native event of a random type, with a JSON-escaped string value
/// in one of its fields.
fn native_event() -> impl Strategy<Value = String> {
    let text = "[ -~é\u{2028}\\\\\"\t]{0,12}";
    (0..6u8, "[a-z0-9-]{1,12}", text, 0u32..100_000).prop_map(|(kind, req, s, n)| {
        // A query must not be empty: a prefix keeps it a valid name.
        let q = serde_json::to_string(&format!("h{s}")).unwrap_or_default();
        let s = serde_json::to_string(&s).unwrap_or_default();
        let head = format!(r#""time":"2026-11-23T10:00:{:02}.{:03}Z","function":"{FN}","request_id":"{req}""#, n % 60, n % 1000);
        match kind {
            0 => format!(r#"{{"type":"dns",{head},"query":{q},"answers":[{s}]}}"#),
            1 => format!(r#"{{"type":"invocation",{head},"duration_ms":{n}.5,"status":"success","event":{{"k":{s}}}}}"#),
            2 => format!(r#"{{"type":"process",{head},"exe":"/bin/sh","args":["-c",{s}]}}"#),
            3 => format!(r#"{{"type":"network",{head},"remote_ip":"10.0.0.1","remote_port":{},"remote_host":{s}}}"#, n % 65536),
            4 => format!(r#"{{"type":"file",{head},"path":"/tmp/x","op":"read","note":{s}}}"#),
            _ => format!(r#"{{"type":"api_call",{head},"service":"s3","action":"GetObject","resource":{s}}}"#),
        }
    })
}

/// Something that is not a valid event: garbage text or bytes, a JSON value
/// of the wrong kind, an event missing a field.
fn bad_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,20}",
        Just("1".to_string()),
        Just("null".to_string()),
        Just(r#"{"type":"dns"}"#.to_string()),
        Just(
            r#"{"type":"gpu","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r"}"#
                .to_string()
        ),
        Just(
            r#"{"type":"dns","time":"yesterday","function":"f","request_id":"r","query":"a"}"#
                .to_string()
        ),
    ]
}

/// A record part: a good event (true) or a bad one (false).
fn part() -> impl Strategy<Value = (bool, String)> {
    prop_oneof![
        3 => native_event().prop_map(|e| (true, e)),
        1 => bad_part().prop_map(|b| (false, b)),
    ]
}

/// Wraps `record` in 0..=2 layers of gzip or KPL framing.
fn wrap(record: Vec<u8>, layers: &[bool]) -> Vec<u8> {
    let mut out = record;
    for &kpl in layers {
        out = if kpl {
            kpl::tests_support::aggregate(&[&out])
        } else {
            gzip(&out)
        };
    }
    out
}

/// Records of several parts (arrays, JSON Lines, KPL aggregates), framed in
/// gzip or KPL: every good part is an event, whatever the bad parts beside
/// it hold.
fn good_parts_are_kept(
    (parts, shape, layers): (Vec<(bool, String)>, u8, Vec<bool>),
) -> Result<(), TestCaseError> {
    let texts: Vec<&str> = parts.iter().map(|(_, t)| t.as_str()).collect();
    let good = parts.iter().filter(|(g, _)| *g).count();
    let record: Vec<u8> = match shape {
        0 => format!("[{}]", texts.join(",")).into_bytes(),
        1 => texts
            .iter()
            .filter(|t| !t.contains('\n'))
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        _ => {
            let refs: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
            kpl::tests_support::aggregate(&refs)
        }
    };
    // Bad parts may join into valid JSON (`""` alone makes `[]`).
    let array_is_json =
        shape == 0 && serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&record).is_ok();
    let sink = decode(&wrap(record, &layers));
    bounded(&sink)?;
    let all_valid_json = texts
        .iter()
        .all(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    // A JSON array with a syntax error in one element is one dead letter
    // (its bytes replay whole); JSON Lines of one line is that line.
    let events = sink.events.iter().filter(|e| e.function == FN).count();
    if shape == 2 || (shape == 0 && all_valid_json) {
        prop_assert_eq!(events, good, "{:?}", sink.dead);
    } else if shape == 0 && !array_is_json {
        prop_assert!(events == 0 && sink.dead.len() == 1);
    } else {
        prop_assert!(events <= good);
    }
    Ok(())
}

/// Any bytes, after any of the prefixes the dispatcher looks at.
fn any_bytes_are_bounded((prefix, body): (u8, Vec<u8>)) -> Result<(), TestCaseError> {
    let mut bytes: Vec<u8> = match prefix {
        0 => Vec::new(),
        1 => vec![0x1F, 0x8B],
        2 => KPL_MAGIC.to_vec(),
        3 => b"{".to_vec(),
        4 => b"[".to_vec(),
        _ => b" \n{\"messageType\":\"DATA_MESSAGE\",".to_vec(),
    };
    bytes.extend_from_slice(&body);
    bounded(&decode(&bytes))?;
    bounded(&decode(&gzip(&bytes)))
}

/// A CloudWatch Logs payload for `FN` whose log events are platform lines,
/// native events (good, bad, or claiming another function) and free text.
fn cloudwatch_payload() -> impl Strategy<Value = (Vec<(u8, String)>, bool)> {
    let line = prop_oneof![
        native_event().prop_map(|e| (0u8, e)),
        "[a-z0-9-]{4,12}".prop_map(|id| (1u8, format!("START RequestId: {id} Version: $LATEST"))),
        ("[a-z0-9-]{4,12}", 0.0f64..1e6, 0u32..10_000).prop_map(|(id, d, m)| (
            1u8,
            format!("REPORT RequestId: {id}\tDuration: {d:.2} ms\tBilled Duration: {} ms\tMemory Size: {m} MB\tMax Memory Used: {m} MB", d as u64 + 1)
        )),
        "[a-z0-9-]{4,12}".prop_map(|id| (1u8, format!("2026-11-23T10:00:00.000Z {id} Task timed out after 3.00 seconds"))),
        "REPORT RequestId: [ -~]{0,40}".prop_map(|l| (2u8, l)),
        "[ -~\t]{0,40}".prop_map(|l| (2u8, l)),
        bad_part().prop_map(|b| (2u8, b)),
    ];
    (proptest::collection::vec(line, 0..12), any::<bool>())
}

fn cloudwatch_events_are_kept(
    (lines, gzipped): (Vec<(u8, String)>, bool),
) -> Result<(), TestCaseError> {
    let events: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (_, m))| serde_json::json!({"id": i.to_string(), "timestamp": 1_795_428_000_000i64 + i as i64, "message": m}))
        .collect();
    let payload = serde_json::json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": format!("/aws/lambda/{FN}"),
        "logStream": "2026/11/23/[$LATEST]abc",
        "subscriptionFilters": ["fnwatch"],
        "logEvents": events,
    })
    .to_string();
    let bytes = if gzipped {
        gzip(payload.as_bytes())
    } else {
        payload.into_bytes()
    };
    let sink = decode(&bytes);
    bounded(&sink)?;
    let native = lines.iter().filter(|(k, _)| *k == 0).count();
    let typed = sink
        .events
        .iter()
        .filter(|e| e.event_type != EventType::Log && e.event_type != EventType::Invocation)
        .count()
        + sink
            .events
            .iter()
            .filter(|e| e.event_type == EventType::Invocation && e.request_id.is_some())
            .count();
    prop_assert!(
        typed >= native,
        "{typed} typed events for {native} native lines"
    );
    Ok(())
}

/// A Telemetry API batch of platform and function records with random
/// fields, types and order.
fn telemetry_batch() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        Just("\"x\"".to_string()),
        (-1e9f64..1e9).prop_map(|f| format!("{f}")),
        Just("{}".to_string()),
        Just("[]".to_string()),
    ];
    let item = (
        prop_oneof![
            Just("platform.start"),
            Just("platform.runtimeDone"),
            Just("platform.report"),
            Just("platform.initStart"),
            Just("function"),
            Just("extension"),
            Just("platform.unknown"),
        ],
        "[a-z0-9]{1,4}",
        value.clone(),
        value,
        any::<bool>(),
    )
        .prop_map(|(t, id, v1, v2, named)| {
            let function = if named { format!(r#","function":"{FN}""#) } else { String::new() };
            format!(
                r#"{{"time":"2026-11-23T10:00:00.000Z","type":"{t}","record":{{"requestId":"{id}","status":{v1},"metrics":{{"durationMs":{v2},"billedDurationMs":{v2},"memorySizeMB":{v1}}}}}{function}}}"#
            )
        });
    proptest::collection::vec(item, 0..10).prop_map(|items| format!("[{}]", items.join(",")))
}

fn telemetry_batches_are_bounded(batch: String) -> Result<(), TestCaseError> {
    bounded(&decode(batch.as_bytes()))
}

/// A CloudTrail log file, EventBridge event or trail log-group payload of
/// records with random identities, fields missing or of the wrong kind.
fn cloudtrail() -> impl Strategy<Value = (Vec<(bool, String)>, u8)> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        Just(serde_json::json!(7)),
        Just(serde_json::json!({"a": [1]})),
        "[ -~é]{0,12}".prop_map(serde_json::Value::String),
    ];
    let identity = prop_oneof![
        4 => "[a-zA-Z0-9_-]{1,20}".prop_map(|s| (true, serde_json::json!({"type": "AssumedRole", "arn": format!("arn:aws:sts::123456789012:assumed-role/r/fn-{s}")}))),
        1 => Just((false, serde_json::json!({"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/a"}))),
        1 => "[ -~]{0,30}".prop_map(|s| (false, serde_json::json!({"type": "AssumedRole", "arn": s}))),
        1 => value.clone().prop_map(|v| (false, v)),
    ];
    let record = (identity, value.clone(), value, proptest::collection::vec(any::<bool>(), 3), 0..4u8).prop_map(
        |((function_like, id), v1, v2, keep, shape)| {
            let mut r = serde_json::json!({
                "eventVersion": "1.09", "userIdentity": id, "eventTime": "2026-11-23T10:00:00Z",
                "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "awsRegion": "us-east-1",
                "sourceIPAddress": "3.91.1.2", "userAgent": "Boto3/1 exec-env/AWS_Lambda_python3.12",
                "requestParameters": {"bucketName": v1, "key": "k"}, "eventID": "e", "extra": v2
            });
            let mut complete = true;
            for (k, name) in keep.iter().zip(["eventTime", "eventSource", "eventName"]) {
                if !k && shape == 0 {
                    r.as_object_mut().map(|o| o.remove(name));
                    complete = false;
                }
            }
            (function_like && complete, r.to_string())
        },
    );
    (proptest::collection::vec(record, 0..6), 0..3u8)
}

/// Every well-formed record of a function's role session is an event,
/// whatever envelope carries it and whatever is beside it.
fn cloudtrail_calls_are_kept(
    (records, envelope): (Vec<(bool, String)>, u8),
) -> Result<(), TestCaseError> {
    let texts: Vec<&str> = records.iter().map(|(_, t)| t.as_str()).collect();
    let bytes = match envelope {
        0 => format!("{{\"Records\":[{}]}}", texts.join(",")).into_bytes(),
        1 => serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "trail-group",
            "logStream": "s", "subscriptionFilters": [],
            "logEvents": texts.iter().enumerate().map(|(i, t)| serde_json::json!({"id": i.to_string(), "timestamp": 1, "message": t})).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes(),
        _ => match texts.first() {
            Some(t) => format!(r#"{{"detail-type":"AWS API Call via CloudTrail","detail":{t}}}"#).into_bytes(),
            None => return Ok(()),
        },
    };
    let sink = decode(&gzip(&bytes));
    bounded(&sink)?;
    let want = match envelope {
        2 => usize::from(records[0].0),
        // A trail payload is recognised by its first message.
        1 if records.is_empty() => 0,
        _ => records.iter().filter(|(ok, _)| *ok).count(),
    };
    let calls = sink
        .events
        .iter()
        .filter(|e| e.event_type == EventType::ApiCall)
        .count();
    if envelope == 1 && !records.is_empty() {
        prop_assert!(calls <= want);
    } else {
        prop_assert_eq!(calls, want, "{:?}", sink.dead);
    }
    Ok(())
}

fn records() -> impl Strategy<Value = (Vec<(bool, String)>, u8, Vec<bool>)> {
    (
        proptest::collection::vec(part(), 1..8),
        0..3u8,
        proptest::collection::vec(any::<bool>(), 0..3),
    )
}

fn bytes() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (0..6u8, proptest::collection::vec(any::<u8>(), 0..300))
}

const SHORT: u32 = 256;
const LONG: u32 = 10_000_000;

#[test]
fn good_parts_of_any_record_shape_are_kept() {
    check(
        "record shapes",
        cases(SHORT).min(2_000),
        records(),
        good_parts_are_kept,
    );
}

#[test]
fn any_bytes_decode_within_bounds() {
    check(
        "any bytes",
        cases(SHORT).min(2_000),
        bytes(),
        any_bytes_are_bounded,
    );
}

#[test]
fn cloudwatch_payloads_keep_their_events() {
    check(
        "cloudwatch",
        cases(SHORT).min(2_000),
        cloudwatch_payload(),
        cloudwatch_events_are_kept,
    );
}

#[test]
fn telemetry_api_batches_decode_within_bounds() {
    check(
        "telemetry api",
        cases(SHORT).min(2_000),
        telemetry_batch(),
        telemetry_batches_are_bounded,
    );
}

#[test]
fn cloudtrail_records_in_any_envelope_are_kept() {
    check(
        "cloudtrail",
        cases(SHORT).min(2_000),
        cloudtrail(),
        cloudtrail_calls_are_kept,
    );
}

#[test]
#[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
fn fuzz_long_cloudtrail() {
    check(
        "cloudtrail",
        cases(LONG),
        cloudtrail(),
        cloudtrail_calls_are_kept,
    );
}

#[test]
#[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
fn fuzz_long_record_shapes() {
    check("record shapes", cases(LONG), records(), good_parts_are_kept);
}

#[test]
#[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
fn fuzz_long_any_bytes() {
    check("any bytes", cases(LONG), bytes(), any_bytes_are_bounded);
}

#[test]
#[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
fn fuzz_long_cloudwatch() {
    check(
        "cloudwatch",
        cases(LONG),
        cloudwatch_payload(),
        cloudwatch_events_are_kept,
    );
}

#[test]
#[ignore = "long fuzz run: FNWATCH_FUZZ_CASES (default 10M)"]
fn fuzz_long_telemetry_api() {
    check(
        "telemetry api",
        cases(LONG),
        telemetry_batch(),
        telemetry_batches_are_bounded,
    );
}
