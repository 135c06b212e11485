//! Lambda Telemetry API batches (telemetry contract, section 4).
//!
//! A batch is a JSON array of items `{ "time", "type", "record", "function" }`;
//! the dispatcher in [`super`] hands each item to [`decode_item`]. The
//! records of one invocation (`platform.start`, `platform.runtimeDone`,
//! `platform.report`) may arrive in different batches, so what the earlier
//! ones said is kept in a bounded [`TelemetryState`] until the report arrives
//! and one `invocation` row is emitted. `function` records become `log` rows.
//!
//! The same items also arrive through CloudWatch Logs when a function uses
//! Lambda's JSON log format; [`super::cloudwatch`] then passes the function
//! name taken from the log group.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{DeadLetter, EventRow, EventType, Position, Sink};

/// How many request ids a decoder remembers at most (per map); the oldest
/// is forgotten first.
pub(crate) const MAX_REMEMBERED: usize = 10_000;

/// How many bytes a decoder's map of open requests holds at most (keys,
/// remembered strings and bookkeeping); the oldest is forgotten first.
/// Request ids, function names and versions come from the functions
/// themselves, so a hostile one sends them as long as a record allows: the
/// entry cap alone would let one shard's state reach gigabytes. 2 MiB holds
/// the 10,000 entries of honest requests (about 200 bytes each).
pub(crate) const MAX_REMEMBERED_BYTES: usize = 2 * 1024 * 1024;

/// Longest key (function and request id) remembered: a request with a
/// longer one is decoded as usual, but what its `START`, timeout or error
/// lines said is not kept for its `REPORT`.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Longest version or error type kept for a later report, in characters
/// (longer ones are cut, with `…`).
pub(crate) const MAX_NOTE_CHARS: usize = 128;

/// Bookkeeping bytes counted for each remembered entry besides its key and
/// strings (hash slot, order entry, sequence numbers).
const ENTRY_OVERHEAD: usize = 64;

/// What a remembered value holds on the heap, for [`Bounded`]'s byte cap.
pub(crate) trait HeapBytes {
    fn heap_bytes(&self) -> usize;
}

/// A note string as remembered: cut to [`MAX_NOTE_CHARS`].
pub(crate) fn note(s: &str) -> String {
    truncate(s, MAX_NOTE_CHARS).into_owned()
}

/// What the Telemetry API said so far about the open invocations of one
/// source (a file or a shard).
#[derive(Debug, Default)]
pub struct TelemetryState {
    open: Bounded<OpenInvocation>,
}

/// The parts of an invocation seen before its `platform.report`.
#[derive(Debug, Default)]
struct OpenInvocation {
    version: Option<String>,
    status: Option<&'static str>,
    duration_ms: Option<f64>,
    error_type: Option<String>,
}

impl HeapBytes for OpenInvocation {
    fn heap_bytes(&self) -> usize {
        self.version.as_ref().map_or(0, String::capacity)
            + self.error_type.as_ref().map_or(0, String::capacity)
    }
}

pub(crate) fn is_telemetry_type(t: &str) -> bool {
    t.starts_with("platform.") || t == "function" || t == "extension"
}

/// Why an item (or a line) was rejected: the offending field and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub field: Option<&'static str>,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        FieldError {
            field: Some(field),
            reason: reason.into(),
        }
    }

    /// A problem with the whole record rather than one field.
    pub(crate) fn whole(reason: impl Into<String>) -> Self {
        FieldError {
            field: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn dead_letter(self, pos: &Position, raw: &str) -> DeadLetter {
        let mut dl = DeadLetter::new(self.reason, pos, raw.as_bytes());
        dl.field = self.field.map(str::to_string);
        dl
    }
}

#[derive(Deserialize)]
struct ItemProbe<'a> {
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    record: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<&'a RawValue>,
}

/// Decodes one Telemetry API item. `function` names the function when the
/// item itself has no `function` field (CloudWatch Logs passes the name taken
/// from the log group).
pub(crate) fn decode_item(
    item: &str,
    function: Option<&str>,
    pos: &Position,
    state: &mut TelemetryState,
    sink: &mut dyn Sink,
) {
    if let Err(e) = decode_item_inner(item, function, state, sink) {
        sink.dead_letter(e.dead_letter(pos, item));
    }
}

