//! CloudWatch Logs subscription payloads (telemetry contract, section 3).
//!
//! A payload (already gunzipped) is one JSON object with `messageType`,
//! `logGroup`, `logStream` and `logEvents`. The function is the log group's
//! suffix after `/aws/lambda/`. Each log event's `message` is one of:
//!
//! - a platform line. `REPORT` becomes an `invocation` row; `START` (the
//!   version), `Task timed out after` and error lines are remembered in a
//!   bounded [`CloudWatchState`] so the later `REPORT` of the same request
//!   gets its version and status; the other platform lines are skipped;
//! - a JSON line: a native event (section 2), a Lambda JSON-format platform
//!   record (handed to [`super::telemetry_api`]), or a structured
//!   application log;
//! - anything else: an application log line, a `log` row.
//!
//! A bad payload is one dead letter; a bad log event is a dead letter for that
//! event only, and the other events of the payload are kept.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::telemetry_api::{
    Bounded, FieldError, HeapBytes, TelemetryState, json_kind, json_str, kind_of_text, note,
    request_key, truncate,
};
use crate::event::{DeadLetter, EventRow, EventType, Position, Sink, Step};

/// The log group prefix of Lambda functions.
const LAMBDA_PREFIX: &str = "/aws/lambda/";

/// What earlier log lines said about requests whose `REPORT` has not arrived
/// yet, for one source (a file or a shard).
#[derive(Debug, Default)]
pub struct CloudWatchState {
    requests: Bounded<RequestNotes>,
}

#[derive(Debug, Default)]
struct RequestNotes {
    /// From `START RequestId: .. Version: ..`.
    version: Option<String>,
    /// A `Task timed out after` line was seen.
    timed_out: bool,
    /// The timeout it named, in ms.
    timeout_ms: Option<i64>,
    /// The function logged an error for the request.
    errored: bool,
}

impl HeapBytes for RequestNotes {
    fn heap_bytes(&self) -> usize {
        self.version.as_ref().map_or(0, String::capacity)
    }
}

#[derive(Deserialize)]
struct PayloadProbe<'a> {
    #[serde(rename = "messageType", borrow, default)]
    message_type: Option<&'a RawValue>,
    #[serde(rename = "logGroup", borrow, default)]
    log_group: Option<&'a RawValue>,
    #[serde(rename = "logStream", borrow, default)]
    log_stream: Option<&'a RawValue>,
    #[serde(rename = "logEvents", borrow, default)]
    log_events: Option<&'a RawValue>,
    #[serde(borrow, default)]
    owner: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct LogEventProbe<'a> {
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
}

/// Decodes one CloudWatch Logs subscription payload (the JSON text).
pub(crate) fn decode_payload(
    text: &str,
    pos: &Position,
    cw: &mut CloudWatchState,
    tapi: &mut TelemetryState,
    sink: &mut dyn Sink,
) {
    if let Err(e) = decode_payload_inner(text, pos, cw, tapi, sink) {
        sink.dead_letter(e.dead_letter(pos, text));
    }
}

fn decode_payload_inner(
    text: &str,
    pos: &Position,
    cw: &mut CloudWatchState,
    tapi: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    let probe: PayloadProbe<'_> = serde_json::from_str(text).map_err(|e| {
        FieldError::whole(format!(
            "cloudwatch logs payload is not a valid JSON object: {e}"
        ))
    })?;
    let message_type = payload_str(probe.message_type, "messageType")?;
    match message_type.as_ref() {
        "CONTROL_MESSAGE" => {
            sink.skipped("cloudwatch control message");
            return Ok(());
        }
        "DATA_MESSAGE" => {}
        other => {
            return Err(FieldError::new(
                "messageType",
                format!(
                    "field `messageType` has unknown value `{}` (valid values: DATA_MESSAGE, CONTROL_MESSAGE)",
                    truncate(other, 64)
                ),
            ));
        }
    }
    let log_group = payload_str(probe.log_group, "logGroup")?;
    let owner = probe.owner.and_then(json_str);
    let function = match log_group.strip_prefix(LAMBDA_PREFIX) {
        Some(f) if !f.is_empty() && !f.contains('/') => f,
        // A trail that delivers to CloudWatch Logs: each message is a
        // CloudTrail record (contract section 6).
        _ if probe.log_events.is_some_and(|e| trail_messages(e.get())) => {
            return decode_trail_events(probe.log_events, &log_group, pos, sink);
        }
        _ => {
            return Err(FieldError::new(
                "logGroup",
                format!(
                    "log group `{}` is not a lambda function's log group (expected `{LAMBDA_PREFIX}<function>`)",
                    truncate(&log_group, 256)
                ),
            ));
        }
    };
    let log_stream = match probe.log_stream {
        None => None,
        Some(raw) => Some(json_str(raw).ok_or_else(|| {
            FieldError::new(
                "logStream",
                format!("field `logStream` is {}, expected a string", json_kind(raw)),
            )
        })?),
    };
    let events_raw = probe.log_events.ok_or_else(|| {
        FieldError::new(
            "logEvents",
            "cloudwatch logs data message has no `logEvents` field",
        )
    })?;
    if !events_raw.get().starts_with('[') {
        return Err(FieldError::new(
            "logEvents",
            format!(
                "field `logEvents` is {}, expected an array",
                json_kind(events_raw)
            ),
        ));
    }

    let group = Group {
        function,
        owner: owner.as_deref(),
        log_group: &log_group,
        log_stream: log_stream.as_deref(),
    };
    // The log events are decoded as the array is read, never collected: a
    // payload of millions of tiny entries costs no more than its text. The
    // whole payload already parsed, so the array is well formed.
    let walked = crate::decode::for_each_element(events_raw.get(), |i, ev| {
        let ev_pos = pos.child(Step::LogEvent(i));
        if let Err(e) = decode_log_event(ev, &group, &ev_pos, cw, tapi, sink) {
            sink.dead_letter(e.dead_letter(&ev_pos, ev));
        }
    });
    walked.map_err(|e| {
        FieldError::new(
            "logEvents",
            format!("field `logEvents` cannot be read as an array: {e}"),
        )
    })
}

/// The log group a payload's events belong to.
struct Group<'g> {
    function: &'g str,
    /// The account that owns the log group (the payload's `owner`).
    owner: Option<&'g str>,
    log_group: &'g str,
    log_stream: Option<&'g str>,
}

