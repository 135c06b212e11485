//! Native events (telemetry contract, section 2): one JSON object per event.
//!
//! The object is read in one pass straight into an [`EventRow`] that borrows
//! its strings from the input; only escaped strings allocate. A scanner for
//! the common shape ([`fast`]) reads nearly every event; the rest, and every
//! error, go through a hand-written serde visitor. Unknown fields, and fields
//! that belong to another event type, are kept as JSON text in `extra`.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::{DeadLetter, EventRow, EventType, Position, Sink, Str};

/// Why a native event was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeError {
    pub reason: String,
    pub field: Option<String>,
}

impl NativeError {
    fn field(field: &str, reason: String) -> Self {
        NativeError {
            reason,
            field: Some(field.to_string()),
        }
    }
}

/// Decodes one JSON object text as a native event; a bad one becomes a dead letter.
pub(crate) fn decode_native(text: &str, pos: &Position, sink: &mut dyn Sink) {
    match parse_native(text) {
        Ok(row) => sink.event(&row),
        Err(e) => sink.dead_letter(native_dead_letter(e, pos, text)),
    }
}

/// The dead letter of a rejected native event.
pub(crate) fn native_dead_letter(e: NativeError, pos: &Position, text: &str) -> DeadLetter {
    let mut dl = DeadLetter::new(e.reason, pos, text.as_bytes());
    dl.field = e.field;
    dl
}

/// Parses and validates one native event.
pub fn parse_native(text: &str) -> Result<EventRow<'_>, NativeError> {
    let mut row = EventRow::new(EventType::Log, 0, "");
    parse_native_into(text, &mut row)?;
    Ok(row)
}

/// Parses and validates one native event into `row`, which must be fresh
/// ([`EventRow::new`]); on an error it holds part of the event.
///
/// The fast scanner reads the common shape; whatever it leaves (escapes,
/// odd numbers, errors) is read again by the serde visitor.
pub fn parse_native_into<'a>(text: &'a str, row: &mut EventRow<'a>) -> Result<(), NativeError> {
    if let Some(parsed) = fast::scan(text, row) {
        return validate(row, parsed);
    }
    *row = EventRow::new(EventType::Log, 0, "");
    parse_with_serde(text, row)
}

/// The serde path of [`parse_native_into`], for any input.
fn parse_with_serde<'a>(text: &'a str, row: &mut EventRow<'a>) -> Result<(), NativeError> {
    let bad_field: Cell<Option<&'static str>> = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de
        .deserialize_map(EventVisitor {
            bad_field: &bad_field,
            row: &mut *row,
        })
        .and_then(|p| de.end().map(|_| p));
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            return Err(match bad_field.get() {
                _ if e.is_syntax() || e.is_eof() => NativeError {
                    reason: format!("JSON syntax error: {e}"),
                    field: None,
                },
                Some(f) => NativeError::field(f, format!("field `{f}` has the wrong type: {e}")),
                None => NativeError {
                    reason: format!("event is not a JSON object: {e}"),
                    field: None,
                },
            });
        }
    };
    validate(row, parsed)
}

/// What the visitor collected, before validation.
struct Parsed<'a> {
    ty: Option<Str<'a>>,
    time: Option<Str<'a>>,
    function: Option<Str<'a>>,
    extra: Vec<(Str<'a>, ExtraValue<'a>)>,
}

enum ExtraValue<'a> {
    Raw(&'a RawValue),
    /// JSON text of a value, as the fast path found it.
    Text(&'a str),
    Json(Value),
}

const INV: u8 = 1;
const DNS: u8 = 2;
const PROC: u8 = 4;
const NET: u8 = 8;
const FILE: u8 = 16;
const API: u8 = 32;
const CFG: u8 = 64;

fn type_mask(t: EventType) -> u8 {
    match t {
        EventType::Invocation => INV,
        EventType::Dns => DNS,
        EventType::Process => PROC,
        EventType::Network => NET,
        EventType::File => FILE,
        EventType::ApiCall => API,
        EventType::FunctionConfig => CFG,
        EventType::Log => 0,
    }
}

/// Converts a typed value back to JSON, for fields moved to `extra`.
trait ToJson {
    fn to_json(self) -> Value;
}
impl ToJson for Cow<'_, str> {
    fn to_json(self) -> Value {
        Value::String(self.into_owned())
    }
}
impl ToJson for f64 {
    fn to_json(self) -> Value {
        serde_json::Number::from_f64(self).map_or(Value::Null, Value::Number)
    }
}
impl ToJson for i64 {
    fn to_json(self) -> Value {
        Value::from(self)
    }
}
impl ToJson for i32 {
    fn to_json(self) -> Value {
        Value::from(self)
    }
}
impl ToJson for Vec<Cow<'_, str>> {
    fn to_json(self) -> Value {
        Value::Array(self.into_iter().map(ToJson::to_json).collect())
    }
}

