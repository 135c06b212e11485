//! Typed access to the columns the models read from a batch of `events`,
//! whatever string layout the query engine chose (`Utf8` or `Utf8View`).

use arrow::array::{
    Array, AsArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;

use crate::error::{ModelError, Result};

/// The `events` columns the models read, in the order the reader selects them.
pub const COLUMNS: &[&str] = &[
    "time",
    "type",
    "function",
    "request_id",
    "version",
    "duration_ms",
    "cpu_ms",
    "memory_mb",
    "max_memory_mb",
    "init_ms",
    "timeout_ms",
    "status",
    "event",
    "query",
    "qtype",
    "rcode",
    "answers",
    "exe",
    "args",
    "cmdline",
    "parent_exe",
    "direction",
    "protocol",
    "remote_ip",
    "remote_port",
    "remote_host",
    "bytes_out",
    "bytes_in",
    "path",
    "op",
    "service",
    "action",
    "resource",
    "error_code",
    "permissions",
    "code_sha256",
    // v1.1: CloudTrail calls and the inventory's configuration
    "account",
    "source",
    "source_ip",
    "user_agent",
    "event_id",
    "role_arn",
    "layers",
    "triggers",
    "statements",
    "env_keys",
];

/// A string column in either layout.
pub enum StrCol<'a> {
    Plain(&'a StringArray),
    View(&'a StringViewArray),
}

impl<'a> StrCol<'a> {
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
            StrCol::View(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    }
}

/// A list-of-strings column.
pub struct ListCol<'a> {
    list: &'a ListArray,
    /// Its values, when they are strings.
    values: Option<StrCol<'a>>,
}

impl<'a> ListCol<'a> {
    /// The strings of row `i` (none when null), without collecting them.
    pub fn iter(&self, i: usize) -> impl Iterator<Item = &'a str> + '_ {
        let (start, end) = if self.list.is_null(i) || self.values.is_none() {
            (0, 0)
        } else {
            let offsets = self.list.value_offsets();
            (offsets[i] as usize, offsets[i + 1] as usize)
        };
        (start..end).filter_map(move |j| self.values.as_ref().and_then(|v| v.get(j)))
    }

    /// The strings of row `i` (empty when null).
    pub fn get(&self, i: usize) -> Vec<&'a str> {
        self.iter(i).collect()
    }
}

/// The columns of one batch.
pub struct Rows<'a> {
    pub len: usize,
    pub time: &'a TimestampMicrosecondArray,
    pub kind: StrCol<'a>,
    pub function: StrCol<'a>,
    pub request_id: StrCol<'a>,
    pub version: StrCol<'a>,
    pub duration_ms: &'a Float64Array,
    pub cpu_ms: &'a Float64Array,
    pub memory_mb: &'a Int64Array,
    pub max_memory_mb: &'a Int64Array,
    pub init_ms: &'a Float64Array,
    pub timeout_ms: &'a Int64Array,
    pub status: StrCol<'a>,
    pub event: StrCol<'a>,
    pub query: StrCol<'a>,
    pub qtype: StrCol<'a>,
    pub rcode: StrCol<'a>,
    pub answers: ListCol<'a>,
    pub exe: StrCol<'a>,
    pub args: ListCol<'a>,
    pub cmdline: StrCol<'a>,
    pub parent_exe: StrCol<'a>,
    pub direction: StrCol<'a>,
    pub protocol: StrCol<'a>,
    pub remote_ip: StrCol<'a>,
    pub remote_port: &'a Int32Array,
    pub remote_host: StrCol<'a>,
    pub bytes_out: &'a Int64Array,
    pub bytes_in: &'a Int64Array,
    pub path: StrCol<'a>,
    pub op: StrCol<'a>,
    pub service: StrCol<'a>,
    pub action: StrCol<'a>,
    pub resource: StrCol<'a>,
    pub error_code: StrCol<'a>,
    pub permissions: ListCol<'a>,
    pub code_sha256: StrCol<'a>,
    pub account: StrCol<'a>,
    pub source: StrCol<'a>,
    pub source_ip: StrCol<'a>,
    pub user_agent: StrCol<'a>,
    pub event_id: StrCol<'a>,
    pub role_arn: StrCol<'a>,
    pub layers: ListCol<'a>,
    pub triggers: ListCol<'a>,
    pub statements: StrCol<'a>,
    pub env_keys: ListCol<'a>,
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| ModelError::Input(format!("the events batch has no column `{name}`")))
}