fn payload_str<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Cow<'a, str>, FieldError> {
    let raw = raw.ok_or_else(|| {
        FieldError::new(
            field,
            format!("cloudwatch logs payload has no `{field}` field"),
        )
    })?;
    json_str(raw).ok_or_else(|| {
        FieldError::new(
            field,
            format!("field `{field}` is {}, expected a string", json_kind(raw)),
        )
    })
}

fn decode_log_event(
    raw: &str,
    group: &Group<'_>,
    pos: &Position,
    cw: &mut CloudWatchState,
    tapi: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    if !raw.starts_with('{') {
        return Err(FieldError::whole(format!(
            "log event is {}, expected an object",
            kind_of_text(raw)
        )));
    }
    let probe: LogEventProbe<'_> = serde_json::from_str(raw)
        .map_err(|e| FieldError::whole(format!("log event is not a valid JSON object: {e}")))?;
    let ts = probe
        .timestamp
        .ok_or_else(|| FieldError::new("timestamp", "log event has no `timestamp` field"))?;
    let ms: i64 = serde_json::from_str(ts.get()).map_err(|_| {
        FieldError::new(
            "timestamp",
            format!(
                "field `timestamp` is not an integer of epoch milliseconds: `{}`",
                truncate(ts.get(), 64)
            ),
        )
    })?;
    let time_us = ms.checked_mul(1000).ok_or_else(|| {
        FieldError::new(
            "timestamp",
            format!("field `timestamp` is out of range: {ms}"),
        )
    })?;
    let msg_raw = probe
        .message
        .ok_or_else(|| FieldError::new("message", "log event has no `message` field"))?;
    let message = json_str(msg_raw).ok_or_else(|| {
        FieldError::new(
            "message",
            format!(
                "field `message` is {}, expected a string",
                json_kind(msg_raw)
            ),
        )
    })?;
    let line = message.trim_end_matches(['\n', '\r']);
    let ctx = Ctx {
        group,
        time_us,
        pos,
    };
    decode_message(line, &ctx, cw, tapi, sink)
}

/// Where one message came from.
struct Ctx<'c, 'g> {
    group: &'c Group<'g>,
    time_us: i64,
    pos: &'c Position,
}

fn decode_message(
    line: &str,
    ctx: &Ctx<'_, '_>,
    cw: &mut CloudWatchState,
    tapi: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    let function = ctx.group.function;
    if let Some(rest) = line.strip_prefix("START RequestId:") {
        let mut toks = rest.split_whitespace();
        if let Some(id) = toks.next() {
            let mut version = None;
            while let Some(t) = toks.next() {
                if t == "Version:" {
                    version = toks.next();
                }
            }
            cw.requests.update(request_key(function, id), |notes| {
                if let Some(v) = version {
                    notes.version = Some(note(v));
                }
            });
        }
        sink.skipped("start line");
        return Ok(());
    }
    if line.starts_with("END RequestId:") {
        sink.skipped("end line");
        return Ok(());
    }
    if line.starts_with("REPORT ") && (line.contains("RequestId:") || line.contains("Duration:")) {
        let report = parse_report(line)?;
        emit_report(report, ctx, cw, sink);
        return Ok(());
    }
    if let Some((id, timeout_ms)) = parse_timeout_line(line) {
        cw.requests.update(request_key(function, id), |notes| {
            notes.timed_out = true;
            if timeout_ms.is_some() {
                notes.timeout_ms = timeout_ms;
            }
        });
        sink.skipped("timeout line");
        return Ok(());
    }
    if is_platform_line(line) {
        sink.skipped("platform line");
        return Ok(());
    }
    if line.starts_with('{') && json_line(line, ctx, cw, tapi, sink) {
        return Ok(());
    }
    let (request_id, is_error) = match parse_plain(line) {
        Some((id, err)) => (Some(id), err),
        None => (None, false),
    };
    if let (Some(id), true) = (request_id, is_error) {
        cw.requests
            .update(request_key(function, id), |notes| notes.errored = true);
    }
    emit_log(line, request_id.map(Cow::Borrowed), ctx, sink);
    Ok(())
}

fn emit_log(line: &str, request_id: Option<Cow<'_, str>>, ctx: &Ctx<'_, '_>, sink: &mut dyn Sink) {
    let mut row = EventRow::new(EventType::Log, ctx.time_us, ctx.group.function);
    row.message = Some(Cow::Borrowed(line));
    row.request_id = request_id;
    row.log_group = Some(Cow::Borrowed(ctx.group.log_group));
    row.log_stream = ctx.group.log_stream.map(Cow::Borrowed);
    sink.event(&row);
}

// ---- JSON lines ------------------------------------------------------------

#[derive(Deserialize)]
struct JsonLineProbe<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    level: Option<&'a RawValue>,
    #[serde(rename = "requestId", borrow, default)]
    request_id_camel: Option<&'a RawValue>,
    #[serde(rename = "request_id", borrow, default)]
    request_id_snake: Option<&'a RawValue>,
    #[serde(rename = "awsRequestId", borrow, default)]
    aws_request_id: Option<&'a RawValue>,
    #[serde(rename = "errorType", borrow, default)]
    error_type: Option<&'a RawValue>,
}

/// A line that starts with `{`. Returns `false` when it is not a JSON object
/// after all (it is then an ordinary log line).
fn json_line(
    line: &str,
    ctx: &Ctx<'_, '_>,
    cw: &mut CloudWatchState,
    tapi: &mut TelemetryState,
    sink: &mut dyn Sink,
) -> bool {
    let Ok(probe) = serde_json::from_str::<JsonLineProbe<'_>>(line) else {
        return false;
    };
    let kind = probe.kind.and_then(json_str);
    if let Some(kind) = kind.as_deref() {
        if EventType::from_native(kind).is_some() {
            decode_bound_native(line, ctx, sink);
            return true;
        }
        if kind.starts_with("platform.") {
            super::telemetry_api::decode_item(line, Some(ctx.group.function), ctx.pos, tapi, sink);
            return true;
        }
    }
    // A structured application log.
    let request_id = [
        probe.request_id_camel,
        probe.request_id_snake,
        probe.aws_request_id,
    ]
    .into_iter()
    .flatten()
    .filter_map(json_str)
    .find(|s| !s.is_empty());
    let is_error = probe.error_type.is_some_and(|t| json_str(t).is_some())
        || probe.level.is_some_and(|l| match json_str(l) {
            Some(s) => is_error_level(&s),
            // pino-style numeric levels: 50 error, 60 fatal
            None => serde_json::from_str::<f64>(l.get()).is_ok_and(|n| n >= 50.0),
        });
    if let (Some(id), true) = (request_id.as_deref(), is_error) {
        cw.requests
            .update(request_key(ctx.group.function, id), |notes| {
                notes.errored = true
            });
    }
    emit_log(line, request_id, ctx, sink);
    true
}