macro_rules! typed_fields {
    ($( $name:ident : $kind:ident = $mask:expr ),* $(,)?) => {
        /// Reads the value of a known type-specific field; `Ok(false)` when `key` is not one.
        fn read_typed_field<'de, A: MapAccess<'de>>(
            row: &mut EventRow<'de>,
            key: &str,
            map: &mut A,
            bad: &Cell<Option<&'static str>>,
        ) -> Result<bool, A::Error> {
            match key {
                $( stringify!($name) => {
                    row.$name = map
                        .next_value::<$kind>()
                        .inspect_err(|_| bad.set(Some(stringify!($name))))?
                        .0;
                    Ok(true)
                } )*
                _ => Ok(false),
            }
        }

        /// The type-specific fields, for the fast path's key table.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Typed { $( $name ),* }

        const TYPED: &[(&str, Typed)] = &[ $( (stringify!($name), Typed::$name) ),* ];

        /// The fast path's reader of a type-specific field; `None` when serde
        /// has to read the event.
        fn fast_typed_field<'de>(
            row: &mut EventRow<'de>,
            field: Typed,
            sc: &mut fast::Scan<'de>,
        ) -> Option<()> {
            match field {
                $( Typed::$name => row.$name = $kind::fast(sc)?.0, )*
            }
            Some(())
        }

        /// Moves fields that do not belong to the event's type into `extra`.
        fn move_foreign<'a>(row: &mut EventRow<'a>, mask: u8, extra: &mut Vec<(Str<'a>, ExtraValue<'a>)>) {
            $( if mask & ($mask) == 0 {
                if let Some(v) = row.$name.take() {
                    extra.push((Cow::Borrowed(stringify!($name)), ExtraValue::Json(v.to_json())));
                }
            } )*
        }
    };
}

typed_fields! {
    duration_ms: OptF64 = INV,
    billed_ms: OptI64 = INV,
    cpu_ms: OptF64 = INV,
    memory_mb: OptI64 = INV | CFG,
    max_memory_mb: OptI64 = INV,
    init_ms: OptF64 = INV,
    timeout_ms: OptI64 = INV | CFG,
    status: OptStr = INV,
    error_type: OptStr = INV,
    trigger: OptStr = INV,
    event_bytes: OptI64 = INV,
    event: OptEventSample = INV,
    query: OptStr = DNS,
    qtype: OptStr = DNS,
    rcode: OptStr = DNS,
    answers: OptStrList = DNS,
    exe: OptStr = PROC,
    args: OptStrList = PROC,
    cmdline: OptStr = PROC,
    parent_exe: OptStr = PROC,
    direction: OptStr = NET,
    protocol: OptStr = NET,
    remote_ip: OptStr = NET,
    remote_port: OptPort = NET,
    remote_host: OptStr = NET,
    bytes_out: OptI64 = NET,
    bytes_in: OptI64 = NET,
    path: OptStr = FILE,
    op: OptStr = FILE,
    service: OptStr = API,
    action: OptStr = API,
    resource: OptStr = API,
    error_code: OptStr = API,
    runtime: OptStr = CFG,
    handler: OptStr = CFG,
    role_arn: OptStr = CFG,
    permissions: OptStrList = CFG,
    triggers: OptStrList = CFG,
    layers: OptStrList = CFG,
    code_sha256: OptStr = CFG,
    source: OptStr = API | CFG,
    source_ip: OptStr = API,
    user_agent: OptStr = API,
    event_id: OptStr = API,
    statements: OptJsonArray = CFG,
    env_keys: OptStrList = CFG,
}

struct EventVisitor<'c, 'r, 'de> {
    bad_field: &'c Cell<Option<&'static str>>,
    row: &'r mut EventRow<'de>,
}

