//! The in-memory form of one decoded telemetry event, and where decoders put
//! their results.
//!
//! Decoders never build Arrow arrays themselves: they fill an [`EventRow`]
//! (borrowing from the input where they can) and hand it to a [`Sink`], which
//! appends it to the columnar builders. A record that cannot be decoded becomes
//! a [`DeadLetter`] carrying the reason, the offending field and the position.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// The kinds of rows in the `events` table: the seven native event types of the
/// telemetry contract, plus application log lines (`log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Invocation,
    Dns,
    Process,
    Network,
    File,
    ApiCall,
    FunctionConfig,
    Log,
}

impl EventType {
    /// Every type, in the order used for summaries.
    pub const ALL: [EventType; 8] = [
        EventType::Invocation,
        EventType::Dns,
        EventType::Process,
        EventType::Network,
        EventType::File,
        EventType::ApiCall,
        EventType::FunctionConfig,
        EventType::Log,
    ];

    /// The value stored in the `type` column (the contract's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invocation => "invocation",
            EventType::Dns => "dns",
            EventType::Process => "process",
            EventType::Network => "network",
            EventType::File => "file",
            EventType::ApiCall => "api_call",
            EventType::FunctionConfig => "function_config",
            EventType::Log => "log",
        }
    }

    /// Parses a native event `type` (`log` is not a native type: it is only
    /// produced from log lines).
    pub fn from_native(s: &str) -> Option<EventType> {
        Some(match s {
            "invocation" => EventType::Invocation,
            "dns" => EventType::Dns,
            "process" => EventType::Process,
            "network" => EventType::Network,
            "file" => EventType::File,
            "api_call" => EventType::ApiCall,
            "function_config" => EventType::FunctionConfig,
            _ => return None,
        })
    }

    /// Index into per-type counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The valid native values, for error hints.
    pub const NATIVE_NAMES: &'static str =
        "invocation, dns, process, network, file, api_call, function_config";
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is either borrowed from the input or owned (unescaped JSON).
pub type Str<'a> = Cow<'a, str>;

/// One event, with every column of the `events` table. Fields that do not
/// apply to the event's type stay `None` (a null in the lake).
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    pub event_type: EventType,
    /// UTC microseconds since the Unix epoch.
    pub time_us: i64,
    pub function: Str<'a>,
    pub request_id: Option<Str<'a>>,
    pub account: Option<Str<'a>>,
    pub region: Option<Str<'a>>,
    pub version: Option<Str<'a>>,
    // invocation
    pub duration_ms: Option<f64>,
    pub billed_ms: Option<i64>,
    pub cpu_ms: Option<f64>,
    pub memory_mb: Option<i64>,
    pub max_memory_mb: Option<i64>,
    pub init_ms: Option<f64>,
    pub timeout_ms: Option<i64>,
    pub status: Option<Str<'a>>,
    pub error_type: Option<Str<'a>>,
    pub trigger: Option<Str<'a>>,
    pub event_bytes: Option<i64>,
    /// The triggering event sample as JSON text (an object) or the string given.
    pub event: Option<Str<'a>>,
    // dns
    pub query: Option<Str<'a>>,
    pub qtype: Option<Str<'a>>,
    pub rcode: Option<Str<'a>>,
    pub answers: Option<Vec<Str<'a>>>,
    // process
    pub exe: Option<Str<'a>>,
    pub args: Option<Vec<Str<'a>>>,
    pub cmdline: Option<Str<'a>>,
    pub parent_exe: Option<Str<'a>>,
    // network
    pub direction: Option<Str<'a>>,
    pub protocol: Option<Str<'a>>,
    pub remote_ip: Option<Str<'a>>,
    pub remote_port: Option<i32>,
    pub remote_host: Option<Str<'a>>,
    pub bytes_out: Option<i64>,
    pub bytes_in: Option<i64>,
    // file
    pub path: Option<Str<'a>>,
    pub op: Option<Str<'a>>,
    // api_call
    pub service: Option<Str<'a>>,
    pub action: Option<Str<'a>>,
    pub resource: Option<Str<'a>>,
    pub error_code: Option<Str<'a>>,
    // function_config (memory_mb and timeout_ms are shared with invocation)
    pub runtime: Option<Str<'a>>,
    pub handler: Option<Str<'a>>,
    pub role_arn: Option<Str<'a>>,
    pub permissions: Option<Vec<Str<'a>>>,
    pub triggers: Option<Vec<Str<'a>>>,
    pub layers: Option<Vec<Str<'a>>>,
    pub code_sha256: Option<Str<'a>>,
    // log lines (CloudWatch Logs / Telemetry API `function` records)
    pub message: Option<Str<'a>>,
    pub log_group: Option<Str<'a>>,
    pub log_stream: Option<Str<'a>>,
    /// Unknown input fields, as a JSON object text.
    pub extra: Option<String>,
    // v1.1: api_call and function_config
    /// `sensor` (the default when absent), `cloudtrail` or `inventory`.
    pub source: Option<Str<'a>>,
    pub source_ip: Option<Str<'a>>,
    pub user_agent: Option<Str<'a>>,
    /// CloudTrail's `eventID`: the same call counts once however often it is delivered.
    pub event_id: Option<Str<'a>>,
    /// The role's policy statements, as the JSON array text the contract gives.
    pub statements: Option<Str<'a>>,
    /// Names of the function's environment variables (never their values).
    pub env_keys: Option<Vec<Str<'a>>>,
}

