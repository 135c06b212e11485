//! KPL-aggregated records (telemetry contract, section 1).
//!
//! The Kinesis Producer Library packs many user records into one Kinesis
//! record: the 4-byte magic `F3 89 9A C2`, a protobuf `AggregatedRecord`, and
//! the 16-byte MD5 digest of the protobuf bytes. Every inner record is decoded
//! again by the dispatcher ([`super::decode_at_depth`]), one level deeper, at
//! the position `kpl record <i>` (its sub-sequence number).
//!
//! An aggregate that is too short, whose digest does not match, or whose
//! protobuf cannot be read becomes one dead letter for the whole record: no
//! inner record of it can be trusted. Partition keys, explicit hash keys and
//! tags are read but not used (a partition key index out of range does not
//! stop the data from being decoded).

use md5::{Digest, Md5};
use prost::Message;
use prost::bytes::Bytes;

use super::{DecodeState, KPL_MAGIC};
use crate::event::{DeadLetter, Position, Sink, Step};

/// Length of the MD5 trailer.
const DIGEST_LEN: usize = 16;

/// The protobuf of a KPL aggregate (`aggregation-format.md` of the KPL;
/// proto2, so `required` fields are always written, as the KPL does).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// One user record inside an aggregate.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// `Bytes`, so decoding from one `Bytes` buffer slices instead of copying.
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A tag of a user record (unused by fnwatch).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// Decodes one record that starts with [`KPL_MAGIC`].
pub(crate) fn decode(
    bytes: &[u8],
    pos: &Position,
    state: &mut DecodeState,
    sink: &mut dyn Sink,
    depth: u32,
) {
    let agg = match parse(bytes) {
        Ok(agg) => agg,
        Err(reason) => {
            sink.dead_letter(DeadLetter::new(reason, pos, bytes));
            return;
        }
    };
    if agg.records.is_empty() {
        sink.dead_letter(DeadLetter::new(
            "kpl aggregate holds no inner records",
            pos,
            bytes,
        ));
        return;
    }
    let keys = agg.partition_key_table.len();
    if let Some(bad) = agg
        .records
        .iter()
        .find(|r| r.partition_key_index >= keys as u64)
    {
        tracing::debug!(
            position = %pos,
            partition_key_index = bad.partition_key_index,
            partition_keys = keys,
            "kpl inner record points past the partition key table; its data is decoded anyway"
        );
    }
    for (i, rec) in agg.records.iter().enumerate() {
        let step = Step::KplRecord(u32::try_from(i).unwrap_or(u32::MAX));
        super::decode_at_depth(&rec.data, &pos.child(step), state, sink, depth + 1);
    }
}

