//! The simulator as a Kinesis producer (`fnwatch simulate --kinesis STREAM`).
//!
//! Two halves:
//!
//! - [`Shaper`] turns the lines of the simulated day files into Kinesis
//!   records in every shape of the input contract (section 1 of
//!   `shared/spec/telemetry.md`), a deterministic mix per seed: one native
//!   event per record, JSON Lines (an invocation's events in one record), JSON
//!   arrays, gzip records, gzip CloudWatch Logs subscription payloads (and now
//!   and then a `CONTROL_MESSAGE`), Lambda Telemetry API batches, and KPL
//!   aggregates of several user records, some of them gzip CloudWatch
//!   payloads. The partition key is the request id of the invocation (the
//!   function for CloudWatch payloads and `function_config`), and all the
//!   events of one invocation go into records with that one key, or into one
//!   record, so they reach one shard in order.
//! - [`put_all`] puts records with `PutRecords` (at most 500 entries and
//!   5 MiB a call), at a given rate, re-putting only the failed entries of a
//!   partial failure (in a call of their own, in their order), and retrying
//!   throttled or transient calls, both with jittered exponential backoff. A call never holds two entries with the
//!   same partition key, and an entry is sent only once the entries before it
//!   with its key are stored: a partial failure cannot reorder a key's records.
//!
//! The KPL framing is written here by hand ([`encode_kpl`]): the magic, a
//! protobuf `AggregatedRecord` (varints and length-delimited fields) and the
//! MD5 of the protobuf ([`md5`]), because this crate has neither prost nor an
//! MD5 crate.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use fnwatch_ingest::sources::kinesis::{KinesisApi, KinesisError};
use rand::SeedableRng;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::plan::sub_seed;
use super::util::{Rng, chance, int, weighted};

/// Most entries in one `PutRecords` call.
pub const MAX_BATCH_ENTRIES: usize = 500;
/// Most bytes (data and partition keys) in one `PutRecords` call.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Largest Kinesis record (data and partition key).
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Largest KPL aggregate the shaper writes (the KPL's default `AggregationMaxSize`).
const KPL_MAX_BYTES: usize = 51_200;
/// Longest partition key Kinesis accepts.
const MAX_KEY_CHARS: usize = 256;
/// The magic that opens a KPL aggregate.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Queued entries below which the putter asks the shaper for more.
const LOW_WATER: usize = 4_000;
/// Entries the shaper hands over at a time.
const CHUNK: usize = 1_000;

// ---- record shapes ----------------------------------------------------------

/// The shape of one Kinesis record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// One native event (a JSON object).
    Native,
    /// Several native events of one invocation, one per line.
    JsonLines,
    /// A JSON array of native events.
    Array,
    /// Gzip of one native event or of JSON Lines.
    Gzip,
    /// A gzip CloudWatch Logs subscription payload (`DATA_MESSAGE`).
    CloudWatch,
    /// A gzip CloudWatch Logs `CONTROL_MESSAGE` (no events).
    Control,
    /// A Lambda Telemetry API batch (a JSON array).
    TelemetryApi,
    /// A KPL aggregate.
    Kpl,
}

impl Shape {
    pub const ALL: [Shape; 8] = [
        Shape::Native,
        Shape::JsonLines,
        Shape::Array,
        Shape::Gzip,
        Shape::CloudWatch,
        Shape::Control,
        Shape::TelemetryApi,
        Shape::Kpl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Native => "native",
            Shape::JsonLines => "json lines",
            Shape::Array => "json array",
            Shape::Gzip => "gzip",
            Shape::CloudWatch => "cloudwatch gzip",
            Shape::Control => "cloudwatch control",
            Shape::TelemetryApi => "telemetry api",
            Shape::Kpl => "kpl",
        }
    }
}

/// What a record holds, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub shape: Shape,
    /// Events the lake gets from it (application log lines not counted).
    pub events: u32,
    /// User records inside a KPL aggregate.
    pub user_records: u32,
    /// Of those, gzip CloudWatch Logs payloads.
    pub nested_cloudwatch: u32,
}

impl Info {
    fn plain(shape: Shape, events: u32) -> Info {
        Info {
            shape,
            events,
            user_records: 0,
            nested_cloudwatch: 0,
        }
    }
}

/// One Kinesis record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub data: Vec<u8>,
    pub info: Info,
}

/// How an invocation's native events travel.
#[derive(Debug, Clone, Copy)]
enum GroupShape {
    Single,
    Lines,
    Array,
    Gzip,
    Kpl,
}

const GROUP_SHAPES: [(GroupShape, f64); 5] = [
    (GroupShape::Single, 0.35),
    (GroupShape::Lines, 0.20),
    (GroupShape::Array, 0.10),
    (GroupShape::Gzip, 0.10),
    (GroupShape::Kpl, 0.25),
];

/// Share of CloudWatch payloads that travel inside a KPL aggregate.
const CLOUDWATCH_IN_KPL: f64 = 0.3;
/// Chance of a control message before a CloudWatch payload (besides the
/// first of each day).
const CONTROL_P: f64 = 0.002;

/// The fields of a day-file line that decide how it travels.
#[derive(Deserialize)]
struct LineProbe<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(rename = "messageType", borrow, default)]
    message_type: Option<Cow<'a, str>>,
    #[serde(rename = "logGroup", borrow, default)]
    log_group: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", default)]
    log_events: Option<Vec<TimeProbe>>,
}

#[derive(Deserialize)]
struct TimeProbe {
    #[serde(default)]
    timestamp: i64,
}

#[derive(Deserialize)]
struct TelemetryProbe<'a> {
    #[serde(borrow, default)]
    function: Option<Cow<'a, str>>,
    #[serde(default)]
    record: Option<serde_json::Value>,
}

/// User records waiting to become one KPL aggregate.
#[derive(Debug, Default)]
struct KplBuf {
    keys: Vec<String>,
    records: Vec<(u64, Vec<u8>)>,
    size: usize,
    units: u32,
    target: u32,
    events: u32,
    nested_cloudwatch: u32,
}

/// Turns day-file lines into Kinesis records (see the module documentation).
/// Deterministic: the same seed and lines give the same records.
pub struct Shaper {
    r: Rng,
    out: Vec<Entry>,
    /// The request id of the invocation whose native events are being collected.
    group_key: String,
    group: Vec<Vec<u8>>,
    kpl: KplBuf,
    /// A control message went out today.
    control_sent: bool,
}

impl Shaper {
    pub fn new(seed: u64) -> Shaper {
        let mut r = Rng::seed_from_u64(sub_seed(seed, 0x006b_696e_6573_6973));
        let target = int(&mut r, 2, 10) as u32;
        Shaper {
            r,
            out: Vec::new(),
            group_key: String::new(),
            group: Vec::new(),
            kpl: KplBuf {
                target,
                ..KplBuf::default()
            },
            control_sent: false,
        }
    }