fn decode_item_inner(
    item: &str,
    function_arg: Option<&str>,
    state: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    if !item.trim_start().starts_with('{') {
        return Err(FieldError::whole(format!(
            "telemetry api item is {}, expected an object",
            kind_of_text(item)
        )));
    }
    let probe: ItemProbe<'_> = serde_json::from_str(item).map_err(|e| {
        FieldError::whole(format!(
            "telemetry api item is not a valid JSON object: {e}"
        ))
    })?;
    let kind = required_str(probe.kind, "type", "telemetry api item")?;
    if !is_telemetry_type(&kind) {
        return Err(FieldError::new(
            "type",
            format!(
                "field `type` has unknown value `{}` (valid values: platform.*, function, extension)",
                truncate(&kind, 64)
            ),
        ));
    }
    let function: Cow<'_, str> = match probe.function {
        Some(raw) => json_str(raw).ok_or_else(|| {
            FieldError::new(
                "function",
                format!("field `function` is {}, expected a string", json_kind(raw)),
            )
        })?,
        None => match function_arg {
            Some(f) => Cow::Borrowed(f),
            None => {
                return Err(FieldError::new(
                    "function",
                    "telemetry api item has no `function` field (the extension must add it)",
                ));
            }
        },
    };
    if function.is_empty() {
        return Err(FieldError::new("function", "field `function` is empty"));
    }
    let time = required_str(probe.time, "time", "telemetry api item")?;
    let time_us = parse_time_us(&time).map_err(|r| FieldError::new("time", r))?;

    match kind.as_ref() {
        "extension" => {
            sink.skipped("telemetry api extension record");
            Ok(())
        }
        "function" => {
            let record = probe.record.ok_or_else(|| {
                FieldError::new(
                    "record",
                    "telemetry api `function` item has no `record` field",
                )
            })?;
            function_record(record, time_us, &function, sink);
            Ok(())
        }
        "platform.start" => {
            let rec = record_object(probe.record)?;
            let id = record_request_id(&rec)?;
            let version = opt_str(&rec, "version", "record.version")?;
            if let Some(v) = version {
                state.open.update(request_key(&function, id), |open| {
                    open.version = Some(note(v))
                });
            } else {
                state.open.update(request_key(&function, id), |_| {});
            }
            sink.skipped("telemetry api platform.start");
            Ok(())
        }
        "platform.runtimeDone" => {
            let rec = record_object(probe.record)?;
            let id = record_request_id(&rec)?;
            let status = opt_str(&rec, "status", "record.status")?
                .map(|s| map_status(s, "record.status"))
                .transpose()?;
            let error_type = opt_str(&rec, "errorType", "record.errorType")?;
            let metrics = metrics_object(&rec)?;
            let duration = opt_f64(metrics, "durationMs")?;
            state.open.update(request_key(&function, id), |open| {
                if status.is_some() {
                    open.status = status;
                }
                if duration.is_some() {
                    open.duration_ms = duration;
                }
                if let Some(t) = error_type {
                    open.error_type = Some(note(t));
                }
            });
            sink.skipped("telemetry api platform.runtimeDone");
            Ok(())
        }
        "platform.report" => {
            let rec = record_object(probe.record)?;
            report(&rec, time_us, &function, state, sink)
        }
        _ => {
            sink.skipped("telemetry api platform record");
            Ok(())
        }
    }
}

