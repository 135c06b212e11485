//! Decoders for every record shape of the telemetry contract
//! (`shared/spec/telemetry.md`, section 1).
//!
//! [`decode_record`] looks at the first bytes of a record and dispatches:
//! KPL aggregate, gzip, a JSON object (native event, CloudWatch Logs payload,
//! or JSON Lines), or a JSON array (native events or a Lambda Telemetry API
//! batch). Nested shapes decode recursively. Every problem becomes a dead
//! letter for the smallest part that is bad; the good parts beside it are kept.

pub mod cloudtrail;
pub mod cloudwatch;
pub mod kpl;
pub mod native;
pub mod telemetry_api;

#[cfg(test)]
pub(crate) mod fuzz;
#[cfg(test)]
mod tests;

use std::io::Read;

use serde_json::value::RawValue;

use crate::event::{DeadLetter, Position, Sink, Step};

/// Limits that keep one hostile record from exhausting memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest record accepted (a file line or a Kinesis record), in bytes.
    /// A CloudWatch Logs payload written out as plain JSON can pass 1 MiB.
    pub max_record_bytes: usize,
    /// Largest decompressed size of one gzip record, in bytes.
    pub max_decompressed_bytes: usize,
    /// Deepest nesting of record shapes (KPL in gzip in ...).
    pub max_depth: u32,
    /// Most dead letters one record (a file line, a Kinesis record, with
    /// everything nested in it) gets one by one. A record with more bad parts
    /// (a gzip bomb of `[1,1,1,...]`, a KPL aggregate of a million broken
    /// inner records) becomes one dead letter that summarises them, so one
    /// record can never cost more than this many rows of memory.
    pub max_dead_letters_per_record: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 4 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_depth: 4,
            max_dead_letters_per_record: 100,
        }
    }
}

/// State a decoder keeps between records of one source (a file, a shard):
/// CloudWatch Logs and Telemetry API records of one invocation arrive apart.
#[derive(Debug, Default)]
pub struct DecodeState {
    pub limits: Limits,
    pub(crate) cloudwatch: cloudwatch::CloudWatchState,
    pub(crate) telemetry: telemetry_api::TelemetryState,
}

impl DecodeState {
    pub fn new(limits: Limits) -> Self {
        DecodeState {
            limits,
            ..Default::default()
        }
    }
}

/// The magic that opens a KPL-aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Decodes one record (a Kinesis record's data, or one line of a file).
///
/// The record's events go to `sink` as they are decoded. Its dead letters are
/// held until the record is done: up to
/// [`Limits::max_dead_letters_per_record`] of them reach `sink` one by one,
/// and a record with more becomes one dead letter summarising them all.
pub fn decode_record(bytes: &[u8], pos: &Position, state: &mut DecodeState, sink: &mut dyn Sink) {
    let mut record = RecordSink::new(sink, state.limits.max_dead_letters_per_record);
    decode_at_depth(bytes, pos, state, &mut record, 0);
    record.finish(pos, bytes);
}

/// The sink of one record: passes events on, holds at most `limit` dead
/// letters and counts the rest.
struct RecordSink<'s> {
    inner: &'s mut dyn Sink,
    limit: usize,
    held: Vec<DeadLetter>,
    count: u64,
}

impl<'s> RecordSink<'s> {
    fn new(inner: &'s mut dyn Sink, limit: usize) -> Self {
        RecordSink {
            inner,
            limit,
            held: Vec::new(),
            count: 0,
        }
    }

    fn finish(self, pos: &Position, bytes: &[u8]) {
        if self.count <= self.limit as u64 {
            for dl in self.held {
                self.inner.dead_letter(dl);
            }
            return;
        }
        self.inner
            .dead_letter(summarise_dead_letters(&self.held, self.count, pos, bytes));
    }
}