impl<'a> EventRow<'a> {
    /// An event of `event_type` with only the common fields set.
    pub fn new(event_type: EventType, time_us: i64, function: impl Into<Str<'a>>) -> Self {
        EventRow {
            event_type,
            time_us,
            function: function.into(),
            request_id: None,
            account: None,
            region: None,
            version: None,
            duration_ms: None,
            billed_ms: None,
            cpu_ms: None,
            memory_mb: None,
            max_memory_mb: None,
            init_ms: None,
            timeout_ms: None,
            status: None,
            error_type: None,
            trigger: None,
            event_bytes: None,
            event: None,
            query: None,
            qtype: None,
            rcode: None,
            answers: None,
            exe: None,
            args: None,
            cmdline: None,
            parent_exe: None,
            direction: None,
            protocol: None,
            remote_ip: None,
            remote_port: None,
            remote_host: None,
            bytes_out: None,
            bytes_in: None,
            path: None,
            op: None,
            service: None,
            action: None,
            resource: None,
            error_code: None,
            runtime: None,
            handler: None,
            role_arn: None,
            permissions: None,
            triggers: None,
            layers: None,
            code_sha256: None,
            message: None,
            log_group: None,
            log_stream: None,
            extra: None,
            source: None,
            source_ip: None,
            user_agent: None,
            event_id: None,
            statements: None,
            env_keys: None,
        }
    }
}

/// Where a record came from: a line of a file, or a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `line` is 1-based.
    File { path: Arc<str>, line: u64 },
    Kinesis {
        stream: Arc<str>,
        shard: Arc<str>,
        sequence_number: String,
    },
}

/// A step into a record that holds several: a line of a JSON Lines record,
/// an element of an array, an inner record of a KPL aggregate, a log event of
/// a CloudWatch Logs payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// 1-based line inside a multi-line record.
    Line(u32),
    /// 0-based array element.
    Element(u32),
    /// 0-based inner record of a KPL aggregate (its sub-sequence number).
    KplRecord(u32),
    /// 0-based entry of a CloudWatch Logs `logEvents` array.
    LogEvent(u32),
}

/// The full position of a (possibly nested) record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub origin: Origin,
    pub steps: Vec<Step>,
}

impl Position {
    pub fn file(path: Arc<str>, line: u64) -> Self {
        Position {
            origin: Origin::File { path, line },
            steps: Vec::new(),
        }
    }

    pub fn kinesis(stream: Arc<str>, shard: Arc<str>, sequence_number: String) -> Self {
        Position {
            origin: Origin::Kinesis {
                stream,
                shard,
                sequence_number,
            },
            steps: Vec::new(),
        }
    }

    /// Moves a file position to another line (no-op for Kinesis positions).
    pub fn set_line(&mut self, n: u64) {
        if let Origin::File { line, .. } = &mut self.origin {
            *line = n;
        }
    }

    /// This position, one step deeper.
    pub fn child(&self, step: Step) -> Position {
        let mut steps = Vec::with_capacity(self.steps.len() + 1);
        steps.extend_from_slice(&self.steps);
        steps.push(step);
        Position {
            origin: self.origin.clone(),
            steps,
        }
    }

    /// The nested steps alone, e.g. `kpl record 3 > log event 0` (empty when none).
    pub fn steps_text(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                out.push_str(" > ");
            }
            match s {
                Step::Line(n) => out.push_str(&format!("line {n} of the record")),
                Step::Element(n) => out.push_str(&format!("array element {n}")),
                Step::KplRecord(n) => out.push_str(&format!("kpl record {n}")),
                Step::LogEvent(n) => out.push_str(&format!("log event {n}")),
            }
        }
        out
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, line } => write!(f, "{path}:{line}")?,
            Origin::Kinesis {
                stream,
                shard,
                sequence_number,
            } => write!(f, "kinesis {stream}/{shard} sequence {sequence_number}")?,
        }
        if !self.steps.is_empty() {
            write!(f, " ({})", self.steps_text())?;
        }
        Ok(())
    }
}