/// `platform.report`: completes the invocation and emits its row.
fn report(
    rec: &Map<String, Value>,
    time_us: i64,
    function: &str,
    state: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    let id = record_request_id(rec)?;
    let status = opt_str(rec, "status", "record.status")?
        .map(|s| map_status(s, "record.status"))
        .transpose()?;
    let error_type = opt_str(rec, "errorType", "record.errorType")?;
    let metrics = metrics_object(rec)?;
    let duration = opt_f64(metrics, "durationMs")?;
    let billed = opt_i64(metrics, "billedDurationMs")?;
    let memory = opt_i64(metrics, "memorySizeMB")?;
    let max_memory = opt_i64(metrics, "maxMemoryUsedMB")?;
    let init = opt_f64(metrics, "initDurationMs")?;

    let key = request_key(function, id);
    let open = state.open.get(&key);
    let duration = match duration.or_else(|| open.and_then(|o| o.duration_ms)) {
        Some(d) => d,
        None => {
            return Err(FieldError::new(
                "record.metrics.durationMs",
                "platform.report has no `record.metrics.durationMs` (and no platform.runtimeDone gave one)",
            ));
        }
    };
    let open = state.open.remove(&key).unwrap_or_default();

    let mut extra = Map::new();
    if let Some(m) = metrics {
        for (k, v) in m {
            if !matches!(
                k.as_str(),
                "durationMs"
                    | "billedDurationMs"
                    | "memorySizeMB"
                    | "maxMemoryUsedMB"
                    | "initDurationMs"
            ) {
                extra.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in rec {
        if !matches!(k.as_str(), "requestId" | "status" | "errorType" | "metrics") {
            extra.insert(k.clone(), v.clone());
        }
    }

    let mut row = EventRow::new(EventType::Invocation, time_us, function);
    row.request_id = Some(Cow::Borrowed(id));
    row.version = open.version.map(Cow::Owned);
    row.duration_ms = Some(duration);
    row.billed_ms = billed;
    row.memory_mb = memory;
    row.max_memory_mb = max_memory;
    row.init_ms = init;
    row.status = Some(Cow::Borrowed(status.or(open.status).unwrap_or("success")));
    row.error_type = match error_type {
        Some(t) => Some(Cow::Borrowed(t)),
        None => open.error_type.map(Cow::Owned),
    };
    if !extra.is_empty() {
        row.extra = Some(Value::Object(extra).to_string());
    }
    sink.event(&row);
    Ok(())
}

/// A `function` record: an application log line (a string, or a structured
/// log object in Lambda's JSON log format).
fn function_record(record: &RawValue, time_us: i64, function: &str, sink: &mut dyn Sink) {
    #[derive(Deserialize)]
    struct IdProbe<'a> {
        #[serde(rename = "requestId", borrow, default)]
        request_id: Option<&'a RawValue>,
    }
    let mut row = EventRow::new(EventType::Log, time_us, function);
    if let Some(s) = json_str(record) {
        let request_id =
            super::cloudwatch::plain_line_request_id(&s).map(|id| Cow::Owned(id.to_string()));
        let text = match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_end_matches(['\n', '\r'])),
            Cow::Owned(o) => Cow::Owned(o.trim_end_matches(['\n', '\r']).to_string()),
        };
        row.request_id = request_id;
        row.message = Some(text);
    } else {
        let raw = record.get();
        if raw.starts_with('{') {
            row.request_id = serde_json::from_str::<IdProbe<'_>>(raw)
                .ok()
                .and_then(|p| p.request_id)
                .and_then(json_str);
        }
        row.message = Some(Cow::Borrowed(raw));
    }
    sink.event(&row);
}

fn record_object(record: Option<&RawValue>) -> Result<Map<String, Value>, FieldError> {
    let raw = record.ok_or_else(|| {
        FieldError::new(
            "record",
            "telemetry api platform item has no `record` field",
        )
    })?;
    serde_json::from_str(raw.get()).map_err(|_| {
        FieldError::new(
            "record",
            format!("field `record` is {}, expected an object", json_kind(raw)),
        )
    })
}

fn record_request_id(rec: &Map<String, Value>) -> Result<&str, FieldError> {
    match opt_str(rec, "requestId", "record.requestId")? {
        Some(id) if !id.is_empty() => Ok(id),
        Some(_) => Err(FieldError::new(
            "record.requestId",
            "field `record.requestId` is empty",
        )),
        None => Err(FieldError::new(
            "record.requestId",
            "platform record has no `record.requestId` field",
        )),
    }
}

fn metrics_object(rec: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, FieldError> {
    match rec.get("metrics") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(FieldError::new(
            "record.metrics",
            format!(
                "field `record.metrics` is {}, expected an object",
                value_kind(v)
            ),
        )),
    }
}

fn opt_str<'m>(
    rec: &'m Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'m str>, FieldError> {
    match rec.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(FieldError::new(
            field,
            format!("field `{field}` is {}, expected a string", value_kind(v)),
        )),
    }
}

