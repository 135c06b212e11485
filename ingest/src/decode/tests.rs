//! Tests of the record dispatcher and the native decoder.

use std::sync::Arc;

use super::*;
use crate::decode::native::parse_native;
use crate::event::{EventType, Origin, VecSink};

fn pos() -> Position {
    Position::file(Arc::from("t.jsonl"), 7)
}

fn decode(bytes: &[u8]) -> VecSink {
    let mut sink = VecSink::default();
    let mut state = DecodeState::default();
    decode_record(bytes, &pos(), &mut state, &mut sink);
    sink
}

const DNS: &str = r#"{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"orders-api","request_id":"8f1c","query":"dynamodb.us-east-1.amazonaws.com","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10"]}"#;
const INV: &str = r#"{"type":"invocation","time":"2026-11-23T10:00:00.412Z","function":"orders-api","request_id":"8f1c","duration_ms":84.2,"billed_ms":85,"cpu_ms":31.0,"memory_mb":256,"max_memory_mb":91,"init_ms":null,"timeout_ms":6000,"status":"success","trigger":"apigateway","event_bytes":733}"#;

#[test]
fn spec_examples_decode() {
    let row = parse_native(INV).expect("invocation");
    assert_eq!(row.event_type, EventType::Invocation);
    assert_eq!(row.time_us, 1_795_428_000_412_000);
    assert_eq!(row.duration_ms, Some(84.2));
    assert_eq!(row.billed_ms, Some(85));
    assert_eq!(row.init_ms, None);
    assert_eq!(row.status.as_deref(), Some("success"));
    let row = parse_native(DNS).expect("dns");
    assert_eq!(row.answers.as_ref().map(|a| a.len()), Some(1));
    assert!(row.extra.is_none());
}

#[test]
fn offsets_become_utc() {
    let t = DNS.replace("2026-11-23T10:00:00.371Z", "2026-11-23T12:00:00.371+02:00");
    assert_eq!(
        parse_native(&t).expect("dns").time_us,
        1_795_428_000_371_000
    );
}

#[test]
fn unknown_and_foreign_fields_go_to_extra() {
    let t = DNS.replace(
        r#""qtype":"A""#,
        r#""qtype":"A","ttl":60,"path":"/etc/x","nested":{"a":[1,2]}"#,
    );
    let row = parse_native(&t).expect("dns");
    assert_eq!(
        row.path, None,
        "a file field on a dns event is not a column"
    );
    let extra: serde_json::Value =
        serde_json::from_str(row.extra.as_deref().expect("extra")).expect("json");
    assert_eq!(extra["ttl"], 60);
    assert_eq!(extra["path"], "/etc/x");
    assert_eq!(extra["nested"]["a"][1], 2);
}

#[test]
fn escaped_strings_are_unescaped() {
    let t = DNS.replace("orders-api", "orders\\u002dapi\\n");
    assert_eq!(parse_native(&t).expect("dns").function, "orders-api\n");
}