impl Sink for RecordSink<'_> {
    fn event(&mut self, row: &crate::event::EventRow<'_>) {
        self.inner.event(row);
    }
    fn dead_letter(&mut self, dl: DeadLetter) {
        self.count += 1;
        if self.held.len() < self.limit {
            self.held.push(dl);
        }
    }
    fn skipped(&mut self, what: &'static str) {
        self.inner.skipped(what);
    }
}

/// One dead letter for a record with `count` bad parts, of which `first`
/// are the first: the count, the distinct reasons among the first (with how
/// often each came), where the first was, and the record's own bytes.
fn summarise_dead_letters(
    first: &[DeadLetter],
    count: u64,
    pos: &Position,
    bytes: &[u8],
) -> DeadLetter {
    let mut reasons: Vec<(&str, u64)> = Vec::new();
    for dl in first {
        match reasons.iter_mut().find(|(r, _)| *r == dl.reason) {
            Some((_, n)) => *n += 1,
            None => reasons.push((&dl.reason, 1)),
        }
    }
    let shown: Vec<String> = reasons
        .iter()
        .take(3)
        .map(|(r, n)| format!("{n}× {}", truncate(r, 160)))
        .collect();
    let mut reason = format!(
        "record has {count} bad parts, more than the {} kept one by one; they are summarised here. Among the first {}: {}",
        first.len(),
        first.len(),
        shown.join("; ")
    );
    if reasons.len() > 3 {
        reason.push_str(&format!("; and {} other reasons", reasons.len() - 3));
    }
    if let Some(dl) = first.first()
        && !dl.position.steps.is_empty()
    {
        reason.push_str(&format!(" (the first at {})", dl.position.steps_text()));
    }
    let mut dl = DeadLetter::new(reason, pos, bytes);
    dl.field = first.first().and_then(|d| d.field.clone());
    dl
}

pub(crate) fn decode_at_depth(
    bytes: &[u8],
    pos: &Position,
    state: &mut DecodeState,
    sink: &mut dyn Sink,
    depth: u32,
) {
    if depth > state.limits.max_depth {
        sink.dead_letter(DeadLetter::new(
            format!(
                "record nests more than {} levels of KPL/gzip framing",
                state.limits.max_depth
            ),
            pos,
            bytes,
        ));
        return;
    }
    if bytes.len() > state.limits.max_record_bytes
        && !(bytes.len() <= state.limits.max_decompressed_bytes && is_cloudtrail_file(bytes))
    {
        sink.dead_letter(DeadLetter::new(
            format!(
                "record too large: {} bytes (limit {} bytes)",
                bytes.len(),
                state.limits.max_record_bytes
            ),
            pos,
            &bytes[..bytes.len().min(4096)],
        ));
        return;
    }
    if bytes.starts_with(&KPL_MAGIC) {
        kpl::decode(bytes, pos, state, sink, depth);
        return;
    }
    if bytes.starts_with(&[0x1F, 0x8B]) {
        decode_gzip(bytes, pos, state, sink, depth);
        return;
    }
    let trimmed = trim_ascii_start(bytes);
    match trimmed.first() {
        None => sink.dead_letter(DeadLetter::new("empty record", pos, bytes)),
        Some(b'{') | Some(b'[') => {
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    sink.dead_letter(DeadLetter::new(
                        format!(
                            "record is not valid UTF-8 (invalid byte at offset {})",
                            e.valid_up_to()
                        ),
                        pos,
                        bytes,
                    ));
                    return;
                }
            };
            if trimmed[0] == b'[' {
                decode_json_array(text, pos, state, sink);
            } else {
                decode_json_object_or_lines(text, pos, state, sink);
            }
        }
        Some(&b) => sink.dead_letter(DeadLetter::new(
            format!(
                "unrecognised record: starts with byte 0x{b:02X}; expected a JSON object or array, gzip or a KPL aggregate"
            ),
            pos,
            bytes,
        )),
    }
}