fn metric_field(key: &str) -> &'static str {
    match key {
        "durationMs" => "record.metrics.durationMs",
        "billedDurationMs" => "record.metrics.billedDurationMs",
        "memorySizeMB" => "record.metrics.memorySizeMB",
        "maxMemoryUsedMB" => "record.metrics.maxMemoryUsedMB",
        "initDurationMs" => "record.metrics.initDurationMs",
        _ => "record.metrics",
    }
}

fn opt_f64(metrics: Option<&Map<String, Value>>, key: &str) -> Result<Option<f64>, FieldError> {
    match metrics.and_then(|m| m.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => {
            let field = metric_field(key);
            Err(FieldError::new(
                field,
                format!("field `{field}` is {}, expected a number", value_kind(v)),
            ))
        }
    }
}

fn opt_i64(metrics: Option<&Map<String, Value>>, key: &str) -> Result<Option<i64>, FieldError> {
    let field = metric_field(key);
    match metrics.and_then(|m| m.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Some(i)),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                _ => Err(FieldError::new(
                    field,
                    format!("field `{field}` is not an integer: {n}"),
                )),
            },
        },
        Some(v) => Err(FieldError::new(
            field,
            format!("field `{field}` is {}, expected an integer", value_kind(v)),
        )),
    }
}

/// Maps a Telemetry API status to the contract's `status` values.
fn map_status(s: &str, field: &'static str) -> Result<&'static str, FieldError> {
    match s {
        "success" => Ok("success"),
        "error" => Ok("error"),
        "failure" => Ok("crash"),
        "timeout" => Ok("timeout"),
        other => Err(FieldError::new(
            field,
            format!(
                "field `{field}` has unknown value `{}` (valid values: success, error, failure, timeout)",
                truncate(other, 64)
            ),
        )),
    }
}

fn required_str<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
    what: &str,
) -> Result<Cow<'a, str>, FieldError> {
    let raw =
        raw.ok_or_else(|| FieldError::new(field, format!("{what} has no `{field}` field")))?;
    json_str(raw).ok_or_else(|| {
        FieldError::new(
            field,
            format!("field `{field}` is {}, expected a string", json_kind(raw)),
        )
    })
}

// ---- helpers shared with the CloudWatch Logs decoder ----------------------

/// The key under which a decoder remembers one request of one function.
pub(crate) fn request_key(function: &str, request_id: &str) -> String {
    let mut k = String::with_capacity(function.len() + request_id.len() + 1);
    k.push_str(function);
    k.push('\n');
    k.push_str(request_id);
    k
}

/// A map that remembers at most `cap` keys and `max_bytes` bytes (see
/// [`MAX_REMEMBERED_BYTES`]), forgetting the oldest first.
#[derive(Debug)]
pub(crate) struct Bounded<V> {
    /// Key to (insertion number, value, bytes counted for the entry).
    map: HashMap<String, (u64, V, usize)>,
    /// Insertion number to key, oldest first: exactly the live entries.
    order: BTreeMap<u64, String>,
    next: u64,
    cap: usize,
    max_bytes: usize,
    bytes: usize,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Bounded::with_caps(MAX_REMEMBERED, MAX_REMEMBERED_BYTES)
    }
}

impl<V> Bounded<V> {
    pub(crate) fn with_caps(cap: usize, max_bytes: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            cap: cap.max(1),
            max_bytes,
            bytes: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The bytes counted for what is remembered.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|(_, v, _)| v)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let (seq, v, w) = self.map.remove(key)?;
        self.order.remove(&seq);
        self.bytes -= w;
        Some(v)
    }

    /// Forgets the oldest entry; false when there is none.
    fn forget_oldest(&mut self) -> bool {
        let Some((_, k)) = self.order.pop_first() else {
            return false;
        };
        if let Some((_, _, w)) = self.map.remove(&k) {
            self.bytes -= w;
        }
        true
    }
}