fn strs<'a>(b: &'a RecordBatch, name: &str) -> Result<StrCol<'a>> {
    let c = col(b, name)?;
    match c.data_type() {
        DataType::Utf8 => Ok(StrCol::Plain(c.as_string::<i32>())),
        DataType::Utf8View => Ok(StrCol::View(c.as_string_view())),
        t => Err(ModelError::Input(format!(
            "column `{name}` is {t}, expected a string"
        ))),
    }
}

fn typed<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    let c = col(b, name)?;
    c.as_any().downcast_ref::<T>().ok_or_else(|| {
        ModelError::Input(format!(
            "column `{name}` has type {}, not the lake's",
            c.data_type()
        ))
    })
}

fn list<'a>(b: &'a RecordBatch, name: &str) -> Result<ListCol<'a>> {
    let list = typed::<ListArray>(b, name)?;
    let values = list.values();
    let values = match values.data_type() {
        DataType::Utf8 => Some(StrCol::Plain(values.as_string::<i32>())),
        DataType::Utf8View => Some(StrCol::View(values.as_string_view())),
        _ => None,
    };
    Ok(ListCol { list, values })
}

impl<'a> Rows<'a> {
    pub fn new(b: &'a RecordBatch) -> Result<Rows<'a>> {
        Ok(Rows {
            len: b.num_rows(),
            time: typed(b, "time")?,
            kind: strs(b, "type")?,
            function: strs(b, "function")?,
            request_id: strs(b, "request_id")?,
            version: strs(b, "version")?,
            duration_ms: typed(b, "duration_ms")?,
            cpu_ms: typed(b, "cpu_ms")?,
            memory_mb: typed(b, "memory_mb")?,
            max_memory_mb: typed(b, "max_memory_mb")?,
            init_ms: typed(b, "init_ms")?,
            timeout_ms: typed(b, "timeout_ms")?,
            status: strs(b, "status")?,
            event: strs(b, "event")?,
            query: strs(b, "query")?,
            qtype: strs(b, "qtype")?,
            rcode: strs(b, "rcode")?,
            answers: list(b, "answers")?,
            exe: strs(b, "exe")?,
            args: list(b, "args")?,
            cmdline: strs(b, "cmdline")?,
            parent_exe: strs(b, "parent_exe")?,
            direction: strs(b, "direction")?,
            protocol: strs(b, "protocol")?,
            remote_ip: strs(b, "remote_ip")?,
            remote_port: typed(b, "remote_port")?,
            remote_host: strs(b, "remote_host")?,
            bytes_out: typed(b, "bytes_out")?,
            bytes_in: typed(b, "bytes_in")?,
            path: strs(b, "path")?,
            op: strs(b, "op")?,
            service: strs(b, "service")?,
            action: strs(b, "action")?,
            resource: strs(b, "resource")?,
            error_code: strs(b, "error_code")?,
            permissions: list(b, "permissions")?,
            code_sha256: strs(b, "code_sha256")?,
            account: strs(b, "account")?,
            source: strs(b, "source")?,
            source_ip: strs(b, "source_ip")?,
            user_agent: strs(b, "user_agent")?,
            event_id: strs(b, "event_id")?,
            role_arn: strs(b, "role_arn")?,
            layers: list(b, "layers")?,
            triggers: list(b, "triggers")?,
            statements: strs(b, "statements")?,
            env_keys: list(b, "env_keys")?,
        })
    }
}

/// `Some(value)` unless null.
#[inline]
pub fn f64_at(a: &Float64Array, i: usize) -> Option<f64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// `Some(value)` unless null.
#[inline]
pub fn i64_at(a: &Int64Array, i: usize) -> Option<i64> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// `Some(value)` unless null.
#[inline]
pub fn i32_at(a: &Int32Array, i: usize) -> Option<i32> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// A command's arguments: the `args` list, or `cmdline` split on spaces.
pub fn command_args<'a>(rows: &'a Rows<'a>, i: usize) -> Vec<&'a str> {
    let args = rows.args.get(i);
    if !args.is_empty() {
        return args;
    }
    rows.cmdline
        .get(i)
        .map(|c| c.split_whitespace().collect())
        .unwrap_or_default()
}