/// A native event logged by a function is bound to its log group's identity
/// (contract v1.1, section 3): its `function` must be the log group's, and
/// its `account`, when present, the payload's `owner` (which it gets when
/// absent). An event that claims another function or account is a dead
/// letter naming both: one function must not write telemetry in another's name.
fn decode_bound_native(line: &str, ctx: &Ctx<'_, '_>, sink: &mut dyn Sink) {
    let mut row = match super::native::parse_native(line) {
        Ok(row) => row,
        Err(e) => {
            sink.dead_letter(super::native::native_dead_letter(e, ctx.pos, line));
            return;
        }
    };
    let group = ctx.group;
    if row.function != group.function {
        sink.dead_letter(
            DeadLetter::new(
                format!(
                    "event claims function `{}` but was logged in the log group of function `{}` ({}); one function cannot write telemetry in another's name",
                    truncate(&row.function, 170),
                    group.function,
                    truncate(group.log_group, 256)
                ),
                ctx.pos,
                line.as_bytes(),
            )
            .with_field("function"),
        );
        return;
    }
    match (row.account.as_deref(), group.owner) {
        (Some(claimed), Some(owner)) if claimed != owner => {
            sink.dead_letter(
                DeadLetter::new(
                    format!(
                        "event claims account `{}` but was logged by account `{owner}`, which owns the log group {}; one function cannot write telemetry in another's name",
                        truncate(claimed, 64),
                        truncate(group.log_group, 256)
                    ),
                    ctx.pos,
                    line.as_bytes(),
                )
                .with_field("account"),
            );
            return;
        }
        (None, Some(owner)) if owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()) => {
            row.account = Some(Cow::Borrowed(owner));
        }
        _ => {}
    }
    sink.event(&row);
}

/// Whether the first log event of a payload outside `/aws/lambda/` carries
/// a CloudTrail record.
fn trail_messages(events: &str) -> bool {
    #[derive(Deserialize)]
    struct First<'a> {
        #[serde(borrow, default)]
        message: Option<&'a RawValue>,
    }
    let mut first = None;
    let _ = crate::decode::for_each_element(events, |i, ev| {
        if i == 0 {
            first = serde_json::from_str::<First<'_>>(ev)
                .ok()
                .and_then(|f| f.message);
        }
    });
    first
        .and_then(json_str)
        .is_some_and(|m| super::cloudtrail::looks_like_record(m.trim_start()))
}

/// The log events of a trail's log group: each message is one CloudTrail record.
fn decode_trail_events(
    events: Option<&RawValue>,
    log_group: &str,
    pos: &Position,
    sink: &mut dyn Sink,
) -> Result<(), FieldError> {
    let Some(events) = events else {
        return Ok(());
    };
    let walked = crate::decode::for_each_element(events.get(), |i, ev| {
        let ev_pos = pos.child(Step::LogEvent(i));
        let message = serde_json::from_str::<LogEventProbe<'_>>(ev)
            .ok()
            .and_then(|p| p.message)
            .and_then(json_str);
        match message {
            Some(m) if super::cloudtrail::looks_like_record(m.trim_start()) => {
                super::cloudtrail::decode_record_text(m.trim(), &ev_pos, sink)
            }
            _ => sink.dead_letter(
                DeadLetter::new(
                    format!(
                        "log event of the log group `{}` (a trail's, not a lambda function's) is not a cloudtrail record",
                        truncate(log_group, 256)
                    ),
                    &ev_pos,
                    ev.as_bytes(),
                )
                .with_field("message"),
            ),
        }
    });
    walked.map_err(|e| {
        FieldError::new(
            "logEvents",
            format!("field `logEvents` cannot be read as an array: {e}"),
        )
    })
}

fn is_error_level(s: &str) -> bool {
    ["ERROR", "FATAL", "CRITICAL"]
        .iter()
        .any(|l| s.eq_ignore_ascii_case(l))
}

// ---- platform lines ----------------------------------------------------------

/// Platform lines that carry nothing we store.
fn is_platform_line(line: &str) -> bool {
    let mut toks = line.split_whitespace();
    let first = toks.next().unwrap_or("");
    match first {
        "INIT_START"
        | "INIT_REPORT"
        | "INIT_RUNTIME_DONE"
        | "RESTORE_START"
        | "RESTORE_REPORT"
        | "RESTORE_RUNTIME_DONE" => true,
        "EXTENSION" | "TELEMETRY" | "LOGS" => toks.next() == Some("Name:"),
        "XRAY" => toks.next() == Some("TraceId:"),
        _ => false,
    }
}

/// `<timestamp> <id> Task timed out after <f> seconds`: the request id and the
/// timeout in ms (when the number parses).
fn parse_timeout_line(line: &str) -> Option<(&str, Option<i64>)> {
    if !line.contains("Task timed out after") {
        return None;
    }
    let mut toks = line.split_whitespace();
    let ts = toks.next()?;
    let id = toks.next()?;
    if !looks_like_timestamp(ts) {
        return None;
    }
    for want in ["Task", "timed", "out", "after"] {
        if toks.next()? != want {
            return None;
        }
    }
    let timeout_ms = toks
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1.0e12)
        .map(|f| (f * 1000.0).round() as i64);
    Some((id, timeout_ms))
}

/// A parsed `REPORT` line.
#[derive(Debug, Default)]
struct Report<'m> {
    request_id: Option<&'m str>,
    duration_ms: Option<f64>,
    billed_ms: Option<i64>,
    memory_mb: Option<i64>,
    max_memory_mb: Option<i64>,
    init_ms: Option<f64>,
    status: Option<&'static str>,
    error_type: Option<&'m str>,
    extra: Map<String, Value>,
}