impl<V: Default + HeapBytes> Bounded<V> {
    /// Changes the value under `key` with `f`, inserting it (as the newest)
    /// when absent, then forgets the oldest entries while over either cap.
    /// A key longer than [`MAX_KEY_BYTES`] is not remembered.
    pub(crate) fn update(&mut self, key: String, f: impl FnOnce(&mut V)) {
        if key.len() > MAX_KEY_BYTES {
            return;
        }
        let base = 2 * key.len() + ENTRY_OVERHEAD + std::mem::size_of::<V>();
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cap && self.forget_oldest() {}
            let seq = self.next;
            self.next += 1;
            self.order.insert(seq, key.clone());
            self.map.insert(key.clone(), (seq, V::default(), base));
            self.bytes += base;
        }
        let Some((seq, v, w)) = self.map.get_mut(&key) else {
            return;
        };
        f(v);
        let weight = base + v.heap_bytes();
        let seq = *seq;
        self.bytes = self.bytes - *w + weight;
        *w = weight;
        // The entry just written is the last to go.
        while self.bytes > self.max_bytes
            && self.order.first_key_value().is_some_and(|(s, _)| *s != seq)
        {
            self.forget_oldest();
        }
    }
}

/// A JSON string value, borrowed when it has no escapes; `None` when `raw`
/// is not a string.
pub(crate) fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    if !s.starts_with('"') {
        return None;
    }
    if let Ok(b) = serde_json::from_str::<&str>(s) {
        return Some(Cow::Borrowed(b));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

/// What kind of JSON value `raw` is, for messages ("a number", ...).
pub(crate) fn json_kind(raw: &RawValue) -> &'static str {
    kind_of_text(raw.get())
}