/// Checks the framing and the digest, then reads the protobuf.
pub(crate) fn parse(bytes: &[u8]) -> Result<AggregatedRecord, String> {
    let min = KPL_MAGIC.len() + DIGEST_LEN;
    if bytes.len() < min || !bytes.starts_with(&KPL_MAGIC) {
        return Err(format!(
            "kpl aggregate too short: {} bytes, at least {min} needed for the 4-byte magic and the 16-byte md5 trailer",
            bytes.len()
        ));
    }
    let (body, trailer) = bytes[KPL_MAGIC.len()..].split_at(bytes.len() - min);
    let digest = Md5::digest(body);
    if digest.as_slice() != trailer {
        return Err(format!(
            "kpl aggregate digest mismatch: trailer says {}, content hashes to {}",
            hex(trailer),
            hex(digest.as_slice())
        ));
    }
    AggregatedRecord::decode(Bytes::copy_from_slice(body))
        .map_err(|e| format!("kpl aggregate protobuf cannot be decoded: {e}"))
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// Builds KPL aggregates for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// An aggregate of `records` (one partition key), framed with the magic
    /// and the MD5 trailer as the KPL writes it.
    pub(crate) fn aggregate(records: &[&[u8]]) -> Vec<u8> {
        let body = AggregatedRecord {
            partition_key_table: vec!["k".to_string()],
            explicit_hash_key_table: Vec::new(),
            records: records
                .iter()
                .map(|r| Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: Bytes::copy_from_slice(r),
                    tags: Vec::new(),
                })
                .collect(),
        }
        .encode_to_vec();
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(Md5::digest(&body).as_slice());
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use crate::decode::{Limits, decode_record};
    use crate::event::{EventType, VecSink};

    const NATIVE: &[u8] = include_bytes!("../../tests/fixtures/kpl/native.kpl.bin");
    const CLOUDWATCH: &[u8] = include_bytes!("../../tests/fixtures/kpl/cloudwatch_gzip.kpl.bin");
    const BAD_DIGEST: &[u8] = include_bytes!("../../tests/fixtures/kpl/bad_digest.kpl.bin");
    const MIXED: &[u8] = include_bytes!("../../tests/fixtures/kpl/mixed.kpl.bin");
    const EXPECTED: &str = include_str!("../../tests/fixtures/kpl/expected.json");

    const DNS: &str = r#"{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"orders-api","request_id":"r-1","query":"dynamodb.us-east-1.amazonaws.com","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10"]}"#;
    const INV: &str = r#"{"type":"invocation","time":"2026-11-23T10:00:00.412Z","function":"orders-api","request_id":"r-1","duration_ms":84.2,"status":"success"}"#;

    fn pos() -> Position {
        Position::kinesis(
            Arc::from("fn-telemetry"),
            Arc::from("shardId-000000000000"),
            "49590338271490256608559692538361571095921575989136588898".to_string(),
        )
    }

    fn run(bytes: &[u8]) -> VecSink {
        let mut sink = VecSink::default();
        let mut state = DecodeState::default();
        decode_record(bytes, &pos(), &mut state, &mut sink);
        sink
    }

    /// Magic + body + md5(body), as the KPL frames an aggregate.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = KPL_MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(Md5::digest(body).as_slice());
        out
    }

    fn record(pk: u64, data: &[u8]) -> Record {
        Record {
            partition_key_index: pk,
            explicit_hash_key_index: None,
            data: Bytes::copy_from_slice(data),
            tags: Vec::new(),
        }
    }

    fn aggregate(records: Vec<Record>) -> Vec<u8> {
        frame(
            &AggregatedRecord {
                partition_key_table: vec!["orders-api".to_string()],
                explicit_hash_key_table: Vec::new(),
                records,
            }
            .encode_to_vec(),
        )
    }

    fn counts(sink: &VecSink) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for e in &sink.events {
            *m.entry(e.event_type.as_str().to_string()).or_default() += 1;
        }
        m
    }

    fn steps_json(steps: &[Step]) -> serde_json::Value {
        serde_json::Value::Array(
            steps
                .iter()
                .map(|s| match s {
                    Step::Line(n) => serde_json::json!(["line", n]),
                    Step::Element(n) => serde_json::json!(["element", n]),
                    Step::KplRecord(n) => serde_json::json!(["kpl_record", n]),
                    Step::LogEvent(n) => serde_json::json!(["log_event", n]),
                })
                .collect(),
        )
    }

    /// Every fixture decodes to what `expected.json` (written beside the
    /// fixtures by the independent encoder's script) says.
    #[test]
    fn fixtures_match_expected_json() {
        let expected: serde_json::Value = serde_json::from_str(EXPECTED).expect("expected.json");
        let files: [(&str, &[u8]); 4] = [
            ("native.kpl.bin", NATIVE),
            ("cloudwatch_gzip.kpl.bin", CLOUDWATCH),
            ("bad_digest.kpl.bin", BAD_DIGEST),
            ("mixed.kpl.bin", MIXED),
        ];
        for (name, bytes) in files {
            let want = &expected[name];
            assert!(want.is_object(), "{name} missing from expected.json");
            let sink = run(bytes);
            let want_counts: BTreeMap<String, u64> =
                serde_json::from_value(want["events"].clone()).expect("events");
            assert_eq!(counts(&sink), want_counts, "{name}: events per type");
            assert_eq!(
                sink.events.len() as u64,
                want["events_total"].as_u64().expect("events_total"),
                "{name}"
            );
            assert_eq!(
                sink.skipped.len() as u64,
                want["skipped"].as_u64().expect("skipped"),
                "{name}: skipped {:?}",
                sink.skipped
            );
            let want_dead = want["dead_letters"].as_array().expect("dead_letters");
            assert_eq!(sink.dead.len(), want_dead.len(), "{name}: {:?}", sink.dead);
            for (dl, w) in sink.dead.iter().zip(want_dead) {
                assert_eq!(steps_json(&dl.position.steps), w["steps"], "{name}");
                assert_eq!(dl.position.origin, pos().origin, "{name}");
                let needle = w["reason_contains"].as_str().expect("reason_contains");
                assert!(
                    dl.reason.to_lowercase().contains(needle),
                    "{name}: reason {:?} lacks {needle:?}",
                    dl.reason
                );
            }
            if let Some(ids) = want.get("request_ids").and_then(|v| v.as_array()) {
                let got: Vec<_> = sink
                    .events
                    .iter()
                    .map(|e| serde_json::json!(e.request_id.as_deref()))
                    .collect();
                assert_eq!(&got, ids, "{name}: inner records keep their order");
            }
            if let Some(f) = want.get("function").and_then(|v| v.as_str()) {
                assert!(sink.events.iter().all(|e| e.function == f), "{name}");
            }
            // The whole record parses (or not) the same way at this level too.
            let inner = parse(bytes).map(|a| a.records.len());
            match want_dead.first() {
                Some(w) if w["steps"].as_array().is_some_and(|s| s.is_empty()) => {
                    assert!(inner.is_err(), "{name}")
                }
                _ => assert_eq!(
                    inner.ok(),
                    want["inner_records"].as_u64().map(|n| n as usize),
                    "{name}"
                ),
            }
        }
    }

    #[test]
    fn native_fixture_decodes_every_inner_record() {
        let sink = run(NATIVE);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let types: Vec<_> = sink.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                EventType::Dns,
                EventType::Network,
                EventType::ApiCall,
                EventType::Invocation,
                EventType::Process
            ]
        );
        assert_eq!(sink.events[3].duration_ms, Some(84.2));
        assert_eq!(sink.events[4].function, "report-renderer");
        // The independent encoder wrote two partition keys and one explicit hash key.
        let agg = parse(NATIVE).expect("native parses");
        assert_eq!(
            agg.partition_key_table,
            vec!["orders-api", "report-renderer"]
        );
        assert_eq!(agg.explicit_hash_key_table.len(), 1);
        assert_eq!(agg.records[4].partition_key_index, 1);
        assert_eq!(agg.records[4].explicit_hash_key_index, Some(0));
        assert_eq!(agg.records[0].explicit_hash_key_index, None);
    }

    #[test]
    fn cloudwatch_gzip_fixture_decodes_through_gzip() {
        let sink = run(CLOUDWATCH);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let inv: Vec<_> = sink
            .events
            .iter()
            .filter(|e| e.event_type == EventType::Invocation)
            .collect();
        assert_eq!(inv.len(), 2);
        assert_eq!(inv[0].duration_ms, Some(152.48));
        assert_eq!(inv[0].billed_ms, Some(153));
        assert_eq!(inv[1].max_memory_mb, Some(121));
        assert!(sink.events.iter().all(|e| e.function == "payments-worker"));
    }

    #[test]
    fn bad_digest_is_one_dead_letter_for_the_whole_record() {
        let sink = run(BAD_DIGEST);
        assert!(sink.events.is_empty());
        assert_eq!(sink.dead.len(), 1);
        let dl = &sink.dead[0];
        assert!(
            dl.reason
                .starts_with("kpl aggregate digest mismatch: trailer says "),
            "{}",
            dl.reason
        );
        let trailer = hex(&BAD_DIGEST[BAD_DIGEST.len() - DIGEST_LEN..]);
        let real = hex(&NATIVE[NATIVE.len() - DIGEST_LEN..]);
        assert_eq!(
            dl.reason,
            format!(
                "kpl aggregate digest mismatch: trailer says {trailer}, content hashes to {real}"
            )
        );
        assert!(dl.position.steps.is_empty());
        assert_eq!(dl.raw, BAD_DIGEST);
    }

    #[test]
    fn mixed_fixture_keeps_the_good_inner_records() {
        let sink = run(MIXED);
        assert_eq!(sink.events.len(), 2);
        assert_eq!(sink.events[0].event_type, EventType::Dns);
        assert_eq!(sink.events[1].event_type, EventType::File);
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(sink.dead[0].position.steps, vec![Step::KplRecord(1)]);
        assert!(sink.dead[0].raw.starts_with(br#"{"type":"network""#));
        assert_eq!(
            sink.dead[0].position.to_string(),
            format!("{} (kpl record 1)", pos())
        );
    }

    #[test]
    fn truncated_aggregate_is_one_dead_letter() {
        // Every cut of a real aggregate (that still shows the magic) is rejected whole.
        for len in KPL_MAGIC.len()..NATIVE.len() {
            let sink = run(&NATIVE[..len]);
            assert!(sink.events.is_empty(), "cut at {len}");
            assert_eq!(sink.dead.len(), 1, "cut at {len}");
            assert!(
                sink.dead[0].reason.starts_with("kpl aggregate "),
                "{}",
                sink.dead[0].reason
            );
            assert_eq!(sink.dead[0].raw, &NATIVE[..len]);
        }
        let sink = run(&NATIVE[..10]);
        assert!(
            sink.dead[0]
                .reason
                .starts_with("kpl aggregate too short: 10 bytes"),
            "{}",
            sink.dead[0].reason
        );
        let sink = run(&NATIVE[..NATIVE.len() - 1]);
        assert!(
            sink.dead[0].reason.contains("digest mismatch"),
            "{}",
            sink.dead[0].reason
        );
    }

    #[test]
    fn undecodable_protobuf_is_one_dead_letter() {
        // A valid digest over bytes that are not an AggregatedRecord.
        for body in [
            &b"\xff\xff\xff"[..],
            b"\x1a\x05\x08\x00",
            b"\x0a\x02\xc3\x28",
        ] {
            let sink = run(&frame(body));
            assert!(sink.events.is_empty());
            assert_eq!(sink.dead.len(), 1, "{body:?}");
            assert!(
                sink.dead[0]
                    .reason
                    .starts_with("kpl aggregate protobuf cannot be decoded: "),
                "{}",
                sink.dead[0].reason
            );
        }
        let sink = run(&frame(b""));
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(sink.dead[0].reason, "kpl aggregate holds no inner records");
    }

    #[test]
    fn prost_round_trip() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(DNS.as_bytes()).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let agg = AggregatedRecord {
            partition_key_table: vec!["orders-api".to_string(), "other".to_string()],
            explicit_hash_key_table: vec!["340282366920938463463374607431768211455".to_string()],
            records: vec![
                Record {
                    explicit_hash_key_index: Some(0),
                    tags: vec![Tag {
                        key: "env".to_string(),
                        value: Some("prod".to_string()),
                    }],
                    ..record(0, DNS.as_bytes())
                },
                record(1, INV.as_bytes()),
                record(0, &gz),
                record(0, format!("{DNS}\n{INV}\n").as_bytes()),
            ],
        };
        let body = agg.encode_to_vec();
        let bytes = frame(&body);
        assert_eq!(parse(&bytes).expect("parses"), agg);
        let sink = run(&bytes);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let types: Vec<_> = sink.events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![
                EventType::Dns,
                EventType::Invocation,
                EventType::Dns,
                EventType::Dns,
                EventType::Invocation
            ]
        );
    }

    /// Our structs write the same bytes as the independent encoder did.
    #[test]
    fn reencoding_the_fixture_gives_the_same_bytes() {
        for bytes in [NATIVE, CLOUDWATCH, MIXED] {
            let agg = parse(bytes).expect("parses");
            assert_eq!(frame(&agg.encode_to_vec()), bytes);
        }
    }

    #[test]
    fn partition_key_index_out_of_range_still_decodes() {
        let sink = run(&aggregate(vec![
            record(7, DNS.as_bytes()),
            record(u64::MAX, INV.as_bytes()),
        ]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 2);
    }

    #[test]
    fn nested_positions_name_the_inner_record() {
        let array = format!("[{DNS},42]");
        let sink = run(&aggregate(vec![
            record(0, DNS.as_bytes()),
            record(0, b""),
            record(0, array.as_bytes()),
        ]));
        assert_eq!(sink.events.len(), 2);
        let steps: Vec<_> = sink.dead.iter().map(|d| d.position.steps.clone()).collect();
        assert_eq!(
            steps,
            vec![
                vec![Step::KplRecord(1)],
                vec![Step::KplRecord(2), Step::Element(1)]
            ]
        );
        assert_eq!(sink.dead[0].reason, "empty record");
    }

    #[test]
    fn aggregates_nest_up_to_the_depth_limit() {
        let inner = aggregate(vec![record(0, DNS.as_bytes())]);
        let outer = aggregate(vec![record(0, &inner), record(0, INV.as_bytes())]);
        let sink = run(&outer);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 2);

        let mut nested = DNS.as_bytes().to_vec();
        for _ in 0..=Limits::default().max_depth {
            nested = aggregate(vec![record(0, &nested)]);
        }
        let sink = run(&nested);
        assert!(sink.events.is_empty());
        assert_eq!(sink.dead.len(), 1);
        assert!(
            sink.dead[0].reason.contains("nests more than"),
            "{}",
            sink.dead[0].reason
        );
        assert_eq!(
            sink.dead[0].position.steps.len(),
            Limits::default().max_depth as usize + 1
        );
    }

    /// Corrupt protobuf bodies (with a matching digest, so the protobuf reader
    /// is reached) never panic and always account for the record.
    #[test]
    fn corrupted_bodies_never_panic() {
        let body = &NATIVE[KPL_MAGIC.len()..NATIVE.len() - DIGEST_LEN];
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = body.to_vec();
                b[i] ^= flip;
                let sink = run(&frame(&b));
                assert!(
                    !sink.events.is_empty() || !sink.dead.is_empty(),
                    "byte {i} flip {flip:#x}: nothing came out"
                );
            }
            let sink = run(&frame(&body[..i]));
            assert!(!sink.events.is_empty() || !sink.dead.is_empty(), "cut {i}");
        }
    }

    /// A KPL aggregate of thousands of broken inner records is one dead
    /// letter that summarises them; its good records are kept.
    #[test]
    fn many_bad_inner_records_are_summarised() {
        let mut records: Vec<Record> = (0..5_000)
            .map(|i| record(0, format!("bad {i}").as_bytes()))
            .collect();
        records.push(record(0, DNS.as_bytes()));
        let sink = run(&aggregate(records));
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.dead.len(), 1);
        let reason = &sink.dead[0].reason;
        assert!(reason.starts_with("record has 5000 bad parts"), "{reason}");
        assert!(reason.contains("the first at kpl record 0"), "{reason}");
    }
}