/// Parses `REPORT RequestId: <id>\tDuration: <f> ms\t...`. Fields are
/// tab-separated (an XRAY segment may follow on a new line), in any order;
/// unknown fields go to `extra`.
fn parse_report(line: &str) -> Result<Report<'_>, FieldError> {
    let body = line.strip_prefix("REPORT").unwrap_or(line);
    let mut r = Report::default();
    for seg in body.split(['\t', '\n']) {
        let seg = seg.trim();
        if seg.is_empty() {
            continue;
        }
        let Some((key, value)) = seg.split_once(':') else {
            let unparsed = r
                .extra
                .entry("unparsed")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = unparsed {
                a.push(Value::String(seg.to_string()));
            }
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "RequestId" {
            // Tolerate a space instead of a tab after the id.
            let (id, rest) = match value.split_once(char::is_whitespace) {
                Some((id, rest)) => (id, rest.trim()),
                None => (value, ""),
            };
            r.request_id = Some(id).filter(|s| !s.is_empty());
            if let Some((k, v)) = rest.split_once(':') {
                report_field(&mut r, k.trim(), v.trim())?;
            }
        } else {
            report_field(&mut r, key, value)?;
        }
    }
    if r.request_id.is_none() {
        return Err(FieldError::new(
            "RequestId",
            "report line has no `RequestId` field",
        ));
    }
    if r.duration_ms.is_none() {
        return Err(FieldError::new(
            "Duration",
            "report line has no `Duration` field",
        ));
    }
    Ok(r)
}

fn report_field<'m>(r: &mut Report<'m>, key: &str, value: &'m str) -> Result<(), FieldError> {
    match key {
        "Duration" => r.duration_ms = Some(report_number(value, "Duration", "ms")?),
        "Billed Duration" => r.billed_ms = Some(report_int(value, "Billed Duration", "ms")?),
        "Memory Size" => r.memory_mb = Some(report_int(value, "Memory Size", "MB")?),
        "Max Memory Used" => r.max_memory_mb = Some(report_int(value, "Max Memory Used", "MB")?),
        "Init Duration" => r.init_ms = Some(report_number(value, "Init Duration", "ms")?),
        "Status" => match value.to_ascii_lowercase().as_str() {
            "timeout" => r.status = Some("timeout"),
            "error" => r.status = Some("error"),
            "success" => r.status = Some("success"),
            "failure" => r.status = Some("crash"),
            _ => {
                r.extra
                    .insert("Status".to_string(), Value::String(value.to_string()));
            }
        },
        "Error Type" => r.error_type = Some(value).filter(|s| !s.is_empty()),
        _ => {
            r.extra
                .insert(key.to_string(), Value::String(value.to_string()));
        }
    }
    Ok(())
}

/// `<number> <unit>` (the unit may be left out).
fn report_number(value: &str, field: &'static str, unit: &str) -> Result<f64, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!(
                "report field `{field}` is not a number of {unit}: `{}`",
                truncate(value, 64)
            ),
        )
    };
    let mut toks = value.split_whitespace();
    let num = toks.next().ok_or_else(bad)?;
    match toks.next() {
        None => {}
        Some(u) if u == unit => {}
        Some(_) => return Err(bad()),
    }
    if toks.next().is_some() {
        return Err(bad());
    }
    num.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(bad)
}

fn report_int(value: &str, field: &'static str, unit: &str) -> Result<i64, FieldError> {
    let f = report_number(value, field, unit)?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Ok(f as i64)
    } else {
        Err(FieldError::new(
            field,
            format!(
                "report field `{field}` is not a whole number of {unit}: `{}`",
                truncate(value, 64)
            ),
        ))
    }
}

fn emit_report(r: Report<'_>, ctx: &Ctx<'_, '_>, cw: &mut CloudWatchState, sink: &mut dyn Sink) {
    let Some(id) = r.request_id else {
        return;
    };
    let notes = cw
        .requests
        .remove(&request_key(ctx.group.function, id))
        .unwrap_or_default();
    let status = if r.status == Some("timeout") || notes.timed_out {
        "timeout"
    } else if let Some(s @ ("error" | "crash")) = r.status {
        s
    } else if notes.errored {
        "error"
    } else {
        "success"
    };
    let mut row = EventRow::new(EventType::Invocation, ctx.time_us, ctx.group.function);
    row.request_id = Some(Cow::Borrowed(id));
    row.version = notes.version.map(Cow::Owned);
    row.duration_ms = r.duration_ms;
    row.billed_ms = r.billed_ms;
    row.memory_mb = r.memory_mb;
    row.max_memory_mb = r.max_memory_mb;
    row.init_ms = r.init_ms;
    row.timeout_ms = notes.timeout_ms;
    row.status = Some(Cow::Borrowed(status));
    row.error_type = r.error_type.map(Cow::Borrowed);
    row.log_group = Some(Cow::Borrowed(ctx.group.log_group));
    row.log_stream = ctx.group.log_stream.map(Cow::Borrowed);
    if !r.extra.is_empty() {
        row.extra = Some(Value::Object(r.extra).to_string());
    }
    sink.event(&row);
}

// ---- application log lines -------------------------------------------------

/// The request id an application log line carries, if any (Node, Python and
/// runtime error formats).
pub(crate) fn plain_line_request_id(line: &str) -> Option<&str> {
    parse_plain(line).map(|(id, _)| id)
}

/// The request id of an application log line and whether the line reports an
/// error. Formats:
/// - Node: `<ts>\t<id>\t<LEVEL>\t<message>`
/// - Python: `[LEVEL]\t<ts>\t<id>\t<message>`
/// - the runtime: `RequestId: <id> Error: Runtime exited with error: ...`
fn parse_plain(line: &str) -> Option<(&str, bool)> {
    if let Some(rest) = line.strip_prefix("RequestId: ") {
        let (id, after) = rest.split_once(char::is_whitespace)?;
        let after = after.trim_start();
        let is_error = after.starts_with("Error:")
            || after.starts_with("Process exited before completing request");
        return valid_id(id).then_some((id, is_error));
    }
    let mut parts = line.splitn(4, '\t');
    let p0 = parts.next()?;
    let p1 = parts.next()?;
    let p2 = parts.next()?;
    let has_rest = parts.next().is_some();
    if let Some(level) = p0.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        // Python
        if is_level(level) && looks_like_timestamp(p1) && valid_id(p2) && (has_rest || is_uuid(p2))
        {
            return Some((p2, is_error_level(level)));
        }
        return None;
    }
    // Node
    if looks_like_timestamp(p0) && valid_id(p1) && ((has_rest && is_level(p2)) || is_uuid(p1)) {
        return Some((p1, is_error_level(p2)));
    }
    None
}

fn is_level(s: &str) -> bool {
    [
        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
    ]
    .contains(&s)
}