/// Whether a record is a CloudTrail log file as CloudTrail writes it
/// (`{"Records":[`): such files are often larger than one telemetry record
/// and are taken up to the decompressed-record limit.
pub(crate) fn is_cloudtrail_file(bytes: &[u8]) -> bool {
    let t = trim_ascii_start(bytes);
    t.starts_with(b"{") && trim_ascii_start(&t[1..]).starts_with(b"\"Records\"")
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn decode_gzip(
    bytes: &[u8],
    pos: &Position,
    state: &mut DecodeState,
    sink: &mut dyn Sink,
    depth: u32,
) {
    let limit = state.limits.max_decompressed_bytes;
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut dec = flate2::read::MultiGzDecoder::new(bytes).take(limit as u64 + 1);
    if let Err(e) = dec.read_to_end(&mut out) {
        sink.dead_letter(DeadLetter::new(
            format!("gzip record cannot be decompressed: {e}"),
            pos,
            bytes,
        ));
        return;
    }
    if out.len() > limit {
        sink.dead_letter(DeadLetter::new(
            format!("gzip record decompresses to more than {limit} bytes"),
            pos,
            bytes,
        ));
        return;
    }
    // The decompressed content may itself be large (a CloudWatch payload):
    // the per-record limit applies to what arrived, not what it inflates to.
    let saved = state.limits.max_record_bytes;
    state.limits.max_record_bytes = limit;
    decode_at_depth(&out, pos, state, sink, depth + 1);
    state.limits.max_record_bytes = saved;
}

/// A JSON object: a CloudWatch Logs payload, one native event, or several
/// native events on separate lines (JSON Lines inside one record).
fn decode_json_object_or_lines(
    text: &str,
    pos: &Position,
    state: &mut DecodeState,
    sink: &mut dyn Sink,
) {
    let body = text.trim();
    // Several lines: decode each on its own, so one bad line keeps the rest.
    if body.contains('\n') && serde_json::from_str::<&RawValue>(body).is_err() {
        for (i, line) in body.split('\n').enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let p = pos.child(Step::Line(i as u32 + 1));
            decode_object(line, &p, state, sink);
        }
        return;
    }
    decode_object(body, pos, state, sink);
}

/// One JSON object text.
fn decode_object(text: &str, pos: &Position, state: &mut DecodeState, sink: &mut dyn Sink) {
    if text.starts_with('[') {
        decode_json_array(text, pos, state, sink);
        return;
    }
    if looks_like_cloudwatch(text) {
        cloudwatch::decode_payload(text, pos, &mut state.cloudwatch, &mut state.telemetry, sink);
        return;
    }
    match cloudtrail::envelope(text) {
        Some(cloudtrail::Envelope::LogFile) => cloudtrail::decode_log_file(text, pos, sink),
        Some(cloudtrail::Envelope::EventBridge) => cloudtrail::decode_eventbridge(text, pos, sink),
        Some(cloudtrail::Envelope::Digest) => sink.skipped("cloudtrail digest file"),
        Some(cloudtrail::Envelope::Record) => cloudtrail::decode_record_text(text, pos, sink),
        None => native::decode_native(text, pos, sink),
    }
}

/// A CloudWatch Logs subscription payload has a top-level `messageType`.
fn looks_like_cloudwatch(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "messageType", borrow)]
        message_type: Option<&'a RawValue>,
    }
    if !text.contains("\"messageType\"") {
        return false;
    }
    matches!(
        serde_json::from_str::<Probe<'_>>(text),
        Ok(Probe {
            message_type: Some(_)
        })
    )
}

/// A JSON array: native events, or Lambda Telemetry API items. Elements are
/// decoded as the array is read, never collected first: an array of millions
/// of tiny elements costs no more memory than its text.
fn decode_json_array(text: &str, pos: &Position, state: &mut DecodeState, sink: &mut dyn Sink) {
    // A malformed array is one dead letter and nothing of it is taken (its
    // raw bytes replay whole): check the syntax first, allocating nothing.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        sink.dead_letter(DeadLetter::new(
            format!("JSON array is malformed: {e}"),
            pos,
            text.as_bytes(),
        ));
        return;
    }
    let walked = for_each_element(text, |i, raw| {
        decode_array_element(raw, &pos.child(Step::Element(i)), state, sink);
    });
    if let Err(e) = walked {
        // Not reached after the check above; kept so no error is silent.
        tracing::warn!(position = %pos, error = %e, "JSON array could not be walked after it parsed");
    }
}