/// Most raw bytes kept for one dead letter; the rest is counted in
/// [`DeadLetter::raw_size`], not kept. Cut when the dead letter is made, so a
/// record that yields many dead letters holds at most this much per letter.
pub const MAX_DEAD_LETTER_RAW: usize = 64 * 1024;

/// A record (or part of one) that could not be decoded.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Why, in one lowercase sentence naming the field where there is one.
    pub reason: String,
    /// The offending field, when the problem is one field.
    pub field: Option<String>,
    pub position: Position,
    /// The bytes of the rejected record (or inner record), at most
    /// [`MAX_DEAD_LETTER_RAW`] of them.
    pub raw: Vec<u8>,
    /// How many bytes the rejected record had before they were cut.
    pub raw_size: usize,
}

impl DeadLetter {
    pub fn new(reason: impl Into<String>, position: &Position, raw: &[u8]) -> Self {
        DeadLetter {
            reason: reason.into(),
            field: None,
            position: position.clone(),
            raw: raw[..raw.len().min(MAX_DEAD_LETTER_RAW)].to_vec(),
            raw_size: raw.len(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// Where decoders put what they produce.
pub trait Sink {
    /// A decoded event.
    fn event(&mut self, row: &EventRow<'_>);
    /// A rejected record.
    fn dead_letter(&mut self, dl: DeadLetter);
    /// A record that is valid but carries no event (a CloudWatch Logs control
    /// message, a START line, a Telemetry API record we do not store).
    fn skipped(&mut self, _what: &'static str) {}
}

/// A [`Sink`] that keeps everything in memory; for tests and small inputs.
#[derive(Debug, Default)]
pub struct VecSink {
    pub events: Vec<EventRow<'static>>,
    pub dead: Vec<DeadLetter>,
    pub skipped: Vec<&'static str>,
}

impl Sink for VecSink {
    fn event(&mut self, row: &EventRow<'_>) {
        self.events.push(row.to_owned_row());
    }
    fn dead_letter(&mut self, dl: DeadLetter) {
        self.dead.push(dl);
    }
    fn skipped(&mut self, what: &'static str) {
        self.skipped.push(what);
    }
}

fn own(s: &Option<Str<'_>>) -> Option<Str<'static>> {
    s.as_ref().map(|s| Cow::Owned(s.to_string()))
}

fn own_list(s: &Option<Vec<Str<'_>>>) -> Option<Vec<Str<'static>>> {
    s.as_ref()
        .map(|v| v.iter().map(|s| Cow::Owned(s.to_string())).collect())
}

impl EventRow<'_> {
    /// A copy that owns all its strings.
    pub fn to_owned_row(&self) -> EventRow<'static> {
        EventRow {
            event_type: self.event_type,
            time_us: self.time_us,
            function: Cow::Owned(self.function.to_string()),
            request_id: own(&self.request_id),
            account: own(&self.account),
            region: own(&self.region),
            version: own(&self.version),
            duration_ms: self.duration_ms,
            billed_ms: self.billed_ms,
            cpu_ms: self.cpu_ms,
            memory_mb: self.memory_mb,
            max_memory_mb: self.max_memory_mb,
            init_ms: self.init_ms,
            timeout_ms: self.timeout_ms,
            status: own(&self.status),
            error_type: own(&self.error_type),
            trigger: own(&self.trigger),
            event_bytes: self.event_bytes,
            event: own(&self.event),
            query: own(&self.query),
            qtype: own(&self.qtype),
            rcode: own(&self.rcode),
            answers: own_list(&self.answers),
            exe: own(&self.exe),
            args: own_list(&self.args),
            cmdline: own(&self.cmdline),
            parent_exe: own(&self.parent_exe),
            direction: own(&self.direction),
            protocol: own(&self.protocol),
            remote_ip: own(&self.remote_ip),
            remote_port: self.remote_port,
            remote_host: own(&self.remote_host),
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            path: own(&self.path),
            op: own(&self.op),
            service: own(&self.service),
            action: own(&self.action),
            resource: own(&self.resource),
            error_code: own(&self.error_code),
            runtime: own(&self.runtime),
            handler: own(&self.handler),
            role_arn: own(&self.role_arn),
            permissions: own_list(&self.permissions),
            triggers: own_list(&self.triggers),
            layers: own_list(&self.layers),
            code_sha256: own(&self.code_sha256),
            message: own(&self.message),
            log_group: own(&self.log_group),
            log_stream: own(&self.log_stream),
            extra: self.extra.clone(),
            source: own(&self.source),
            source_ip: own(&self.source_ip),
            user_agent: own(&self.user_agent),
            event_id: own(&self.event_id),
            statements: own(&self.statements),
            env_keys: own_list(&self.env_keys),
        }
    }
}