    /// Records ready to be taken.
    pub fn ready(&self) -> usize {
        self.out.len()
    }

    /// Takes the records made so far.
    pub fn take(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.out)
    }

    /// One line of a day file.
    pub fn line(&mut self, raw: &[u8]) -> anyhow::Result<()> {
        let line = raw.trim_ascii();
        match line.first() {
            None => Ok(()),
            Some(b'[') => {
                self.flush_group()?;
                let items: Vec<TelemetryProbe<'_>> =
                    serde_json::from_slice(line).context("reading a Telemetry API batch")?;
                let request_id = items.iter().find_map(|i| {
                    i.record
                        .as_ref()
                        .and_then(|r| r.get("requestId"))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                });
                let function = items.iter().find_map(|i| i.function.as_deref());
                let key = request_id
                    .as_deref()
                    .or(function)
                    .unwrap_or("telemetry-api")
                    .to_string();
                self.emit(key, line.to_vec(), Info::plain(Shape::TelemetryApi, 1))
            }
            Some(b'{') => {
                let p: LineProbe<'_> =
                    serde_json::from_slice(line).context("reading a simulated line")?;
                if p.message_type.is_some() {
                    self.flush_group()?;
                    return self.cloudwatch(line, &p);
                }
                if let Some(rid) = p.request_id.as_deref() {
                    if rid != self.group_key {
                        self.flush_group()?;
                        self.group_key.clear();
                        self.group_key.push_str(rid);
                    }
                    self.group.push(line.to_vec());
                    if p.kind.as_deref() == Some("invocation") {
                        // the report closes the invocation
                        self.flush_group()?;
                    }
                    return Ok(());
                }
                self.flush_group()?;
                let key = p.function.as_deref().unwrap_or("fnwatch").to_string();
                self.emit(key, line.to_vec(), Info::plain(Shape::Native, 1))
            }
            Some(&b) => bail!("a simulated line starts with byte 0x{b:02X}"),
        }
    }

    /// The end of a day file: everything buffered goes out.
    pub fn end_day(&mut self) -> anyhow::Result<()> {
        self.flush_group()?;
        self.flush_kpl();
        self.control_sent = false;
        Ok(())
    }

    /// A record of `data`; gzip-compressed when it is too large as it is.
    fn emit(&mut self, key: String, data: Vec<u8>, info: Info) -> anyhow::Result<()> {
        let key = clamp_key(key);
        let data = if key.len() + data.len() > MAX_RECORD_BYTES && info.shape != Shape::Kpl {
            gzip(&data)
        } else {
            data
        };
        anyhow::ensure!(
            key.len() + data.len() <= MAX_RECORD_BYTES,
            "a simulated record of {} bytes does not fit in a Kinesis record (1 MiB)",
            data.len()
        );
        self.out.push(Entry { key, data, info });
        Ok(())
    }

    /// The native events of one invocation, in one of the shapes.
    fn flush_group(&mut self) -> anyhow::Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        let key = clamp_key(std::mem::take(&mut self.group_key));
        let lines = std::mem::take(&mut self.group);
        let n = lines.len() as u32;
        let single = |s: &mut Shaper, key: &str, lines: Vec<Vec<u8>>| -> anyhow::Result<()> {
            for l in lines {
                s.emit(key.to_string(), l, Info::plain(Shape::Native, 1))?;
            }
            Ok(())
        };
        match *weighted(&mut self.r, &GROUP_SHAPES) {
            GroupShape::Single => single(self, &key, lines),
            GroupShape::Lines if n > 1 => {
                let data = json_lines(&lines);
                if key.len() + data.len() > MAX_RECORD_BYTES {
                    return single(self, &key, lines);
                }
                self.emit(key, data, Info::plain(Shape::JsonLines, n))
            }
            GroupShape::Lines => single(self, &key, lines),
            GroupShape::Array => {
                let mut data =
                    Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
                data.push(b'[');
                for (i, l) in lines.iter().enumerate() {
                    if i > 0 {
                        data.push(b',');
                    }
                    data.extend_from_slice(l);
                }
                data.push(b']');
                if key.len() + data.len() > MAX_RECORD_BYTES {
                    return single(self, &key, lines);
                }
                self.emit(key, data, Info::plain(Shape::Array, n))
            }
            GroupShape::Gzip => {
                let data = gzip(&json_lines(&lines));
                if key.len() + data.len() > MAX_RECORD_BYTES {
                    return single(self, &key, lines);
                }
                self.emit(key, data, Info::plain(Shape::Gzip, n))
            }
            GroupShape::Kpl => {
                let u = super::util::unif(&mut self.r);
                let datas = if u < 0.7 || n == 1 {
                    lines.clone()
                } else if u < 0.9 {
                    vec![json_lines(&lines)]
                } else {
                    vec![gzip(&json_lines(&lines))]
                };
                if self.kpl_add(&key, datas, n, 0) {
                    Ok(())
                } else {
                    single(self, &key, lines)
                }
            }
        }
    }

    /// A CloudWatch Logs payload line: gzip, alone or inside a KPL aggregate,
    /// sometimes after a control message.
    fn cloudwatch(&mut self, line: &[u8], p: &LineProbe<'_>) -> anyhow::Result<()> {
        let group = p.log_group.as_deref().unwrap_or_default();
        let function = group.strip_prefix("/aws/lambda/").unwrap_or(group);
        let function = if function.is_empty() {
            "cloudwatch"
        } else {
            function
        }
        .to_string();
        let first_ms = p
            .log_events
            .as_ref()
            .and_then(|e| e.first())
            .map_or(0, |e| e.timestamp);
        if !self.control_sent || chance(&mut self.r, CONTROL_P) {
            self.control_sent = true;
            let control = serde_json::json!({
                "messageType": "CONTROL_MESSAGE",
                "owner": "CloudwatchLogs",
                "logGroup": "",
                "logStream": "",
                "subscriptionFilters": [],
                "logEvents": [{
                    "id": "",
                    "timestamp": first_ms,
                    "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."
                }]
            });
            let data = gzip(control.to_string().as_bytes());
            self.emit(
                "cwl-control".to_string(),
                data,
                Info::plain(Shape::Control, 0),
            )?;
        }
        let text = std::str::from_utf8(line).context("a CloudWatch payload is not UTF-8")?;
        let events = text.matches("REPORT RequestId: ").count() as u32;
        let data = gzip(line);
        if chance(&mut self.r, CLOUDWATCH_IN_KPL)
            && self.kpl_add(&function, vec![data.clone()], events, 1)
        {
            return Ok(());
        }
        self.emit(function, data, Info::plain(Shape::CloudWatch, events))
    }

    /// Adds one unit (an invocation's user records, or one CloudWatch
    /// payload) to the aggregate being built; false when it is too large for one.
    fn kpl_add(&mut self, key: &str, datas: Vec<Vec<u8>>, events: u32, cloudwatch: u32) -> bool {
        let size = key.len() + 4 + datas.iter().map(|d| d.len() + 16).sum::<usize>();
        if size > KPL_MAX_BYTES {
            return false;
        }
        if self.kpl.size + size > KPL_MAX_BYTES {
            self.flush_kpl();
        }
        let k = match self.kpl.keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                self.kpl.keys.push(key.to_string());
                self.kpl.keys.len() - 1
            }
        } as u64;
        for d in datas {
            self.kpl.records.push((k, d));
        }
        self.kpl.size += size;
        self.kpl.units += 1;
        self.kpl.events += events;
        self.kpl.nested_cloudwatch += cloudwatch;
        if self.kpl.units >= self.kpl.target {
            self.flush_kpl();
        }
        true
    }

    fn flush_kpl(&mut self) {
        if self.kpl.records.is_empty() {
            return;
        }
        let target = int(&mut self.r, 2, 10) as u32;
        let buf = std::mem::replace(
            &mut self.kpl,
            KplBuf {
                target,
                ..KplBuf::default()
            },
        );
        let keys: Vec<&str> = buf.keys.iter().map(String::as_str).collect();
        let records: Vec<KplRecord<'_>> = buf
            .records
            .iter()
            .map(|(k, d)| KplRecord {
                partition_key_index: *k,
                explicit_hash_key_index: None,
                data: d,
            })
            .collect();
        let data = encode_kpl(&keys, &[], &records);
        // The aggregate travels under its first user record's key, as the KPL does.
        let key = buf.keys.first().cloned().unwrap_or_default();
        // Well under the record limit (KPL_MAX_BYTES), so this cannot fail.
        self.out.push(Entry {
            key,
            data,
            info: Info {
                shape: Shape::Kpl,
                events: buf.events,
                user_records: buf.records.len() as u32,
                nested_cloudwatch: buf.nested_cloudwatch,
            },
        });
    }
}