/// Calls `f` with the index and text of each element of the JSON array
/// `text`, in order, as the array is read: nothing is collected, so an array
/// of millions of tiny elements costs no memory beyond its text. An error
/// when `text` is not an array or is malformed (the elements before the
/// error were passed to `f` already).
pub(crate) fn for_each_element<'de>(
    text: &'de str,
    f: impl FnMut(u32, &'de str),
) -> Result<(), serde_json::Error> {
    use serde::Deserializer as _;
    let mut de = serde_json::Deserializer::from_str(text);
    (&mut de).deserialize_seq(ElementWalk(f))?;
    de.end()
}

struct ElementWalk<F>(F);

impl<'de, F: FnMut(u32, &'de str)> serde::de::Visitor<'de> for ElementWalk<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut i: u32 = 0;
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            (self.0)(i, item.get());
            i = i.saturating_add(1);
        }
        Ok(())
    }
}

/// One element of a JSON array: a Telemetry API item or a native event.
fn decode_array_element(raw: &str, p: &Position, state: &mut DecodeState, sink: &mut dyn Sink) {
    #[derive(serde::Deserialize)]
    struct TypeProbe<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        record: Option<&'a RawValue>,
    }
    if !raw.starts_with('{') {
        sink.dead_letter(DeadLetter::new(
            "array element is not a JSON object",
            p,
            raw.as_bytes(),
        ));
        return;
    }
    let telemetry = match serde_json::from_str::<TypeProbe<'_>>(raw) {
        Ok(TypeProbe {
            kind: Some(k),
            record,
        }) => {
            telemetry_api::is_telemetry_type(&k) && (record.is_some() || k.starts_with("platform."))
        }
        _ => false,
    };
    if telemetry {
        telemetry_api::decode_item(raw, None, p, &mut state.telemetry, sink);
    } else {
        native::decode_native(raw, p, sink);
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut: hostile
/// values stay readable in error messages.
pub(crate) fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some((i, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// The shape almost every producer writes, `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction of 1 to 9 digits, then `Z` or `±HH:MM`, read without
/// chrono's general parser (about a tenth of the native decoder's time). `None`
/// for anything else, valid or not (leap seconds, lower-case `t`/`z`, a space,
/// year 0, long fractions): [`parse_time_us`] then asks chrono.
fn common_time_us(s: &[u8]) -> Option<i64> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let digit = |i: usize| -> Option<i64> {
        let d = s[i].wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    let two = |i: usize| -> Option<i64> { Some(digit(i)? * 10 + digit(i + 1)?) };
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year == 0 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if s[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for k in 0..6 {
            micros = micros * 10 + if k < n { digit(start + k)? } else { 0 };
        }
    }
    let offset = match &s[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (two(i + 1)?, two(i + 4)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 3600 + m * 60
            } else {
                -(h * 3600 + m * 60)
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds * 1_000_000 + micros)
}

/// Parses an RFC 3339 timestamp with offset into UTC microseconds; the error
/// names the field `time` and says whether only the offset is missing.
pub fn parse_time_us(s: &str) -> Result<i64, String> {
    if let Some(us) = common_time_us(s.as_bytes()) {
        return Ok(us);
    }
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t.timestamp_micros()),
        Err(e) => {
            if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
            {
                Err(format!(
                    "field `time` has no UTC offset: `{}` (expected RFC 3339 such as 2026-11-23T10:00:00.123Z)",
                    truncate(s, 64)
                ))
            } else {
                Err(format!(
                    "field `time` is not an RFC 3339 timestamp: `{}` ({e})",
                    truncate(s, 64)
                ))
            }
        }
    }
}