/// A plausible request id: no spaces, not a placeholder.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.contains(char::is_whitespace)
        && !matches!(s, "undefined" | "null" | "None" | "-")
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `YYYY-MM-DD...`
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::event::VecSink;

    const GROUP: &str = "/aws/lambda/orders-api";
    const STREAM: &str = "2026/11/23/[7]0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const ID1: &str = "8f1c0b6e-2b8e-4d41-9a53-0c1f7e2a9d10";
    const ID2: &str = "c2d7e0a4-6f3b-4b7e-8d2a-95e1f4a3b6c8";
    /// 2026-11-23T10:00:00.412Z
    const T0: i64 = 1_795_428_000_412;

    fn pos() -> Position {
        Position::file(Arc::from("cw.json"), 1)
    }

    fn payload(group: &str, messages: &[&str]) -> String {
        let events: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| json!({"id": format!("3792{i}"), "timestamp": T0 + i as i64, "message": m}))
            .collect();
        json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": group,
            "logStream": STREAM,
            "subscriptionFilters": ["fnwatch"],
            "logEvents": events,
        })
        .to_string()
    }

    fn decode_with(text: &str, cw: &mut CloudWatchState) -> VecSink {
        let mut sink = VecSink::default();
        let mut tapi = TelemetryState::default();
        decode_payload(text, &pos(), cw, &mut tapi, &mut sink);
        sink
    }

    fn decode(text: &str) -> VecSink {
        decode_with(text, &mut CloudWatchState::default())
    }

    fn report(id: &str, tail: &str) -> String {
        format!(
            "REPORT RequestId: {id}\tDuration: 84.21 ms\tBilled Duration: 85 ms\tMemory Size: 256 MB\tMax Memory Used: 91 MB\t{tail}\n"
        )
    }

    fn invocations(sink: &VecSink) -> Vec<&EventRow<'static>> {
        sink.events
            .iter()
            .filter(|e| e.event_type == EventType::Invocation)
            .collect()
    }

    #[test]
    fn start_report_end_make_one_invocation() {
        let start = format!("START RequestId: {ID1} Version: 12\n");
        let end = format!("END RequestId: {ID1}\n");
        let sink = decode(&payload(GROUP, &[&start, &end, &report(ID1, "")]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 1);
        let r = &sink.events[0];
        assert_eq!(r.event_type, EventType::Invocation);
        assert_eq!(r.function, "orders-api");
        assert_eq!(r.time_us, (T0 + 2) * 1000);
        assert_eq!(r.request_id.as_deref(), Some(ID1));
        assert_eq!(r.version.as_deref(), Some("12"));
        assert_eq!(r.duration_ms, Some(84.21));
        assert_eq!(r.billed_ms, Some(85));
        assert_eq!(r.memory_mb, Some(256));
        assert_eq!(r.max_memory_mb, Some(91));
        assert_eq!(r.init_ms, None);
        assert_eq!(r.timeout_ms, None);
        assert_eq!(r.status.as_deref(), Some("success"));
        assert_eq!(r.log_group.as_deref(), Some(GROUP));
        assert_eq!(r.log_stream.as_deref(), Some(STREAM));
        assert_eq!(r.extra, None);
        assert_eq!(sink.skipped, vec!["start line", "end line"]);
    }

    #[test]
    fn report_with_init_duration_and_unknown_fields() {
        let line = format!(
            "REPORT RequestId: {ID1}\tDuration: 1.5 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB\tInit Duration: 245.87 ms\tRestore Duration: 3.10 ms\t\nXRAY TraceId: 1-6561f0a0-0d3c2b1a09f8e7d6c5b4a392\tSegmentId: 5b4a3c2d1e0f9a8b\tSampled: true\t\n"
        );
        let sink = decode(&payload(GROUP, &[&line]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let r = &sink.events[0];
        assert_eq!(r.init_ms, Some(245.87));
        assert_eq!(r.memory_mb, Some(128));
        let extra: Value =
            serde_json::from_str(r.extra.as_deref().unwrap_or("null")).unwrap_or_default();
        assert_eq!(extra["Restore Duration"], "3.10 ms");
        assert_eq!(extra["XRAY TraceId"], "1-6561f0a0-0d3c2b1a09f8e7d6c5b4a392");
        assert_eq!(extra["Sampled"], "true");
    }

    #[test]
    fn timeout_line_then_report_is_timeout() {
        let start = format!("START RequestId: {ID1} Version: $LATEST\n");
        let timeout =
            format!("2026-11-23T10:00:03.412Z {ID1} Task timed out after 3.00 seconds\n\n");
        let sink = decode(&payload(GROUP, &[&start, &timeout, &report(ID1, "")]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.events[0].status.as_deref(), Some("timeout"));
        assert_eq!(sink.events[0].timeout_ms, Some(3000));
        assert_eq!(sink.events[0].version.as_deref(), Some("$LATEST"));
        assert!(sink.skipped.contains(&"timeout line"));

        // Tab-separated form, and state carried between payloads.
        let mut cw = CloudWatchState::default();
        let timeout = format!("2026-11-23T10:00:03.412Z\t{ID2}\tTask timed out after 0.50 seconds");
        let first = decode_with(&payload(GROUP, &[&timeout]), &mut cw);
        assert!(first.events.is_empty());
        let second = decode_with(&payload(GROUP, &[&report(ID2, "")]), &mut cw);
        assert_eq!(second.events[0].status.as_deref(), Some("timeout"));
        assert_eq!(second.events[0].timeout_ms, Some(500));
        // The REPORT closes the request: a second REPORT for it is plain.
        let third = decode_with(&payload(GROUP, &[&report(ID2, "")]), &mut cw);
        assert_eq!(third.events[0].status.as_deref(), Some("success"));
    }

    #[test]
    fn status_field_on_report() {
        let sink = decode(&payload(
            GROUP,
            &[
                &report(ID1, "Status: timeout"),
                &report(ID2, "Status: error\tError Type: Runtime.ExitError"),
            ],
        ));
        let inv = invocations(&sink);
        assert_eq!(inv[0].status.as_deref(), Some("timeout"));
        assert_eq!(inv[1].status.as_deref(), Some("error"));
        assert_eq!(inv[1].error_type.as_deref(), Some("Runtime.ExitError"));
    }

    #[test]
    fn error_log_lines_mark_the_invocation() {
        let node = format!(
            "2026-11-23T10:00:00.500Z\t{ID1}\tERROR\tInvoke Error \t{{\"errorType\":\"TypeError\"}}\n"
        );
        let py = "[ERROR]\t2026-11-23T10:00:00.500Z\treq-7\tKeyError: 'user'\n";
        let json_err = r#"{"timestamp":"2026-11-23T10:00:00.500Z","level":"ERROR","message":"db down","requestId":"req-8"}"#;
        let runtime =
            "RequestId: req-9 Error: Runtime exited with error: signal: killed\nRuntime.ExitError";
        let info = format!("2026-11-23T10:00:00.500Z\t{ID2}\tINFO\tall good\n");
        let sink = decode(&payload(
            GROUP,
            &[
                &node,
                py,
                json_err,
                runtime,
                &info,
                &report(ID1, ""),
                &report("req-7", ""),
                &report("req-8", ""),
                &report("req-9", ""),
                &report(ID2, ""),
            ],
        ));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let statuses: Vec<_> = invocations(&sink)
            .iter()
            .map(|r| {
                (
                    r.request_id.as_deref().unwrap_or(""),
                    r.status.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            vec![
                (ID1, "error"),
                ("req-7", "error"),
                ("req-8", "error"),
                ("req-9", "error"),
                (ID2, "success")
            ]
        );
    }

    #[test]
    fn control_message_is_skipped() {
        let text = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1795428000412,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        let sink = decode(text);
        assert!(sink.events.is_empty() && sink.dead.is_empty());
        assert_eq!(sink.skipped, vec!["cloudwatch control message"]);
    }

    #[test]
    fn unknown_log_group_is_one_dead_letter() {
        for group in [
            "/ecs/orders",
            "/aws/lambda/",
            "/aws/lambda/a/b",
            "orders-api",
        ] {
            let text = payload(group, &["hello", "world"]);
            let sink = decode(&text);
            assert!(sink.events.is_empty());
            assert_eq!(sink.dead.len(), 1, "{group}");
            let d = &sink.dead[0];
            assert_eq!(d.field.as_deref(), Some("logGroup"));
            assert!(d.reason.contains(group), "{}", d.reason);
            assert!(d.reason.contains("/aws/lambda/<function>"), "{}", d.reason);
            assert_eq!(d.position, pos());
            assert_eq!(d.raw, text.as_bytes());
        }
    }

    #[test]
    fn malformed_payloads_name_the_field() {
        let cases = [
            (
                r#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/f","logStream":"s"}"#,
                Some("logEvents"),
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/f","logEvents":{"a":1}}"#,
                Some("logEvents"),
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logGroup":7,"logEvents":[]}"#,
                Some("logGroup"),
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#,
                Some("logGroup"),
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/f","logStream":5,"logEvents":[]}"#,
                Some("logStream"),
            ),
            (
                r#"{"messageType":"SOMETHING","logGroup":"/aws/lambda/f","logEvents":[]}"#,
                Some("messageType"),
            ),
            (
                r#"{"messageType":1,"logGroup":"/aws/lambda/f","logEvents":[]}"#,
                Some("messageType"),
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/f","logEvents":[]"#,
                None,
            ),
        ];
        for (text, field) in cases {
            let sink = decode(text);
            assert_eq!(sink.dead.len(), 1, "{text}");
            assert_eq!(
                sink.dead[0].field.as_deref(),
                field,
                "{text}: {}",
                sink.dead[0].reason
            );
            assert!(!sink.dead[0].reason.ends_with('.'));
        }
    }

    #[test]
    fn one_bad_log_event_keeps_the_others() {
        let text = json!({
            "messageType": "DATA_MESSAGE",
            "logGroup": GROUP,
            "logStream": STREAM,
            "logEvents": [
                {"id": "1", "timestamp": T0, "message": "first line\n"},
                {"id": "2", "message": "no timestamp"},
                {"id": "3", "timestamp": "soon", "message": "bad timestamp"},
                {"id": "4", "timestamp": T0},
                {"id": "5", "timestamp": T0, "message": 42},
                [1, 2],
                {"id": "7", "timestamp": T0, "message": report(ID1, "").replace("84.21", "abc")},
                {"id": "8", "timestamp": T0 + 1, "message": "last line"},
            ]
        })
        .to_string();
        let sink = decode(&text);
        let msgs: Vec<_> = sink
            .events
            .iter()
            .filter_map(|e| e.message.as_deref())
            .collect();
        assert_eq!(msgs, vec!["first line", "last line"]);
        let fields: Vec<_> = sink.dead.iter().map(|d| d.field.as_deref()).collect();
        assert_eq!(
            fields,
            vec![
                Some("timestamp"),
                Some("timestamp"),
                Some("message"),
                Some("message"),
                None,
                Some("Duration")
            ]
        );
        let steps: Vec<_> = sink.dead.iter().map(|d| d.position.steps.clone()).collect();
        assert_eq!(steps[0], vec![Step::LogEvent(1)]);
        assert_eq!(steps[5], vec![Step::LogEvent(6)]);
        assert_eq!(sink.dead[0].raw, br#"{"id":"2","message":"no timestamp"}"#);
        assert!(
            sink.dead[5].reason.contains("`Duration`") && sink.dead[5].reason.contains("abc"),
            "{}",
            sink.dead[5].reason
        );
    }

    #[test]
    fn bad_report_lines_are_dead_lettered() {
        let cases = [
            (
                "REPORT Duration: 1.0 ms\tBilled Duration: 1 ms",
                "RequestId",
            ),
            ("REPORT RequestId: \tDuration: 1.0 ms", "RequestId"),
            ("REPORT RequestId: r1\tBilled Duration: 1 ms", "Duration"),
            (
                "REPORT RequestId: r1\tDuration: 1.0 ms\tBilled Duration: 1.5 ms",
                "Billed Duration",
            ),
            ("REPORT RequestId: r1\tDuration: 1.0 s", "Duration"),
            ("REPORT RequestId: r1\tDuration: NaN ms", "Duration"),
            (
                "REPORT RequestId: r1\tDuration: 1.0 ms\tMax Memory Used: lots MB",
                "Max Memory Used",
            ),
        ];
        for (line, field) in cases {
            let sink = decode(&payload(GROUP, &[line]));
            assert!(sink.events.is_empty(), "{line}");
            assert_eq!(sink.dead.len(), 1, "{line}");
            assert_eq!(
                sink.dead[0].field.as_deref(),
                Some(field),
                "{line}: {}",
                sink.dead[0].reason
            );
            assert_eq!(sink.dead[0].position.steps, vec![Step::LogEvent(0)]);
        }
        // A trailing tab, spaces before tabs and a space after the id are fine.
        let ok = "REPORT RequestId: r2 Duration: 3.00 ms\tBilled Duration: 100 ms \tMemory Size: 128 MB\tMax Memory Used: 18 MB\t";
        let sink = decode(&payload(GROUP, &[ok]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events[0].request_id.as_deref(), Some("r2"));
        assert_eq!(sink.events[0].duration_ms, Some(3.0));
        assert_eq!(sink.events[0].billed_ms, Some(100));
    }

    #[test]
    fn platform_lines_are_skipped() {
        let lines = [
            "INIT_START Runtime Version: nodejs:20.v13\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:0a1b\n",
            "INIT_REPORT Init Duration: 10003.45 ms\tPhase: init\tStatus: timeout\n",
            "EXTENSION\tName: fnwatch-sensor\tState: Ready\tEvents: [INVOKE, SHUTDOWN]\n",
            "TELEMETRY\tName: fnwatch-sensor\tState: Subscribed\tTypes: [Platform, Function]\n",
            "RESTORE_START Runtime Version: java:17.v15\n",
            "RESTORE_REPORT Restore Duration: 210.20 ms\n",
            "XRAY TraceId: 1-6561f0a0-0d3c2b1a09f8e7d6c5b4a392\tSegmentId: 5b4a3c2d1e0f9a8b\tSampled: true\n",
        ];
        let sink = decode(&payload(GROUP, &lines));
        assert!(
            sink.events.is_empty() && sink.dead.is_empty(),
            "{:?}",
            sink.events
        );
        assert_eq!(sink.skipped.len(), lines.len());
    }

    #[test]
    fn json_native_event_in_a_message() {
        let native = r#"{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"orders-api","request_id":"8f1c","query":"dynamodb.us-east-1.amazonaws.com","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10"]}"#;
        let bad = r#"{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"orders-api","request_id":"8f1c"}"#;
        let line = format!("{native}\n");
        let sink = decode(&payload(GROUP, &[&line, bad]));
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.events[0].event_type, EventType::Dns);
        assert_eq!(
            sink.events[0].query.as_deref(),
            Some("dynamodb.us-east-1.amazonaws.com")
        );
        assert_eq!(
            sink.dead.len(),
            1,
            "the native decoder rejects a dns event without query"
        );
        assert_eq!(sink.dead[0].position.steps, vec![Step::LogEvent(1)]);
    }

    #[test]
    fn json_platform_report_in_a_message() {
        let start = r#"{"time":"2026-11-23T10:00:00.100Z","type":"platform.start","record":{"requestId":"r-1","version":"$LATEST"}}"#;
        let app = r#"{"timestamp":"2026-11-23T10:00:00.200Z","level":"INFO","requestId":"r-1","message":"hello"}"#;
        let rep = r#"{"time":"2026-11-23T10:00:00.412Z","type":"platform.report","record":{"requestId":"r-1","status":"success","metrics":{"durationMs":12.5,"billedDurationMs":13,"memorySizeMB":512,"maxMemoryUsedMB":80}}}"#;
        let sink = decode(&payload(GROUP, &[start, app, rep]));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 2);
        assert_eq!(sink.events[0].event_type, EventType::Log);
        assert_eq!(sink.events[0].request_id.as_deref(), Some("r-1"));
        let inv = &sink.events[1];
        assert_eq!(inv.event_type, EventType::Invocation);
        assert_eq!(inv.function, "orders-api");
        assert_eq!(inv.version.as_deref(), Some("$LATEST"));
        assert_eq!(inv.duration_ms, Some(12.5));
        assert_eq!(inv.memory_mb, Some(512));
        assert_eq!(inv.time_us, 1_795_428_000_412_000);
    }

    #[test]
    fn app_log_lines_become_log_rows() {
        let lines = [
            format!("2026-11-23T10:00:00.300Z\t{ID1}\tINFO\tloaded 3 items\n"),
            "[WARNING]\t2026-11-23T10:00:00.301Z\treq-5\tslow query: 812 ms\n".to_string(),
            "plain text from a Go function\n".to_string(),
            "{not json at all".to_string(),
            "2026-11-23T10:00:00.302Z\tundefined\tINFO\tcold start\n".to_string(),
            "[INFO]\t2026-11-23T10:00:00.303Z\tFound credentials in environment variables.\n"
                .to_string(),
            String::new(),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let sink = decode(&payload(GROUP, &refs));
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), lines.len());
        for (i, e) in sink.events.iter().enumerate() {
            assert_eq!(e.event_type, EventType::Log);
            assert_eq!(e.function, "orders-api");
            assert_eq!(e.time_us, (T0 + i as i64) * 1000);
            assert_eq!(e.log_group.as_deref(), Some(GROUP));
            assert_eq!(e.log_stream.as_deref(), Some(STREAM));
            assert_eq!(e.message.as_deref(), Some(lines[i].trim_end_matches('\n')));
        }
        let ids: Vec<_> = sink
            .events
            .iter()
            .map(|e| e.request_id.as_deref())
            .collect();
        assert_eq!(
            ids,
            vec![Some(ID1), Some("req-5"), None, None, None, None, None]
        );
    }

    #[test]
    fn escaped_messages_are_unescaped() {
        let text = format!(
            r#"{{"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/orders-api","logStream":"s","logEvents":[{{"id":"1","timestamp":{T0},"message":"START RequestId: r-3 Version: 4\n"}},{{"id":"2","timestamp":{T0},"message":"REPORT RequestId: r-3\tDuration: 2.00 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\t\n"}},{{"id":"3","timestamp":{T0},"message":"caf\u00e9 \"quoted\"\n"}}]}}"#
        );
        let sink = decode(&text);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events[0].version.as_deref(), Some("4"));
        assert_eq!(sink.events[1].message.as_deref(), Some("café \"quoted\""));
    }

    #[test]
    fn gzipped_payload_through_the_dispatcher() {
        use std::io::Write;
        let start = format!("START RequestId: {ID1} Version: 3\n");
        let text = payload(GROUP, &[&start, &report(ID1, "")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap_or_default();
        let bytes = gz.finish().unwrap_or_default();
        let mut state = crate::decode::DecodeState::default();
        let mut sink = VecSink::default();
        crate::decode::decode_record(&bytes, &pos(), &mut state, &mut sink);
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        assert_eq!(sink.events.len(), 1);
        assert_eq!(sink.events[0].version.as_deref(), Some("3"));
    }

    #[test]
    fn state_is_bounded() {
        let mut cw = CloudWatchState::default();
        let lines: Vec<String> = (0..MAX_REMEMBERED_TEST)
            .map(|i| format!("START RequestId: id-{i} Version: 1"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        decode_with(&payload(GROUP, &refs), &mut cw);
        assert_eq!(
            cw.requests.len(),
            super::super::telemetry_api::MAX_REMEMBERED
        );
        let sink = decode_with(&payload(GROUP, &[&report("id-0", "")]), &mut cw);
        assert_eq!(
            sink.events[0].version, None,
            "the oldest request was forgotten"
        );
        let last = format!("id-{}", MAX_REMEMBERED_TEST - 1);
        let sink = decode_with(&payload(GROUP, &[&report(&last, "")]), &mut cw);
        assert_eq!(sink.events[0].version.as_deref(), Some("1"));
    }

    const MAX_REMEMBERED_TEST: usize = super::super::telemetry_api::MAX_REMEMBERED + 5;

    #[test]
    fn state_is_bounded_in_bytes_against_long_ids_and_versions() {
        use super::super::telemetry_api::{MAX_NOTE_CHARS, MAX_REMEMBERED_BYTES};
        let mut cw = CloudWatchState::default();
        let version = "v".repeat(5000);
        let id = |i: usize| format!("{i:0>900}");
        for chunk in 0..10 {
            let lines: Vec<String> = (0..200)
                .map(|i| {
                    format!(
                        "START RequestId: {} Version: {version}",
                        id(chunk * 200 + i)
                    )
                })
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            decode_with(&payload(GROUP, &refs), &mut cw);
            let held = cw.requests.bytes();
            assert!(held <= MAX_REMEMBERED_BYTES, "{held} bytes after {chunk}");
        }
        assert!(cw.requests.len() > 500, "{}", cw.requests.len());
        assert!(cw.requests.len() < 2000, "nothing was forgotten");
        let sink = decode_with(&payload(GROUP, &[&report(&id(1999), "")]), &mut cw);
        let v = sink.events[0].version.as_deref().unwrap_or_default();
        assert_eq!(
            v.chars().count(),
            MAX_NOTE_CHARS + 1,
            "cut with an ellipsis"
        );
        let sink = decode_with(&payload(GROUP, &[&report(&id(0), "")]), &mut cw);
        assert_eq!(sink.events[0].version, None, "the oldest was forgotten");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let weird = [
            "",
            "{",
            "[]",
            "null",
            "{}",
            "REPORT",
            "REPORT RequestId:",
            "REPORT RequestId: x\tDuration:",
            "START RequestId:",
            "START RequestId: x Version:",
            "END",
            "x Task timed out after",
            "2026-11-23 x Task timed out after 1e400 seconds",
            "RequestId: ",
            "RequestId: x",
            "[ERROR]",
            "[ERROR]\t\t",
            "\t\t\t",
            "{\"type\":\"platform.report\"}",
            "{\"type\":5}",
            "{\"type\":\"dns\"}",
            "{\"level\":50,\"requestId\":\"q\"}",
            "é\tü\t€\t",
            "REPORT RequestId: x\tDuration: 99999999999999999999999 ms\tBilled Duration: 1e300 ms",
        ];
        let sink = decode(&payload(GROUP, &weird));
        assert_eq!(
            sink.events.len() + sink.dead.len() + sink.skipped.len(),
            weird.len()
        );
        for text in [
            "",
            "{}",
            "{\"messageType\":null}",
            "{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/aws/lambda/f\",\"logEvents\":[1,null,[],{\"timestamp\":-9223372036854775808,\"message\":\"m\"}]}",
        ] {
            let _ = decode(text);
        }
    }

    #[test]
    fn fixture_files_decode_as_documented() {
        let data = include_str!("../../tests/fixtures/cloudwatch/data_message.json");
        let sink = decode(data.trim_end());
        assert!(sink.dead.is_empty(), "{:?}", sink.dead);
        let inv = invocations(&sink);
        let got: Vec<_> = inv
            .iter()
            .map(|r| {
                (
                    r.status.as_deref(),
                    r.init_ms,
                    r.timeout_ms,
                    r.version.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("success"), Some(211.87), None, Some("$LATEST")),
                (Some("error"), None, None, Some("$LATEST")),
                (Some("timeout"), None, Some(3000), Some("$LATEST")),
            ]
        );
        assert_eq!(sink.events.len(), 6);
        assert_eq!(sink.skipped.len(), 8);

        let sink =
            decode(include_str!("../../tests/fixtures/cloudwatch/control_message.json").trim_end());
        assert_eq!(sink.skipped, vec!["cloudwatch control message"]);
        assert!(sink.events.is_empty() && sink.dead.is_empty());

        let sink = decode(
            include_str!("../../tests/fixtures/cloudwatch/unknown_log_group.json").trim_end(),
        );
        assert_eq!(sink.dead.len(), 1);
        assert_eq!(sink.dead[0].field.as_deref(), Some("logGroup"));
        assert!(sink.events.is_empty());
    }

    /// Contract v1.1, section 3: a native event in a function's log group is
    /// bound to that function and the payload's owner account.
    #[test]
    fn native_events_are_bound_to_the_log_groups_identity() {
        let own = r#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"orders-api","request_id":"r-1","query":"a.example.com"}"#;
        let accounted = r#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"orders-api","account":"123456789012","request_id":"r-2","query":"b.example.com"}"#;
        let other_fn = r#"{"type":"api_call","time":"2026-11-23T10:00:00Z","function":"payments-api","request_id":"r-3","service":"kms","action":"Decrypt"}"#;
        let other_acct = r#"{"type":"dns","time":"2026-11-23T10:00:00Z","function":"orders-api","account":"999999999999","request_id":"r-4","query":"c.example.com"}"#;
        let sink = decode(&payload(GROUP, &[own, other_fn, accounted, other_acct]));
        assert_eq!(sink.events.len(), 2, "{:?}", sink.dead);
        assert!(
            sink.events
                .iter()
                .all(|e| e.account.as_deref() == Some("123456789012"))
        );
        assert_eq!(sink.dead.len(), 2);
        let (f, a) = (&sink.dead[0], &sink.dead[1]);
        assert_eq!(f.field.as_deref(), Some("function"));
        assert!(
            f.reason.contains("`payments-api`") && f.reason.contains("`orders-api`"),
            "{}",
            f.reason
        );
        assert_eq!(f.position.steps, vec![Step::LogEvent(1)]);
        assert_eq!(a.field.as_deref(), Some("account"));
        assert!(
            a.reason.contains("`999999999999`") && a.reason.contains("`123456789012`"),
            "{}",
            a.reason
        );
    }
}