impl<'de> Visitor<'de> for EventVisitor<'_, '_, 'de> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let bad = self.bad_field;
        let row = self.row;
        let mut p = Parsed {
            ty: None,
            time: None,
            function: None,
            extra: Vec::new(),
        };
        while let Some(KeyStr(key)) = map.next_key::<KeyStr<'de>>()? {
            macro_rules! common {
                ($slot:expr, $name:literal) => {{
                    $slot = map
                        .next_value::<OptStr>()
                        .inspect_err(|_| bad.set(Some($name)))?
                        .0
                }};
            }
            match key.as_ref() {
                "type" => common!(p.ty, "type"),
                "time" => common!(p.time, "time"),
                "function" => common!(p.function, "function"),
                "request_id" => common!(row.request_id, "request_id"),
                "account" => common!(row.account, "account"),
                "region" => common!(row.region, "region"),
                "version" => common!(row.version, "version"),
                other => {
                    if !read_typed_field(row, other, &mut map, bad)? {
                        let v: &'de RawValue = map.next_value()?;
                        p.extra.push((key, ExtraValue::Raw(v)));
                    }
                }
            }
        }
        Ok(p)
    }
}

fn missing(field: &str) -> NativeError {
    NativeError::field(field, format!("missing required field `{field}`"))
}

fn validate<'a>(row: &mut EventRow<'a>, p: Parsed<'a>) -> Result<(), NativeError> {
    let Parsed {
        ty,
        time,
        function,
        mut extra,
    } = p;
    let ty = ty.ok_or_else(|| missing("type"))?;
    let event_type = EventType::from_native(&ty).ok_or_else(|| {
        NativeError::field(
            "type",
            format!(
                "unknown event type `{}` (valid values: {})",
                truncate(&ty, 64),
                EventType::NATIVE_NAMES
            ),
        )
    })?;
    row.event_type = event_type;
    let time = time.ok_or_else(|| missing("time"))?;
    row.time_us = parse_time_us(&time).map_err(|why| NativeError::field("time", why))?;
    let function = function.ok_or_else(|| missing("function"))?;
    // At most 170 bytes is at most 170 characters: count only longer names.
    let n = match function.len() {
        len @ 0..=170 => len.min(1),
        _ => function.chars().count(),
    };
    if n == 0 || n > 170 {
        return Err(NativeError::field(
            "function",
            format!("field `function` must be 1 to 170 characters long, got {n}"),
        ));
    }
    row.function = function;
    // A function's configuration and a CloudTrail call (contract v1.1,
    // section 6) belong to the function, not to one invocation.
    let whole_function = event_type == EventType::FunctionConfig
        || (event_type == EventType::ApiCall && row.source.as_deref() == Some("cloudtrail"));
    if !whole_function && row.request_id.is_none() {
        return Err(missing("request_id"));
    }
    if let Some(a) = &row.account
        && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NativeError::field(
            "account",
            format!(
                "field `account` must be a 12-digit account id, got `{}`",
                truncate(a, 64)
            ),
        ));
    }
    move_foreign(row, type_mask(event_type), &mut extra);
    match event_type {
        EventType::Invocation => {
            let d = row.duration_ms.ok_or_else(|| missing("duration_ms"))?;
            if !(d >= 0.0 && d.is_finite()) {
                return Err(NativeError::field(
                    "duration_ms",
                    format!("field `duration_ms` must be a non-negative number, got {d}"),
                ));
            }
            let status = row.status.as_deref().ok_or_else(|| missing("status"))?;
            if !matches!(status, "success" | "error" | "timeout" | "crash") {
                return Err(NativeError::field(
                    "status",
                    format!(
                        "field `status` has unknown value `{}` (valid values: success, error, timeout, crash)",
                        truncate(status, 64)
                    ),
                ));
            }
        }
        EventType::Dns => {
            let q = row.query.as_deref().ok_or_else(|| missing("query"))?;
            if q.is_empty() {
                return Err(NativeError::field("query", "field `query` is empty".into()));
            }
        }
        EventType::Process => {
            let exe = row.exe.as_deref().ok_or_else(|| missing("exe"))?;
            if !exe.starts_with('/') {
                return Err(NativeError::field(
                    "exe",
                    format!(
                        "field `exe` must be an absolute path, got `{}`",
                        truncate(exe, 64)
                    ),
                ));
            }
            if row.cmdline.is_none()
                && let Some(args) = &row.args
            {
                row.cmdline = Some(Cow::Owned(args.join(" ")));
            }
        }
        EventType::Network => {
            let ip = row
                .remote_ip
                .as_deref()
                .ok_or_else(|| missing("remote_ip"))?;
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(NativeError::field(
                    "remote_ip",
                    format!(
                        "field `remote_ip` is not an IP address: `{}`",
                        truncate(ip, 64)
                    ),
                ));
            }
            if row.remote_port.is_none() {
                return Err(missing("remote_port"));
            }
            if let Some(d) = row.direction.as_deref()
                && !matches!(d, "outbound" | "inbound")
            {
                return Err(NativeError::field(
                    "direction",
                    format!(
                        "field `direction` has unknown value `{}` (valid values: outbound, inbound)",
                        truncate(d, 64)
                    ),
                ));
            }
        }
        EventType::File => {
            let path = row.path.as_deref().ok_or_else(|| missing("path"))?;
            if path.is_empty() {
                return Err(NativeError::field("path", "field `path` is empty".into()));
            }
            if let Some(op) = row.op.as_deref()
                && !matches!(
                    op,
                    "read" | "write" | "create" | "delete" | "exec" | "chmod"
                )
            {
                return Err(NativeError::field(
                    "op",
                    format!(
                        "field `op` has unknown value `{}` (valid values: read, write, create, delete, exec, chmod)",
                        truncate(op, 64)
                    ),
                ));
            }
        }
        EventType::ApiCall | EventType::FunctionConfig | EventType::Log => {}
    }
    if !extra.is_empty() {
        row.extra = Some(extra_json(&extra));
    }
    Ok(())
}