/// What kind of JSON value a (valid) JSON text is, from its first byte.
pub(crate) fn kind_of_text(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) use super::{parse_time_us, truncate};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::VecSink;

    fn pos() -> Position {
        Position::file(Arc::from("batch.json"), 3)
    }

    fn run(items: &[&str], state: &mut TelemetryState) -> VecSink {
        let mut sink = VecSink::default();
        for it in items {
            decode_item(it, None, &pos(), state, &mut sink);
        }
        sink
    }

    const START: &str = r#"{"time":"2026-11-23T10:00:00.100Z","type":"platform.start","function":"orders-api","record":{"requestId":"r-1","version":"7"}}"#;
    const DONE: &str = r#"{"time":"2026-11-23T10:00:00.200Z","type":"platform.runtimeDone","function":"orders-api","record":{"requestId":"r-1","status":"timeout","metrics":{"durationMs":3000.5,"producedBytes":0}}}"#;
    const REPORT: &str = r#"{"time":"2026-11-23T10:00:00.412Z","type":"platform.report","function":"orders-api","record":{"requestId":"r-1","metrics":{"durationMs":3001.25,"billedDurationMs":3002,"memorySizeMB":256,"maxMemoryUsedMB":91,"initDurationMs":120.5,"restoreDurationMs":4.0}}}"#;

    #[test]
    fn start_runtime_done_report_make_one_invocation() {
        let mut st = TelemetryState::default();
        let sink = run(&[START, DONE, REPORT], &mut st);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 1);
        let r = &sink.events[0];
        assert_eq!(r.event_type, EventType::Invocation);
        assert_eq!(r.function, "orders-api");
        assert_eq!(r.time_us, 1_795_428_000_412_000);
        assert_eq!(r.request_id.as_deref(), Some("r-1"));
        assert_eq!(r.version.as_deref(), Some("7"));
        assert_eq!(r.status.as_deref(), Some("timeout"));
        assert_eq!(r.duration_ms, Some(3001.25));
        assert_eq!(r.billed_ms, Some(3002));
        assert_eq!(r.memory_mb, Some(256));
        assert_eq!(r.max_memory_mb, Some(91));
        assert_eq!(r.init_ms, Some(120.5));
        let extra: Value =
            serde_json::from_str(r.extra.as_deref().unwrap_or("{}")).unwrap_or_default();
        assert_eq!(extra["restoreDurationMs"], 4.0);
        assert_eq!(sink.skipped.len(), 2);
        assert_eq!(st.open.len(), 0, "the report closes the invocation");
    }

    #[test]
    fn report_split_across_calls_keeps_state() {
        let mut st = TelemetryState::default();
        let first = run(&[START, DONE], &mut st);
        assert!(first.events.is_empty());
        let second = run(&[REPORT], &mut st);
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events[0].version.as_deref(), Some("7"));
        assert_eq!(second.events[0].status.as_deref(), Some("timeout"));
    }

    #[test]
    fn report_without_start_is_success_and_report_status_wins() {
        let mut st = TelemetryState::default();
        let sink = run(&[REPORT], &mut st);
        assert_eq!(sink.events[0].status.as_deref(), Some("success"));
        assert_eq!(sink.events[0].version, None);

        let failed = REPORT.replace(
            r#""requestId":"r-1","#,
            r#""requestId":"r-1","status":"failure","errorType":"Runtime.ExitError","#,
        );
        let sink = run(&[START, DONE, &failed], &mut st);
        assert_eq!(sink.events[0].status.as_deref(), Some("crash"));
        assert_eq!(
            sink.events[0].error_type.as_deref(),
            Some("Runtime.ExitError")
        );
    }

    #[test]
    fn runtime_done_duration_used_when_report_has_none() {
        let mut st = TelemetryState::default();
        let no_dur = REPORT.replace(r#""durationMs":3001.25,"#, "");
        let sink = run(&[DONE, &no_dur], &mut st);
        assert_eq!(sink.events[0].duration_ms, Some(3000.5));
        let sink = run(&[&no_dur], &mut st);
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(
            sink.dead[0].field.as_deref(),
            Some("record.metrics.durationMs")
        );
    }

    #[test]
    fn item_without_function_is_dead_lettered() {
        let mut st = TelemetryState::default();
        let item = START.replace(r#""function":"orders-api","#, "");
        let sink = run(&[&item], &mut st);
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(sink.dead[0].field.as_deref(), Some("function"));
        assert!(
            sink.dead[0].reason.contains("no `function` field"),
            "{}",
            sink.dead[0].reason
        );
        assert_eq!(sink.dead[0].raw, item.as_bytes());

        // From CloudWatch the function comes from the log group.
        let mut sink = VecSink::default();
        let report = REPORT.replace(r#""function":"orders-api","#, "");
        decode_item(&report, Some("from-group"), &pos(), &mut st, &mut sink);
        assert_eq!(sink.events[0].function, "from-group");
    }

    #[test]
    fn time_without_offset_is_dead_lettered() {
        let mut st = TelemetryState::default();
        let item = REPORT.replace("10:00:00.412Z", "10:00:00.412");
        let sink = run(&[&item], &mut st);
        assert!(sink.events.is_empty());
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(sink.dead[0].field.as_deref(), Some("time"));
        assert!(
            sink.dead[0].reason.contains("no UTC offset"),
            "{}",
            sink.dead[0].reason
        );
        let item = REPORT.replace("2026-11-23T10:00:00.412Z", "yesterday");
        assert_eq!(
            run(&[&item], &mut st).dead[0].field.as_deref(),
            Some("time")
        );
    }

    #[test]
    fn function_records_become_log_rows() {
        let mut st = TelemetryState::default();
        let text = r#"{"time":"2026-11-23T10:00:00.300Z","type":"function","function":"orders-api","record":"2026-11-23T10:00:00.300Z\t8f1c0b6e-2b8e-4d41-9a53-0c1f7e2a9d10\tINFO\tloaded 3 items\n"}"#;
        let obj = r#"{"time":"2026-11-23T10:00:00.301Z","type":"function","function":"orders-api","record":{"level":"ERROR","message":"boom","requestId":"r-9"}}"#;
        let ext = r#"{"time":"2026-11-23T10:00:00.302Z","type":"extension","function":"orders-api","record":"ext says hi"}"#;
        let sink = run(&[text, obj, ext], &mut st);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 2);
        assert_eq!(sink.events[0].event_type, EventType::Log);
        assert_eq!(
            sink.events[0].message.as_deref(),
            Some(
                "2026-11-23T10:00:00.300Z\t8f1c0b6e-2b8e-4d41-9a53-0c1f7e2a9d10\tINFO\tloaded 3 items"
            )
        );
        assert_eq!(
            sink.events[0].request_id.as_deref(),
            Some("8f1c0b6e-2b8e-4d41-9a53-0c1f7e2a9d10")
        );
        assert_eq!(
            sink.events[1].message.as_deref(),
            Some(r#"{"level":"ERROR","message":"boom","requestId":"r-9"}"#)
        );
        assert_eq!(sink.events[1].request_id.as_deref(), Some("r-9"));
        assert_eq!(sink.skipped, vec!["telemetry api extension record"]);
    }

    #[test]
    fn other_platform_records_are_skipped() {
        let mut st = TelemetryState::default();
        let item = r#"{"time":"2026-11-23T10:00:00Z","type":"platform.initStart","function":"f","record":{"initializationType":"on-demand","phase":"init"}}"#;
        let sink = run(&[item], &mut st);
        assert!(sink.events.is_empty() && sink.dead.is_empty());
        assert_eq!(sink.skipped.len(), 1);
    }

    #[test]
    fn malformed_items_name_the_field() {
        let mut st = TelemetryState::default();
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"metrics","function":"f","record":{}}"#,
                Some("type"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","function":"f","record":{}}"#,
                Some("type"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.start","function":"f","record":{}}"#,
                Some("record.requestId"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.start","function":"f","record":[1]}"#,
                Some("record"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.runtimeDone","function":"f","record":{"requestId":"r","status":"exploded"}}"#,
                Some("record.status"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.report","function":"f","record":{"requestId":"r","metrics":{"durationMs":"12"}}}"#,
                Some("record.metrics.durationMs"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.report","function":"f","record":{"requestId":"r","metrics":{"durationMs":1,"billedDurationMs":1.5}}}"#,
                Some("record.metrics.billedDurationMs"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.report","function":"f","record":{"requestId":"r","metrics":7}}"#,
                Some("record.metrics"),
            ),
            (
                r#"{"time":12,"type":"platform.start","function":"f","record":{"requestId":"r"}}"#,
                Some("time"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"platform.start","function":"","record":{"requestId":"r"}}"#,
                Some("function"),
            ),
            (
                r#"{"time":"2026-11-23T10:00:00Z","type":"function","function":"f"}"#,
                Some("record"),
            ),
            (r#"{"time":"2026-11-23T10:00:00Z","type":"function""#, None),
            ("[1,2]", None),
        ];
        for (item, field) in cases {
            let sink = run(&[item], &mut st);
            assert_eq!(sink.dead.len(), 1, "{item}");
            assert!(sink.events.is_empty(), "{item}");
            assert_eq!(
                sink.dead[0].field.as_deref(),
                *field,
                "{item}: {}",
                sink.dead[0].reason
            );
            let reason = &sink.dead[0].reason;
            assert!(!reason.ends_with('.'), "{reason}");
            assert!(
                reason.chars().next().is_some_and(|c| !c.is_uppercase()),
                "{reason}"
            );
        }
    }

    #[test]
    fn batch_through_the_dispatcher() {
        let batch = format!("[{START},{DONE},{REPORT}]");
        let mut state = crate::decode::DecodeState::default();
        let mut sink = VecSink::default();
        crate::decode::decode_record(batch.as_bytes(), &pos(), &mut state, &mut sink);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.events[0].status.as_deref(), Some("timeout"));
    }

    impl HeapBytes for u32 {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    impl HeapBytes for String {
        fn heap_bytes(&self) -> usize {
            self.capacity()
        }
    }

    #[test]
    fn bounded_map_forgets_the_oldest() {
        let mut m: Bounded<u32> = Bounded::with_caps(3, usize::MAX);
        for i in 0..5u32 {
            m.update(format!("k{i}"), |v| *v = i);
        }
        assert_eq!(m.len(), 3);
        assert!(m.get("k0").is_none() && m.get("k1").is_none());
        assert_eq!(m.get("k4"), Some(&4));
        // Touching an existing key does not re-insert it.
        m.update("k2".to_string(), |v| *v += 10);
        m.update("k5".to_string(), |v| *v = 5);
        assert!(m.get("k2").is_none(), "k2 was still the oldest");
        // Many insert/remove cycles leave no bookkeeping behind.
        for i in 0..1000u32 {
            let k = format!("x{i}");
            m.update(k.clone(), |_| {});
            m.remove(&k);
        }
        assert_eq!(m.order.len(), m.len());
        assert!(m.len() <= 3);
    }

    #[test]
    fn bounded_map_is_capped_in_bytes_and_forgets_the_oldest_first() {
        let cap = 64 * 1024;
        let mut m: Bounded<String> = Bounded::with_caps(1_000_000, cap);
        // Keys and values of an attacker's size: the entry cap never binds.
        for i in 0..1000 {
            m.update(format!("{i:0>1000}"), |v| *v = "v".repeat(2000));
            assert!(m.bytes() <= cap, "{} bytes after {i}", m.bytes());
        }
        assert!(m.len() < 20, "{} entries", m.len());
        assert!(
            m.get(&format!("{:0>1000}", 999)).is_some(),
            "the newest stays"
        );
        assert!(m.get(&format!("{:0>1000}", 0)).is_none(), "the oldest went");
        // A value that grows is re-weighed.
        let before = m.bytes();
        let newest = format!("{:0>1000}", 999);
        m.update(newest.clone(), |v| v.push_str(&"w".repeat(10_000)));
        assert!(m.bytes() <= cap && m.get(&newest).is_some());
        assert_ne!(m.bytes(), before);
        // Keys too long are not remembered at all; removing gives bytes back.
        m.update("k".repeat(MAX_KEY_BYTES + 1), |v| v.push('x'));
        assert!(m.get(&"k".repeat(MAX_KEY_BYTES + 1)).is_none());
        let n = m.len();
        m.remove(&newest);
        assert_eq!(m.len(), n - 1);
        while m.forget_oldest() {}
        assert_eq!(m.bytes(), 0);
        // Honest entries: the entry cap binds before the byte cap.
        let mut m: Bounded<String> = Bounded::default();
        for i in 0..(MAX_REMEMBERED + 10) {
            let key = request_key("orders-api", &format!("8f1c0b6e-2b8e-4d41-9a53-{i:012}"));
            m.update(key, |v| *v = note("42"));
        }
        assert_eq!(m.len(), MAX_REMEMBERED);
        assert!(m.bytes() <= MAX_REMEMBERED_BYTES, "{}", m.bytes());
    }

    #[test]
    fn hostile_platform_start_records_keep_the_state_within_its_bytes() {
        let mut st = TelemetryState::default();
        let long_version = "9".repeat(10_000);
        let id = |i: usize| format!("{i:0>900}");
        let items: Vec<String> = (0..2500)
            .map(|i| {
                format!(
                    r#"{{"time":"2026-11-23T10:00:00.100Z","type":"platform.start","function":"orders-api","record":{{"requestId":"{}","version":"{long_version}"}}}}"#,
                    id(i)
                )
            })
            .collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        let sink = run(&refs, &mut st);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead.first());
        let held = st.open.bytes();
        assert!(held <= MAX_REMEMBERED_BYTES, "{held} bytes remembered");
        assert!(st.open.len() > 500, "{} entries", st.open.len());
        assert!(st.open.len() < 2500, "nothing was forgotten");
        // The newest is remembered, its version cut.
        let report = REPORT.replace("r-1", &id(2499));
        let sink = run(&[&report], &mut st);
        let v = sink.events[0].version.as_deref().unwrap_or_default();
        assert!(
            v.starts_with("999") && v.chars().count() == MAX_NOTE_CHARS + 1,
            "{v}"
        );
    }

    #[test]
    fn fixture_batch_decodes_as_documented() {
        let batch = include_str!("../../tests/fixtures/telemetry/batch.json");
        let mut state = crate::decode::DecodeState::default();
        let mut sink = VecSink::default();
        crate::decode::decode_record(batch.trim_end().as_bytes(), &pos(), &mut state, &mut sink);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let inv: Vec<_> = sink
            .events
            .iter()
            .filter(|e| e.event_type == EventType::Invocation)
            .map(|r| {
                (
                    r.status.as_deref(),
                    r.init_ms,
                    r.version.as_deref(),
                    r.error_type.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            inv,
            vec![
                (Some("success"), Some(310.42), Some("14"), None),
                (Some("timeout"), None, Some("14"), Some("Sandbox.Timedout")),
            ]
        );
        let logs: Vec<_> = sink
            .events
            .iter()
            .filter(|e| e.event_type == EventType::Log)
            .map(|e| e.request_id.as_deref())
            .collect();
        assert_eq!(
            logs,
            vec![
                Some("e4b2a8c1-3f5d-4e79-a0b6-9c1d2e3f4a5b"),
                Some("7a9c3e1b-5d2f-4086-b4a7-c8e9f0a1b2c3")
            ]
        );
        assert_eq!(sink.skipped.len(), 8);
        assert!(sink.events.iter().all(|e| e.function == "payments-worker"));
    }
}