fn clamp_key(key: String) -> String {
    if key.is_empty() {
        return "fnwatch".to_string();
    }
    match key.char_indices().nth(MAX_KEY_CHARS) {
        Some((i, _)) => key[..i].to_string(),
        None => key,
    }
}

fn json_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    data
}

/// Gzip with a header without time: the same bytes every run.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::new(6));
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(data);
    gz.finish().unwrap_or_default()
}

/// Reads the day files in order and hands their records to `emit` in chunks,
/// at most `max_records` of them; stops early when `emit` returns false.
/// Returns the records handed over.
pub fn shape_files(
    files: &[PathBuf],
    seed: u64,
    max_records: Option<u64>,
    mut emit: impl FnMut(Vec<Entry>) -> bool,
) -> anyhow::Result<u64> {
    let mut shaper = Shaper::new(seed);
    let cap = max_records.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    // Hands over what is ready; false when done (cap reached or receiver gone).
    let mut hand_over = |shaper: &mut Shaper, sent: &mut u64| -> bool {
        let mut chunk = shaper.take();
        let room = cap - *sent;
        if chunk.len() as u64 > room {
            chunk.truncate(room as usize);
        }
        *sent += chunk.len() as u64;
        if !chunk.is_empty() && !emit(chunk) {
            return false;
        }
        *sent < cap
    };
    if cap == 0 {
        return Ok(0);
    }
    let mut line = Vec::with_capacity(1 << 16);
    for path in files {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut rd = BufReader::with_capacity(1 << 20, MultiGzDecoder::new(file));
        let mut n = 0u64;
        loop {
            line.clear();
            let got = rd
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", path.display()))?;
            if got == 0 {
                break;
            }
            n += 1;
            shaper
                .line(&line)
                .with_context(|| format!("{}:{n}", path.display()))?;
            if shaper.ready() >= CHUNK && !hand_over(&mut shaper, &mut sent) {
                return Ok(sent);
            }
        }
        shaper.end_day()?;
        if !hand_over(&mut shaper, &mut sent) {
            return Ok(sent);
        }
    }
    Ok(sent)
}

// ---- KPL framing ------------------------------------------------------------

/// One user record of a KPL aggregate.
#[derive(Debug, Clone, Copy)]
pub struct KplRecord<'a> {
    pub partition_key_index: u64,
    pub explicit_hash_key_index: Option<u64>,
    pub data: &'a [u8],
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A varint field (wire type 0).
fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

/// A KPL aggregate: magic, protobuf `AggregatedRecord`
/// (`repeated string partition_key_table = 1; repeated string
/// explicit_hash_key_table = 2; repeated Record records = 3;` with `Record`
/// = `required uint64 partition_key_index = 1; optional uint64
/// explicit_hash_key_index = 2; required bytes data = 3;`), MD5 of the protobuf.
/// Fields in field order, as prost and the KPL write them.
pub fn encode_kpl(
    partition_keys: &[&str],
    explicit_hash_keys: &[&str],
    records: &[KplRecord<'_>],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        records.iter().map(|r| r.data.len() + 16).sum::<usize>()
            + partition_keys.iter().map(|k| k.len() + 4).sum::<usize>(),
    );
    for k in partition_keys {
        put_bytes_field(&mut body, 1, k.as_bytes());
    }
    for k in explicit_hash_keys {
        put_bytes_field(&mut body, 2, k.as_bytes());
    }
    let mut rec = Vec::new();
    for r in records {
        rec.clear();
        put_varint_field(&mut rec, 1, r.partition_key_index);
        if let Some(e) = r.explicit_hash_key_index {
            put_varint_field(&mut rec, 2, e);
        }
        put_bytes_field(&mut rec, 3, r.data);
        put_bytes_field(&mut body, 3, &rec);
    }
    let mut out = Vec::with_capacity(KPL_MAGIC.len() + body.len() + 16);
    out.extend_from_slice(&KPL_MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&md5(&body));
    out
}

/// MD5 (RFC 1321), for the KPL trailer only.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut block = |chunk: &[u8]| {
        let mut m = [0u32; 16];
        for (i, w) in m.iter_mut().enumerate() {
            *w = u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    };
    let mut chunks = data.chunks_exact(64);
    for chunk in &mut chunks {
        block(chunk);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_le_bytes());
    for chunk in tail[..tail_len].chunks_exact(64) {
        block(chunk);
    }
    let mut out = [0u8; 16];
    for (i, w) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

// ---- putting ----------------------------------------------------------------

/// How to put.
#[derive(Debug, Clone)]
pub struct PutConfig {
    pub stream: String,
    /// Where the stream is, for error messages (an endpoint URL or a region).
    pub endpoint: String,
    /// Records per second; 0: as fast as the stream takes them.
    pub rate: u64,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Consecutive failed calls (throttled, transient) before giving up.
    pub max_call_attempts: u32,
    /// Times one entry may come back failed before giving up.
    pub max_entry_attempts: u32,
}