fn extra_json(extra: &[(Str<'_>, ExtraValue<'_>)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in extra.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.to_string()).to_string());
        out.push(':');
        match v {
            ExtraValue::Raw(r) => out.push_str(r.get()),
            ExtraValue::Text(t) => out.push_str(t),
            ExtraValue::Json(j) => out.push_str(&j.to_string()),
        }
    }
    out.push('}');
    out
}

use super::{parse_time_us, truncate};

mod fast;

// ---- value readers -------------------------------------------------------

/// An object key, borrowed when it has no escapes.
struct KeyStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor).map(KeyStr)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A string or null.
struct OptStr<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for OptStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Some(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Some(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Some(Cow::Owned(v)))
            }
        }
        d.deserialize_any(V).map(OptStr)
    }
}

/// A number or null.
struct OptF64(Option<f64>);

impl<'de> de::Deserialize<'de> for OptF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<f64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Some(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v as f64))
            }
        }
        d.deserialize_any(V).map(OptF64)
    }
}

/// An integer (or a number with no fractional part) or null.
struct OptI64(Option<i64>);

struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(Some(v as i64))
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }
}

impl<'de> de::Deserialize<'de> for OptI64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor).map(OptI64)
    }
}

/// A TCP/UDP port or null.
struct OptPort(Option<i32>);

impl<'de> de::Deserialize<'de> for OptPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(IntVisitor)? {
            None => Ok(OptPort(None)),
            Some(p) if (0..=65535).contains(&p) => Ok(OptPort(Some(p as i32))),
            Some(p) => Err(de::Error::custom(format!("port {p} is outside 0..=65535"))),
        }
    }
}

/// An array of strings or null.
struct OptStrList<'de>(Option<Vec<Cow<'de, str>>>);

impl<'de> de::Deserialize<'de> for OptStrList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Vec<Cow<'de, str>>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(s) = seq.next_element_seed(StrSeed)? {
                    out.push(s);
                }
                Ok(Some(out))
            }
        }
        d.deserialize_any(V).map(OptStrList)
    }
}

struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(CowStrVisitor)
    }
}

/// The triggering event sample: an object (kept as its JSON text) or a string.
struct OptEventSample<'de>(Option<Cow<'de, str>>);

/// A JSON array kept as its text (`statements` of a `function_config`).
struct OptJsonArray<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for OptJsonArray<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = de::Deserialize::deserialize(d)?;
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'[') => Ok(OptJsonArray(Some(Cow::Borrowed(text)))),
            Some(b'n') => Ok(OptJsonArray(None)),
            _ => Err(de::Error::custom(format!(
                "expected an array, got `{}`",
                truncate(text, 32)
            ))),
        }
    }
}

impl<'de> de::Deserialize<'de> for OptEventSample<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = de::Deserialize::deserialize(d)?;
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'{') => Ok(OptEventSample(Some(Cow::Borrowed(text)))),
            Some(b'"') => serde_json::from_str::<OptStr<'de>>(text)
                .map(|s| OptEventSample(s.0))
                .map_err(de::Error::custom),
            Some(b'n') => Ok(OptEventSample(None)),
            _ => Err(de::Error::custom(format!(
                "expected an object or a string, got `{}`",
                truncate(text, 32)
            ))),
        }
    }
}