#[test]
fn event_sample_object_or_string() {
    let t = INV.replace(
        r#""event_bytes":733"#,
        r#""event_bytes":733,"event":{"body":"'; DROP TABLE x;--"}"#,
    );
    assert_eq!(
        parse_native(&t).expect("inv").event.as_deref(),
        Some(r#"{"body":"'; DROP TABLE x;--"}"#)
    );
    let t = INV.replace(r#""event_bytes":733"#, r#""event_bytes":733,"event":"a=b""#);
    assert_eq!(parse_native(&t).expect("inv").event.as_deref(), Some("a=b"));
    let t = INV.replace(r#""event_bytes":733"#, r#""event_bytes":733,"event":5"#);
    assert_eq!(
        parse_native(&t).expect_err("number").field.as_deref(),
        Some("event")
    );
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (
            INV.replace(r#""status":"success""#, r#""status":"meh""#),
            "status",
            "unknown value `meh`",
        ),
        (
            INV.replace(r#""duration_ms":84.2,"#, ""),
            "duration_ms",
            "missing required field",
        ),
        (
            INV.replace(r#""billed_ms":85"#, r#""billed_ms":85.5"#),
            "billed_ms",
            "wrong type",
        ),
        (
            DNS.replace(r#""request_id":"8f1c","#, ""),
            "request_id",
            "missing required field",
        ),
        (
            DNS.replace(r#""function":"orders-api","#, r#""function":"","#),
            "function",
            "1 to 170",
        ),
        (
            DNS.replace(
                r#""function":"orders-api","#,
                r#""account":"12","function":"f","#,
            ),
            "account",
            "12-digit",
        ),
        (
            DNS.replace(
                r#""answers":["3.218.182.10"]"#,
                r#""answers":"3.218.182.10""#,
            ),
            "answers",
            "wrong type",
        ),
        (
            DNS.replace(
                r#""time":"2026-11-23T10:00:00.371Z""#,
                r#""time":"yesterday""#,
            ),
            "time",
            "not an RFC 3339",
        ),
    ];
    for (text, field, why) in cases {
        let e = parse_native(&text).expect_err(&text);
        assert_eq!(e.field.as_deref(), Some(field), "{text}: {e:?}");
        assert!(e.reason.contains(why), "{text}: {}", e.reason);
    }
}

#[test]
fn function_names_are_counted_in_characters() {
    let named = |name: &str| DNS.replace("orders-api", name);
    for ok in [
        "f".to_string(),
        "a".repeat(170),
        "é".repeat(170),
        "✓".repeat(170),
    ] {
        let line = named(&ok);
        let row = parse_native(&line).expect(&ok);
        assert_eq!(row.function, ok);
    }
    for (bad, n) in [
        ("a".repeat(171), 171),
        ("é".repeat(171), 171),
        ("✓".repeat(200), 200),
    ] {
        let e = parse_native(&named(&bad)).expect_err(&bad);
        assert_eq!(e.field.as_deref(), Some("function"));
        assert!(e.reason.ends_with(&format!("got {n}")), "{}", e.reason);
    }
}

#[test]
fn process_network_file_rules() {
    let p = r#"{"type":"process","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","exe":"sh","cmdline":"sh -c id"}"#;
    assert_eq!(
        parse_native(p).expect_err("relative").field.as_deref(),
        Some("exe")
    );
    let n = r#"{"type":"network","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","remote_ip":"10.0.0.300","remote_port":443}"#;
    assert_eq!(
        parse_native(n).expect_err("bad ip").field.as_deref(),
        Some("remote_ip")
    );
    let n = r#"{"type":"network","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","remote_ip":"::1","remote_port":70000}"#;
    assert_eq!(
        parse_native(n).expect_err("bad port").field.as_deref(),
        Some("remote_port")
    );
    let f = r#"{"type":"file","time":"2026-11-23T10:00:00Z","function":"f","request_id":"r","path":"/etc/passwd","op":"steal"}"#;
    assert_eq!(
        parse_native(f).expect_err("bad op").field.as_deref(),
        Some("op")
    );
    let c = r#"{"type":"function_config","time":"2026-11-23T10:00:00Z","function":"f","permissions":["s3:*"],"memory_mb":128}"#;
    let row = parse_native(c).expect("config needs no request_id");
    assert_eq!(row.memory_mb, Some(128));
}

#[test]
fn json_lines_inside_one_record_keep_good_lines() {
    let rec = format!("{DNS}\n{{\"type\":\"dns\"}}\n{INV}\n");
    let s = decode(rec.as_bytes());
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.dead.len(), 1);
    assert_eq!(s.dead[0].position.steps, vec![Step::Line(2)]);
    assert_eq!(
        s.dead[0].position.to_string(),
        "t.jsonl:7 (line 2 of the record)"
    );
}

#[test]
fn arrays_of_native_events() {
    let rec = format!("[{DNS}, 42, {INV}]");
    let s = decode(rec.as_bytes());
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.dead.len(), 1);
    assert_eq!(s.dead[0].position.steps, vec![Step::Element(1)]);
}

#[test]
fn gzip_records_are_unwrapped() {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(format!("{DNS}\n{INV}").as_bytes())
        .expect("gzip");
    let gz = e.finish().expect("gzip");
    let s = decode(&gz);
    assert_eq!(s.events.len(), 2, "{:?}", s.dead);
    let s = decode(&gz[..gz.len() / 2]);
    assert_eq!(s.events.len(), 0);
    assert!(s.dead[0].reason.contains("gzip"), "{}", s.dead[0].reason);
}

#[test]
fn odd_bytes_are_dead_letters() {
    for (bytes, why) in [
        (&b""[..], "empty record"),
        (&b"  \t "[..], "empty record"),
        (&b"hello"[..], "unrecognised record"),
        (
            &b"{\"type\":\"dns\",\"query\":\"\xff\"}"[..],
            "not valid UTF-8",
        ),
    ] {
        let s = decode(bytes);
        assert_eq!(s.events.len(), 0);
        assert!(
            s.dead[0].reason.contains(why),
            "{:?}: {}",
            bytes,
            s.dead[0].reason
        );
        assert_eq!(s.dead[0].raw, bytes);
    }
}

#[test]
fn kpl_bad_digest_is_one_dead_letter_beside_good_records() {
    let bad = include_bytes!("../../tests/fixtures/kpl/bad_digest.kpl.bin");
    let mut sink = VecSink::default();
    let mut state = DecodeState::default();
    let kinesis = |seq: &str| {
        Position::kinesis(
            Arc::from("telemetry"),
            Arc::from("shardId-000000000000"),
            seq.to_string(),
        )
    };
    decode_record(DNS.as_bytes(), &kinesis("1"), &mut state, &mut sink);
    decode_record(bad, &kinesis("2"), &mut state, &mut sink);
    decode_record(INV.as_bytes(), &kinesis("3"), &mut state, &mut sink);
    assert_eq!(sink.events.len(), 2);
    assert_eq!(sink.dead.len(), 1);
    assert!(
        sink.dead[0].reason.contains("digest"),
        "{}",
        sink.dead[0].reason
    );
    assert!(
        matches!(&sink.dead[0].position.origin, Origin::Kinesis { sequence_number, .. } if sequence_number == "2")
    );
}

#[test]
fn nesting_is_bounded() {
    use std::io::Write;
    let mut data = DNS.as_bytes().to_vec();
    for _ in 0..10 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).expect("gzip");
        data = e.finish().expect("gzip");
    }
    let s = decode(&data);
    assert_eq!(s.events.len(), 0);
    assert!(
        s.dead[0].reason.contains("nests more than"),
        "{}",
        s.dead[0].reason
    );
}

/// Every timestamp the shortcut reads, it reads as chrono does: hand-picked
/// edges, 20,000 random stamps over four centuries, and
/// every one-byte change of a few valid stamps.
#[test]
fn common_timestamps_read_like_chrono() {
    fn chrono_us(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    }
    let mut read = 0;
    let mut check = |s: &str| {
        if let Some(us) = super::common_time_us(s.as_bytes()) {
            assert_eq!(Some(us), chrono_us(s), "{s}");
            read += 1;
        }
        // Whatever path it takes, the public parser agrees with chrono.
        assert_eq!(super::parse_time_us(s).ok(), chrono_us(s), "{s}");
    };
    let samples = [
        "2026-11-23T10:00:00.412Z",
        "2026-11-23T10:00:00Z",
        "2026-11-23T10:00:00.123456789Z",
        "2026-11-23T10:00:00.1234567891Z",
        "2026-11-23T10:00:00.Z",
        "2026-11-23T10:00:00.5+05:30",
        "2026-11-23T10:00:00.5-23:59",
        "2026-11-23T10:00:00+24:00",
        "2026-11-23t10:00:00z",
        "2026-11-23 10:00:00Z",
        "2026-11-23T10:00:60Z",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2000-02-29T23:59:59.999999Z",
        "1900-02-29T00:00:00Z",
        "1969-12-31T23:59:59.999999Z",
        "1970-01-01T00:00:00-00:01",
        "0001-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999+00:00",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-11-23T10:00:00",
        "2026-11-23T10:00:00.412Zjunk",
        "2026-11-23T10:00:00+0530",
        "+2026-11-23T10:00:00Z",
    ];
    for s in samples {
        check(s);
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let r = next();
        let (y, mo, d) = (1600 + r % 800, 1 + (r >> 10) % 12, 1 + (r >> 20) % 31);
        let (h, mi, se) = ((r >> 25) % 24, (r >> 30) % 60, (r >> 36) % 60);
        let frac = ["", ".1", ".25", ".123456", ".1234567", ".999999999"][((r >> 42) % 6) as usize];
        let off = ["Z", "+00:00", "-07:00", "+14:00", "+05:45"][((r >> 46) % 5) as usize];
        check(&format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}{off}"
        ));
    }
    for base in ["2026-11-23T10:00:00.412Z", "2026-02-28T23:59:59.5+05:30"] {
        for i in 0..base.len() {
            for b in [
                b'0', b'1', b'2', b'3', b'9', b'-', b':', b'.', b'T', b'Z', b'+', b' ',
            ] {
                let mut v = base.as_bytes().to_vec();
                v[i] = b;
                check(&String::from_utf8(v).expect("ascii"));
            }
        }
    }
    assert!(read > 15_000, "the shortcut read only {read} stamps");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// A small gzip record that inflates to millions of bad array elements is one
/// summarising dead letter, not millions; the good events beside the bad
/// elements are kept.
#[test]
fn a_record_bomb_is_one_summarised_dead_letter() {
    let n = 3_000_000;
    let mut text = String::with_capacity(2 * n + 600);
    text.push('[');
    text.push_str(DNS);
    for _ in 0..n {
        text.push_str(",1");
    }
    text.push(',');
    text.push_str(INV);
    text.push(']');
    let bomb = gzip(text.as_bytes());
    assert!(
        bomb.len() < 64 * 1024,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let sink = decode(&bomb);
    assert_eq!(sink.events.len(), 2, "the two good events are kept");
    assert_eq!(sink.dead.len(), 1, "one dead letter for the whole record");
    let dl = &sink.dead[0];
    assert!(
        dl.reason.starts_with(&format!("record has {n} bad parts")),
        "{}",
        dl.reason
    );
    assert!(
        dl.reason.contains("array element is not a JSON object"),
        "{}",
        dl.reason
    );
    assert!(
        dl.reason.contains("the first at array element 1"),
        "{}",
        dl.reason
    );
    assert!(dl.position.steps.is_empty(), "the summary names the record");
    assert_eq!(dl.raw, bomb, "the record's own (compressed) bytes are kept");
}

/// Up to the limit, every bad part is a dead letter of its own; one more
/// and they are summarised.
#[test]
fn bad_parts_are_kept_apart_up_to_the_limit() {
    let limit = Limits::default().max_dead_letters_per_record;
    for (bad, want) in [(limit, limit), (limit + 1, 1)] {
        let mut text = String::from("[");
        text.push_str(INV);
        for _ in 0..bad {
            text.push_str(",\"x\"");
        }
        text.push(']');
        let sink = decode(text.as_bytes());
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.dead.len(), want, "{bad} bad elements");
        if want > 1 {
            assert_eq!(sink.dead[0].position.steps, vec![Step::Element(1)]);
        }
    }
}

/// A dead letter keeps at most `MAX_DEAD_LETTER_RAW` bytes of its record
/// from the moment it is made, and remembers the record's size.
#[test]
fn dead_letters_keep_a_bounded_copy() {
    let big = format!("{{\"type\":\"dns\",\"pad\":\"{}\"", "x".repeat(200_000));
    let sink = decode(big.as_bytes());
    assert_eq!(sink.dead.len(), 1);
    assert_eq!(sink.dead[0].raw.len(), crate::event::MAX_DEAD_LETTER_RAW);
    assert_eq!(sink.dead[0].raw_size, big.len());
}