impl PutConfig {
    pub fn new(stream: impl Into<String>, endpoint: impl Into<String>, rate: u64) -> PutConfig {
        PutConfig {
            stream: stream.into(),
            endpoint: endpoint.into(),
            rate,
            backoff_base: Duration::from_millis(50),
            backoff_cap: Duration::from_secs(5),
            max_call_attempts: 15,
            max_entry_attempts: 20,
        }
    }

    /// `base * 2^(attempt-1)`, capped, with equal jitter (half fixed, half random).
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let half = exp.min(self.backoff_cap) / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// What was put.
#[derive(Debug, Clone, Default)]
pub struct PutStats {
    /// Kinesis records stored.
    pub records: u64,
    /// Events they carry.
    pub events: u64,
    /// Bytes of their data.
    pub bytes: u64,
    /// `PutRecords` calls made.
    pub calls: u64,
    /// Entries that came back failed and were put again.
    pub entry_retries: u64,
    /// Whole calls that were throttled or failed transiently and were made again.
    pub call_retries: u64,
    /// Records stored per shape.
    pub shapes: BTreeMap<Shape, u64>,
    pub kpl_user_records: u64,
    pub kpl_cloudwatch: u64,
}

impl PutStats {
    fn stored(&mut self, e: &(String, Vec<u8>), info: &Info) {
        self.records += 1;
        self.events += u64::from(info.events);
        self.bytes += e.1.len() as u64;
        *self.shapes.entry(info.shape).or_default() += 1;
        self.kpl_user_records += u64::from(info.user_records);
        self.kpl_cloudwatch += u64::from(info.nested_cloudwatch);
    }
}

/// An entry waiting to be put.
#[derive(Debug)]
struct Queued {
    seq: u64,
    attempts: u32,
    key: String,
    data: Vec<u8>,
    info: Info,
}

/// The queue of one partition key.
#[derive(Debug, Default)]
struct KeyQueue {
    /// Its head is in a call that has not been settled.
    busy: bool,
    q: VecDeque<Queued>,
}

/// Entries waiting to be put, one queue per partition key. A batch takes at
/// most the head of each key's queue, oldest heads first; a key whose head
/// is in flight (or waiting to be put again) offers nothing more until the
/// head is stored, so a partial failure never lets a later record of a key
/// overtake an earlier one.
#[derive(Debug, Default)]
struct Pending {
    keys: HashMap<String, KeyQueue>,
    /// The sequence number of each ready key's head entry, and the key.
    heads: BTreeMap<u64, String>,
    /// Entries not stored yet, in flight or not.
    len: usize,
    next_seq: u64,
}

impl Pending {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, e: Entry) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let kq = self.keys.entry(e.key.clone()).or_default();
        if !kq.busy && kq.q.is_empty() {
            self.heads.insert(seq, e.key.clone());
        }
        kq.q.push_back(Queued {
            seq,
            attempts: 0,
            key: e.key,
            data: e.data,
            info: e.info,
        });
        self.len += 1;
    }

    /// The next call's entries: ready heads, oldest first, at most
    /// `max_entries` and `max_bytes` (one entry even if it is larger).
    fn take_batch(&mut self, max_entries: usize, max_bytes: usize) -> Vec<Queued> {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_entries {
            let Some((_, key)) = self.heads.first_key_value() else {
                break;
            };
            let Some(kq) = self.keys.get_mut(key) else {
                self.heads.pop_first();
                continue;
            };
            let size = kq.q.front().map_or(0, |h| h.key.len() + h.data.len());
            if !batch.is_empty() && bytes + size > max_bytes {
                break;
            }
            self.heads.pop_first();
            if let Some(head) = kq.q.pop_front() {
                kq.busy = true;
                bytes += size;
                batch.push(head);
            }
        }
        batch
    }

    /// An in-flight entry was stored: the next entry of its key becomes ready.
    fn done(&mut self, key: &str) {
        let Some(kq) = self.keys.get_mut(key) else {
            return;
        };
        kq.busy = false;
        self.len -= 1;
        match kq.q.front() {
            Some(next) => {
                self.heads.insert(next.seq, key.to_string());
            }
            None => {
                self.keys.remove(key);
            }
        }
    }
}

/// Whether an entry's error code means retrying cannot help.
fn fatal_entry_code(code: &str) -> bool {
    (code.starts_with("KMS") && code != "KMSThrottlingException")
        || matches!(
            code,
            "AccessDeniedException" | "ValidationException" | "InvalidArgumentException"
        )
}

/// Puts every record `rx` delivers onto the stream (see the module
/// documentation); `progress` is called after every call.
pub async fn put_all<C: KinesisApi>(
    client: &C,
    cfg: &PutConfig,
    mut rx: mpsc::Receiver<Vec<Entry>>,
    mut progress: impl FnMut(&PutStats),
) -> anyhow::Result<PutStats> {
    let mut pending = Pending::default();
    let mut stats = PutStats::default();
    let mut open = true;
    let started = tokio::time::Instant::now();
    // Entries sent, retries included: what the rate paces.
    let mut attempted = 0u64;
    let mut failed_calls = 0u32;
    // The entries of the last call to put again.
    let mut retry: Vec<Queued> = Vec::new();
    let max_entries = if cfg.rate == 0 {
        MAX_BATCH_ENTRIES
    } else {
        cfg.rate.clamp(1, MAX_BATCH_ENTRIES as u64) as usize
    };
    let whose = || format!("Kinesis stream `{}` at {}", cfg.stream, cfg.endpoint);
    loop {
        while open && pending.len() < LOW_WATER {
            let got = if pending.len() == 0 {
                rx.recv().await
            } else {
                match rx.try_recv() {
                    Ok(chunk) => Some(chunk),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match got {
                Some(chunk) => chunk.into_iter().for_each(|e| pending.push(e)),
                None => open = false,
            }
        }
        if pending.len() == 0 {
            break;
        }
        // The failed entries of the last call go again on their own, in
        // their order; new entries wait until they are stored.
        let batch = if retry.is_empty() {
            pending.take_batch(max_entries, MAX_BATCH_BYTES)
        } else {
            std::mem::take(&mut retry)
        };
        if cfg.rate > 0 {
            let due = started + Duration::from_secs_f64(attempted as f64 / cfg.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        attempted += batch.len() as u64;
        let mut metas = Vec::with_capacity(batch.len());
        let mut entries = Vec::with_capacity(batch.len());
        for q in batch {
            metas.push((q.seq, q.attempts, q.info));
            entries.push((q.key, q.data));
        }
        let result = client.put_records(&cfg.stream, &entries).await;
        stats.calls += 1;
        let again =
            |(key, data): (String, Vec<u8>), (seq, attempts, info): (u64, u32, Info)| Queued {
                seq,
                attempts,
                key,
                data,
                info,
            };
        match result {
            Ok(outcomes) => {
                if outcomes.len() != entries.len() {
                    bail!(
                        "PutRecords on {} answered {} outcomes for {} records",
                        whose(),
                        outcomes.len(),
                        entries.len()
                    );
                }
                failed_calls = 0;
                let mut worst = 0u32;
                for ((entry, mut meta), outcome) in entries.into_iter().zip(metas).zip(outcomes) {
                    match outcome {
                        None => {
                            stats.stored(&entry, &meta.2);
                            pending.done(&entry.0);
                        }
                        Some(code) => {
                            if fatal_entry_code(&code) {
                                bail!(
                                    "PutRecords on {} rejected a record with partition key `{}`: {code}",
                                    whose(),
                                    entry.0
                                );
                            }
                            meta.1 += 1;
                            if meta.1 >= cfg.max_entry_attempts {
                                bail!(
                                    "PutRecords on {} failed the record with partition key `{}` {} times (last: {code}); giving up",
                                    whose(),
                                    entry.0,
                                    meta.1
                                );
                            }
                            worst = worst.max(meta.1);
                            stats.entry_retries += 1;
                            retry.push(again(entry, meta));
                        }
                    }
                }
                progress(&stats);
                if worst > 0 {
                    tracing::debug!(
                        stream = %cfg.stream,
                        failed = retry.len(),
                        "partial PutRecords failure; re-putting the failed records"
                    );
                    tokio::time::sleep(cfg.backoff(worst)).await;
                }
            }
            Err(e @ (KinesisError::Throttled(_) | KinesisError::Transient(_))) => {
                failed_calls += 1;
                if failed_calls >= cfg.max_call_attempts {
                    bail!(
                        "PutRecords on {} failed {failed_calls} times in a row; giving up: {e}",
                        whose()
                    );
                }
                stats.call_retries += 1;
                tracing::warn!(stream = %cfg.stream, attempt = failed_calls, "PutRecords failed, retrying: {e}");
                retry = entries
                    .into_iter()
                    .zip(metas)
                    .map(|(e, m)| again(e, m))
                    .collect();
                tokio::time::sleep(cfg.backoff(failed_calls)).await;
            }
            Err(KinesisError::NotFound(e)) => {
                bail!("{} does not exist: {e}", whose());
            }
            Err(e) => bail!("PutRecords on {} failed: {e}", whose()),
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use chrono::{TimeZone, Utc};
    use fnwatch_ingest::decode::{DecodeState, decode_record};
    use fnwatch_ingest::event::{EventType, Position, VecSink};
    use fnwatch_ingest::sources::kinesis::{
        FaultyKinesis, IteratorStart, PutOutcome, RecordsPage, ShardInfo,
    };

    use super::*;

    const DNS: &str = r#"{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"orders-api","request_id":"r-1","query":"dynamodb.us-east-1.amazonaws.com","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10"]}"#;
    const INV: &str = r#"{"type":"invocation","time":"2026-11-23T10:00:00.412Z","function":"orders-api","request_id":"r-1","duration_ms":84.2,"status":"success"}"#;
    const CW: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/payments-worker","logStream":"2026/11/23/[$LATEST]abc","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1795428000000,"message":"START RequestId: r-9 Version: $LATEST\n"},{"id":"2","timestamp":1795428000150,"message":"END RequestId: r-9\n"},{"id":"3","timestamp":1795428000150,"message":"REPORT RequestId: r-9\tDuration: 152.48 ms\tBilled Duration: 153 ms\tMemory Size: 512 MB\tMax Memory Used: 120 MB\t\n"}]}"#;

    fn pos() -> Position {
        Position::kinesis(
            Arc::from("fn-telemetry"),
            Arc::from("shardId-000000000000"),
            "1".to_string(),
        )
    }

    fn decode_with(state: &mut DecodeState, bytes: &[u8]) -> VecSink {
        let mut sink = VecSink::default();
        decode_record(bytes, &pos(), state, &mut sink);
        sink
    }

    fn decode(bytes: &[u8]) -> VecSink {
        decode_with(&mut DecodeState::default(), bytes)
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn md5_matches_rfc_1321() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"The quick brown fox jumps over the lazy dog",
                "9e107d9d372bb6826bd81d3542a419d6",
            ),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                hex(&md5(input)),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Lengths around the padding boundaries (55, 56, 63, 64, 119, 120 bytes)
        // must all give digests the decoder accepts; checked through the KPL below.
        for n in [55usize, 56, 63, 64, 65, 119, 120, 128] {
            let data = vec![b'x'; n];
            let agg = encode_kpl(
                &["k"],
                &[],
                &[KplRecord {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: &data,
                }],
            );
            let sink = decode(&agg);
            assert!(
                sink.dead.iter().all(|d| !d.reason.contains("digest")),
                "{n}: {:?}",
                sink.dead
            );
        }
    }

    #[test]
    fn varints() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, 16_384, u64::MAX] {
            out.clear();
            put_varint(&mut out, v);
            let mut back = 0u64;
            for (i, b) in out.iter().enumerate() {
                back |= u64::from(b & 0x7f) << (7 * i);
            }
            assert_eq!(back, v);
            assert!(out[..out.len() - 1].iter().all(|b| b & 0x80 != 0));
            assert_eq!(out[out.len() - 1] & 0x80, 0);
        }
        out.clear();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    /// A minimal protobuf reader of `AggregatedRecord`, to compare with the
    /// fixture an independent encoder wrote.
    fn read_varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let x = b[*i];
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    fn read_len<'a>(b: &'a [u8], i: &mut usize) -> &'a [u8] {
        let n = read_varint(b, i) as usize;
        let s = &b[*i..*i + n];
        *i += n;
        s
    }

    type Parsed = (Vec<String>, Vec<String>, Vec<(u64, Option<u64>, Vec<u8>)>);

    fn parse_aggregate(bytes: &[u8]) -> Parsed {
        let body = &bytes[4..bytes.len() - 16];
        let (mut pks, mut ehks, mut recs) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while i < body.len() {
            match read_varint(body, &mut i) {
                0x0a => pks.push(String::from_utf8(read_len(body, &mut i).to_vec()).unwrap()),
                0x12 => ehks.push(String::from_utf8(read_len(body, &mut i).to_vec()).unwrap()),
                0x1a => {
                    let r = read_len(body, &mut i);
                    let (mut pk, mut ehk, mut data) = (0, None, Vec::new());
                    let mut j = 0;
                    while j < r.len() {
                        match read_varint(r, &mut j) {
                            0x08 => pk = read_varint(r, &mut j),
                            0x10 => ehk = Some(read_varint(r, &mut j)),
                            0x1a => data = read_len(r, &mut j).to_vec(),
                            t => panic!("unexpected record tag {t:#x}"),
                        }
                    }
                    recs.push((pk, ehk, data));
                }
                t => panic!("unexpected tag {t:#x}"),
            }
        }
        (pks, ehks, recs)
    }

    /// Re-encoding the ingest crate's fixtures (written by an independent
    /// Python encoder) gives the same bytes, MD5 trailer included.
    #[test]
    fn kpl_encoder_reproduces_the_fixtures() {
        let fixtures: [&[u8]; 3] = [
            include_bytes!("../../ingest/tests/fixtures/kpl/native.kpl.bin"),
            include_bytes!("../../ingest/tests/fixtures/kpl/cloudwatch_gzip.kpl.bin"),
            include_bytes!("../../ingest/tests/fixtures/kpl/mixed.kpl.bin"),
        ];
        for fixture in fixtures {
            let (pks, ehks, recs) = parse_aggregate(fixture);
            let pks: Vec<&str> = pks.iter().map(String::as_str).collect();
            let ehks: Vec<&str> = ehks.iter().map(String::as_str).collect();
            let recs: Vec<KplRecord<'_>> = recs
                .iter()
                .map(|(pk, ehk, data)| KplRecord {
                    partition_key_index: *pk,
                    explicit_hash_key_index: *ehk,
                    data,
                })
                .collect();
            assert_eq!(encode_kpl(&pks, &ehks, &recs), fixture);
        }
    }

    /// The encoder's aggregates decode, through the ingest decoder, to the
    /// events of their user records, in order, nested gzip CloudWatch
    /// payloads included.
    #[test]
    fn kpl_round_trips_through_the_decoder() {
        let lines = format!("{DNS}\n{INV}\n");
        let gz_cw = gzip(CW.as_bytes());
        let gz_lines = gzip(lines.as_bytes());
        let big = "x".repeat(300); // a user record longer than 127 bytes: 2-byte lengths
        let big_dns = DNS.replace("\"qtype\"", &format!("\"pad\":\"{big}\",\"qtype\""));
        let datas: [&[u8]; 6] = [
            DNS.as_bytes(),
            INV.as_bytes(),
            &gz_cw,
            lines.as_bytes(),
            &gz_lines,
            big_dns.as_bytes(),
        ];
        let recs: Vec<KplRecord<'_>> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| KplRecord {
                partition_key_index: (i % 2) as u64,
                explicit_hash_key_index: None,
                data: d,
            })
            .collect();
        let agg = encode_kpl(&["r-1", "payments-worker"], &[], &recs);
        assert!(agg.starts_with(&KPL_MAGIC));
        let sink = decode(&agg);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let got: Vec<(EventType, String)> = sink
            .events
            .iter()
            .map(|e| (e.event_type, e.function.to_string()))
            .collect();
        let o = || "orders-api".to_string();
        assert_eq!(
            got,
            vec![
                (EventType::Dns, o()),
                (EventType::Invocation, o()),
                (EventType::Invocation, "payments-worker".to_string()),
                (EventType::Dns, o()),
                (EventType::Invocation, o()),
                (EventType::Dns, o()),
                (EventType::Invocation, o()),
                (EventType::Dns, o()),
            ]
        );
        assert_eq!(sink.events[2].duration_ms, Some(152.48));
        assert_eq!(sink.events[2].request_id.as_deref(), Some("r-9"));

        // An aggregate inside an aggregate decodes too.
        let inner = encode_kpl(&["r-1"], &[], &recs[..1]);
        let outer = encode_kpl(
            &["r-1"],
            &[],
            &[
                KplRecord {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: &inner,
                },
                recs[1],
            ],
        );
        let sink = decode(&outer);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 2);
    }

    #[test]
    fn shaper_lines_decode_to_their_events() {
        let mut s = Shaper::new(3);
        let inv2 = INV.replace("r-1", "r-2");
        let dns2 = DNS.replace("r-1", "r-2");
        let config = r#"{"type":"function_config","time":"2026-11-23T00:00:00.100Z","function":"orders-api","runtime":"python3.12"}"#;
        let tapi = r#"[{"time":"2026-11-23T10:00:00.000Z","type":"platform.start","function":"webhook-relay","record":{"requestId":"r-7","version":"$LATEST"}},{"time":"2026-11-23T10:00:00.050Z","type":"platform.report","function":"webhook-relay","record":{"requestId":"r-7","status":"success","metrics":{"durationMs":50.0,"billedDurationMs":51,"memorySizeMB":128,"maxMemoryUsedMB":40}}}]"#;
        let mut want_events = 0;
        for _ in 0..200 {
            for l in [config, DNS, DNS, INV, CW, &dns2, &inv2, tapi] {
                s.line(format!("{l}\n").as_bytes()).unwrap();
            }
            want_events += 8;
        }
        s.end_day().unwrap();
        let out = s.take();
        let mut state = DecodeState::default();
        let mut events = 0;
        let mut shapes = HashSet::new();
        for e in &out {
            assert!(e.key.len() + e.data.len() <= MAX_RECORD_BYTES);
            let sink = decode_with(&mut state, &e.data);
            assert!(sink.dead.is_empty(), "{:?} {:?}", e.info, sink.dead);
            let n = sink
                .events
                .iter()
                .filter(|e| e.event_type != EventType::Log)
                .count();
            assert_eq!(n as u32, e.info.events, "{:?}", e.info);
            events += n;
            shapes.insert(e.info.shape);
            // the key is the invocation's request id, or the function
            match e.info.shape {
                Shape::Kpl => {}
                Shape::CloudWatch => assert_eq!(e.key, "payments-worker"),
                Shape::Control => assert_eq!(sink.skipped, vec!["cloudwatch control message"]),
                Shape::TelemetryApi => assert_eq!(e.key, "r-7"),
                _ => {
                    let ids: HashSet<_> = sink
                        .events
                        .iter()
                        .map(|ev| ev.request_id.as_deref().unwrap_or(&ev.function).to_string())
                        .collect();
                    assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec![e.key.clone()]);
                }
            }
        }
        assert_eq!(events, want_events);
        assert_eq!(shapes.len(), Shape::ALL.len(), "{shapes:?}");
        assert!(out.iter().any(|e| e.info.nested_cloudwatch > 0));
        // Deterministic per seed.
        let mut again = Shaper::new(3);
        for _ in 0..200 {
            for l in [config, DNS, DNS, INV, CW, &dns2, &inv2, tapi] {
                again.line(l.as_bytes()).unwrap();
            }
        }
        again.end_day().unwrap();
        assert_eq!(again.take(), out);
    }

    /// A small simulation, shaped for Kinesis: every record decodes without
    /// a dead letter and the lake gets exactly the simulated events.
    #[test]
    fn simulated_days_shape_into_decodable_records() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::sim::SimConfig {
            seed: 5,
            start: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
            days: 2,
            invocations_per_day: 2_500,
            attack_days: 1,
            attacks_per_class: 3,
            hard_cases: true,
        };
        let sum = crate::sim::generate(&cfg, dir.path(), |_| {}).unwrap();
        let mut entries = Vec::new();
        let n = shape_files(&sum.files, 5, None, |chunk| {
            entries.extend(chunk);
            true
        })
        .unwrap();
        assert_eq!(n, entries.len() as u64);
        let mut state = DecodeState::default();
        let mut events = 0u64;
        let mut by_shape: BTreeMap<Shape, u64> = BTreeMap::new();
        for e in &entries {
            assert!(e.key.len() + e.data.len() <= MAX_RECORD_BYTES);
            assert!(!e.key.is_empty() && e.key.chars().count() <= MAX_KEY_CHARS);
            let sink = decode_with(&mut state, &e.data);
            assert!(sink.dead.is_empty(), "{:?}: {:?}", e.info, sink.dead);
            let n = sink
                .events
                .iter()
                .filter(|e| e.event_type != EventType::Log)
                .count() as u64;
            assert_eq!(n, u64::from(e.info.events), "{:?}", e.info);
            events += n;
            *by_shape.entry(e.info.shape).or_default() += 1;
        }
        assert_eq!(events, sum.events);
        for shape in Shape::ALL {
            assert!(
                by_shape.get(&shape).copied().unwrap_or(0) > 0,
                "no {shape:?}: {by_shape:?}"
            );
        }
        assert!(entries.iter().any(|e| e.info.nested_cloudwatch > 0));

        // The cap stops at exactly that many records, and the same seed gives the same records.
        let mut capped = Vec::new();
        let n = shape_files(&sum.files, 5, Some(1_234), |chunk| {
            capped.extend(chunk);
            true
        })
        .unwrap();
        assert_eq!(n, 1_234);
        assert_eq!(capped[..], entries[..1_234]);
    }

    // ---- batching and retries --------------------------------------------------

    fn entry(key: &str, n: usize, size: usize) -> Entry {
        let mut data = format!("{key}:{n}:").into_bytes();
        data.resize(size.max(data.len()), b'.');
        Entry {
            key: key.to_string(),
            data,
            info: Info::plain(Shape::Native, 1),
        }
    }

    fn id(data: &[u8]) -> (String, usize) {
        let s = String::from_utf8_lossy(data);
        let mut parts = s.split(':');
        let key = parts.next().unwrap().to_string();
        let n = parts.next().unwrap().parse().unwrap();
        (key, n)
    }

    type Stored = Mutex<Vec<(String, Vec<u8>)>>;

    /// A stream that stores what it is given, fails chosen entries and calls,
    /// and records every call's size.
    #[derive(Default)]
    struct FakeStream {
        stored: Arc<Stored>,
        calls: Arc<Mutex<Vec<(usize, usize)>>>,
        /// How many more times an entry (by key and number) fails.
        fail_entries: Mutex<HashMap<(String, usize), u32>>,
        /// Calls (1-based) that fail whole.
        fail_calls: HashMap<usize, KinesisError>,
    }

    impl KinesisApi for FakeStream {
        async fn list_shards(&self, _: &str) -> Result<Vec<ShardInfo>, KinesisError> {
            Ok(Vec::new())
        }
        async fn get_shard_iterator(
            &self,
            _: &str,
            _: &str,
            _: &IteratorStart,
        ) -> Result<String, KinesisError> {
            Err(KinesisError::Fatal("not here".into()))
        }
        async fn get_records(&self, _: &str, _: i32) -> Result<RecordsPage, KinesisError> {
            Err(KinesisError::Fatal("not here".into()))
        }
        async fn put_records(
            &self,
            _stream: &str,
            entries: &[(String, Vec<u8>)],
        ) -> Result<Vec<PutOutcome>, KinesisError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                calls.push((
                    entries.len(),
                    entries.iter().map(|(k, d)| k.len() + d.len()).sum(),
                ));
                calls.len()
            };
            if let Some(e) = self.fail_calls.get(&call) {
                return Err(e.clone());
            }
            let mut fail = self.fail_entries.lock().unwrap();
            let mut stored = self.stored.lock().unwrap();
            Ok(entries
                .iter()
                .map(|(k, d)| {
                    if let Some(left) = fail.get_mut(&id(d)).filter(|n| **n > 0) {
                        *left -= 1;
                        Some("ProvisionedThroughputExceededException".to_string())
                    } else {
                        stored.push((k.clone(), d.clone()));
                        None
                    }
                })
                .collect())
        }
    }

    fn fast(rate: u64) -> PutConfig {
        PutConfig {
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(4),
            ..PutConfig::new("fn-telemetry", "http://localhost:4567", rate)
        }
    }

    async fn put<C: KinesisApi>(
        stream: &C,
        cfg: &PutConfig,
        entries: Vec<Entry>,
    ) -> anyhow::Result<PutStats> {
        let (tx, rx) = mpsc::channel(4);
        let feeder = tokio::spawn(async move {
            for chunk in entries.chunks(333) {
                if tx.send(chunk.to_vec()).await.is_err() {
                    break;
                }
            }
        });
        let stats = put_all(stream, cfg, rx, |_| {}).await;
        feeder.await.unwrap();
        stats
    }

    #[test]
    fn batches_hold_at_most_500_entries_and_5_mib() {
        // Many small entries with distinct keys: full batches of 500.
        let mut p = Pending::default();
        for i in 0..1_234 {
            p.push(entry(&format!("k{i}"), 0, 10));
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let b = p.take_batch(MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
            let n = b.len();
            for q in b {
                let key = q.key.clone();
                p.done(&key);
            }
            (n > 0).then_some(n)
        })
        .collect();
        assert_eq!(sizes, vec![500, 500, 234]);
        assert_eq!(p.len(), 0);

        // Large entries: at most 5 MiB of data and keys per call.
        let mut p = Pending::default();
        for i in 0..12 {
            p.push(entry(&format!("big{i}"), 0, 1_000_000));
        }
        let mut sizes = Vec::new();
        loop {
            let b = p.take_batch(MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
            if b.is_empty() {
                break;
            }
            let bytes: usize = b.iter().map(|q| q.key.len() + q.data.len()).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
            sizes.push(b.len());
            for q in b {
                let key = q.key.clone();
                p.done(&key);
            }
        }
        assert_eq!(sizes, vec![5, 5, 2]);

        // One key: one entry per call, in order.
        let mut p = Pending::default();
        for i in 0..3 {
            p.push(entry("same", i, 10));
        }
        for i in 0..3 {
            let b = p.take_batch(MAX_BATCH_ENTRIES, MAX_BATCH_BYTES);
            assert_eq!(b.len(), 1);
            assert_eq!(id(&b[0].data), ("same".to_string(), i));
            assert!(p.take_batch(MAX_BATCH_ENTRIES, MAX_BATCH_BYTES).is_empty());
            p.done("same");
        }
    }

    #[tokio::test]
    async fn calls_respect_the_limits_through_put_all() {
        let stream = FakeStream::default();
        let mut entries: Vec<Entry> = (0..1_500)
            .map(|i| entry(&format!("k{}", i % 700), i, 100))
            .collect();
        entries.extend((0..8).map(|i| entry(&format!("big{i}"), i, 900_000)));
        let stats = put(&stream, &fast(0), entries).await.unwrap();
        assert_eq!(stats.records, 1_508);
        {
            let calls = stream.calls.lock().unwrap();
            assert!(
                calls
                    .iter()
                    .all(|&(n, b)| n <= MAX_BATCH_ENTRIES && b <= MAX_BATCH_BYTES),
                "{calls:?}"
            );
            assert!(
                calls.iter().any(|&(n, _)| n == MAX_BATCH_ENTRIES),
                "{calls:?}"
            );
        }
        assert_eq!(stored_ids(&stream.stored).len(), 1_508);

        // --rate: batches of at most a second's worth, paced. 1,000 records
        // at 400/s: calls at 0 s, 1 s and 2 s.
        let stream = FakeStream::default();
        let entries: Vec<Entry> = (0..1_000).map(|i| entry(&format!("k{i}"), i, 10)).collect();
        let started = std::time::Instant::now();
        let stats = put(&stream, &fast(400), entries).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(stats.records, 1_000);
        assert!(
            stream.calls.lock().unwrap().iter().all(|&(n, _)| n <= 400),
            "{:?}",
            stream.calls
        );
        assert!((1.9..5.0).contains(&secs), "{secs} s");
    }

    fn stored_ids(stored: &Stored) -> Vec<(String, usize)> {
        stored
            .lock()
            .unwrap()
            .iter()
            .map(|(k, d)| {
                let (key, n) = id(d);
                assert_eq!(&key, k, "stored under its own key");
                (key, n)
            })
            .collect()
    }

    /// Every record stored once, each key's records in order.
    fn assert_once_in_order(ids: &[(String, usize)], total: usize) {
        assert_eq!(ids.len(), total, "every record stored once");
        let unique: HashSet<_> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "no record stored twice");
        let mut last: HashMap<String, usize> = HashMap::new();
        for (key, n) in ids {
            let want = last.get(key).map_or(0, |p| p + 1);
            assert_eq!(*n, want, "key {key} out of order");
            last.insert(key.clone(), *n);
        }
    }

    /// The binary's fault knob (`FNWATCH_KINESIS_FAULTS=fail_put_every=7`)
    /// fails entries by position: with calls of seven entries the same
    /// position would fail every time if failed entries went back into full
    /// calls. Re-put on their own, every record gets through, once, in order.
    #[tokio::test]
    async fn survives_the_fail_put_every_fault_knob() {
        for (keys, per_key) in [(7usize, 30usize), (1_000, 5)] {
            let fake = FakeStream::default();
            let stored = fake.stored.clone();
            let faulty = FaultyKinesis::from_spec(fake, "fail_put_every=7").unwrap();
            let entries: Vec<Entry> = (0..keys * per_key)
                .map(|i| entry(&format!("req-{}", i % keys), i / keys, 20))
                .collect();
            let stats = put(&faulty, &fast(0), entries).await.unwrap();
            assert_eq!(stats.records, (keys * per_key) as u64);
            assert!(
                stats.entry_retries >= (keys * per_key / 7) as u64,
                "{stats:?}"
            );
            assert_once_in_order(&stored_ids(&stored), keys * per_key);
        }
    }

    /// Partial failures: only the failed entries are put again, every record
    /// is stored exactly once, and each key's records are stored in order.
    /// Whole-call throttles and transient errors are retried.
    #[tokio::test]
    async fn partial_failures_retry_only_the_failed_entries_in_order() {
        let keys = 40;
        let per_key = 25;
        let entries: Vec<Entry> = (0..keys * per_key)
            .map(|i| entry(&format!("req-{}", i % keys), i / keys, 50))
            .collect();
        let mut fail = HashMap::new();
        let mut injected = 0;
        for i in 0..keys * per_key {
            // about one entry in six fails once, one in twenty-five three times
            let times = if i % 25 == 7 {
                3
            } else if i % 6 == 1 {
                1
            } else {
                0
            };
            if times > 0 {
                fail.insert((format!("req-{}", i % keys), i / keys), times);
                injected += times;
            }
        }
        let stream = FakeStream {
            fail_entries: Mutex::new(fail),
            fail_calls: HashMap::from([
                (
                    2,
                    KinesisError::Throttled("ProvisionedThroughputExceededException".into()),
                ),
                (5, KinesisError::Transient("connection reset".into())),
                (6, KinesisError::Transient("connection reset".into())),
            ]),
            ..FakeStream::default()
        };
        let stats = put(&stream, &fast(0), entries).await.unwrap();
        assert_eq!(stats.records, (keys * per_key) as u64);
        assert_eq!(stats.events, (keys * per_key) as u64);
        assert_eq!(stats.entry_retries, injected as u64);
        assert_eq!(stats.call_retries, 3);
        assert_once_in_order(&stored_ids(&stream.stored), keys * per_key);
        // Each call re-sent only what had failed: entries sent = stored + failures.
        let sent: usize = stream.calls.lock().unwrap().iter().map(|c| c.0).sum();
        let whole_failed: usize = [2usize, 5, 6]
            .iter()
            .map(|c| stream.calls.lock().unwrap()[c - 1].0)
            .sum();
        assert_eq!(sent, keys * per_key + injected as usize + whole_failed);
    }

    #[tokio::test]
    async fn errors_that_retrying_cannot_fix_stop_with_the_stream_and_endpoint() {
        let stream = FakeStream {
            fail_calls: HashMap::from([(
                1,
                KinesisError::Fatal("AccessDeniedException: no".into()),
            )]),
            ..FakeStream::default()
        };
        let err = put(&stream, &fast(0), vec![entry("k", 0, 10)])
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`fn-telemetry`") && msg.contains("http://localhost:4567"),
            "{msg}"
        );
        assert!(msg.contains("AccessDeniedException"), "{msg}");

        let stream = FakeStream {
            fail_calls: HashMap::from([(1, KinesisError::NotFound("no stream".into()))]),
            ..FakeStream::default()
        };
        let msg = put(&stream, &fast(0), vec![entry("k", 0, 10)])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("does not exist") && msg.contains("`fn-telemetry`"),
            "{msg}"
        );

        // Throttled for ever: gives up after the configured attempts.
        let stream = FakeStream {
            fail_calls: (1..=20)
                .map(|c| (c, KinesisError::Throttled("slow down".into())))
                .collect(),
            ..FakeStream::default()
        };
        let msg = put(&stream, &fast(0), vec![entry("k", 0, 10)])
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("15 times in a row"), "{msg}");

        // An entry that always fails: gives up, naming its key.
        let stream = FakeStream {
            fail_entries: Mutex::new(HashMap::from([(("stuck".to_string(), 0), 1_000)])),
            ..FakeStream::default()
        };
        let msg = put(&stream, &fast(0), vec![entry("stuck", 0, 10)])
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`stuck`") && msg.contains("20 times"), "{msg}");
    }
}
