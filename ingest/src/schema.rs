//! The lake's table schemas: `events` (every event type in one table,
//! partitioned by `date`) and `dead_letters`.
//!
//! `events` is partitioned by day only, not by type: within a day's files rows
//! are sorted by (function, time), which keeps the events of one invocation
//! together. Their `request_id`s then repeat in runs and compress to a third
//! of what they take when each type is stored apart, and a query for one
//! function reads one narrow slice of each file. `type` is the second column,
//! so it carries Delta file statistics too.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Version of the lake layout this build writes and reads.
///
/// 2: every file ingest commit also records each file's probe (size and
/// ends, see `fnwatch-probe:` application transactions), so a file the lake
/// has never seen is hashed while it is read. A build that knows only 1 would
/// not record probes, so it must not write to a version-2 lake; this build
/// reads and writes version-1 lakes, hashing every file before reading it.
pub const LAKE_FORMAT_VERSION: u32 = 2;

/// Partition columns of the `events` table, in order.
pub const EVENTS_PARTITIONS: [&str; 1] = ["date"];
/// Partition column of the `dead_letters` table.
pub const DEAD_LETTER_PARTITIONS: [&str; 1] = ["date"];

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn i64f(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn i32f(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn f64f(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn l(name: &str) -> Field {
    Field::new(name, list(), true)
}

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("time", ts(), false),
        Field::new("type", DataType::Utf8, false),
        Field::new("function", DataType::Utf8, false),
        s("request_id"),
        s("account"),
        s("region"),
        s("version"),
        // invocation
        f64f("duration_ms"),
        i64f("billed_ms"),
        f64f("cpu_ms"),
        i64f("memory_mb"),
        i64f("max_memory_mb"),
        f64f("init_ms"),
        i64f("timeout_ms"),
        s("status"),
        s("error_type"),
        s("trigger"),
        i64f("event_bytes"),
        s("event"),
        // dns, with what analysts always derive
        s("query"),
        s("qtype"),
        s("rcode"),
        l("answers"),
        s("registrable_domain"),
        i32f("label_count"),
        i32f("query_length"),
        i32f("max_label_length"),
        // process
        s("exe"),
        l("args"),
        s("cmdline"),
        s("parent_exe"),
        // network
        s("direction"),
        s("protocol"),
        s("remote_ip"),
        i32f("remote_port"),
        s("remote_host"),
        i64f("bytes_out"),
        i64f("bytes_in"),
        // file
        s("path"),
        s("op"),
        // api_call
        s("service"),
        s("action"),
        s("resource"),
        s("error_code"),
        // function_config
        s("runtime"),
        s("handler"),
        s("role_arn"),
        l("permissions"),
        l("triggers"),
        l("layers"),
        s("code_sha256"),
        // log lines
        s("message"),
        s("log_group"),
        s("log_stream"),
        s("extra"),
        // v1.1: where an api_call or function_config came from, and what
        // CloudTrail and the inventory add (placed after `extra` so that the
        // columns of lakes made before them keep their positions)
        s("source"),
        s("source_ip"),
        s("user_agent"),
        s("event_id"),
        s("statements"),
        l("env_keys"),
        Field::new("ingested_at", ts(), false),
        Field::new("date", DataType::Utf8, false),
    ]))
});

static DEAD_LETTERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ingested_at", ts(), false),
        Field::new("reason", DataType::Utf8, false),
        s("field"),
        Field::new("source_kind", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        i64f("line"),
        s("shard"),
        s("sequence_number"),
        s("inner_position"),
        Field::new("position", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("raw_encoding", DataType::Utf8, false),
        Field::new("raw_size", DataType::Int64, false),
        Field::new("raw_truncated", DataType::Boolean, false),
        Field::new("date", DataType::Utf8, false),
    ]))
});

static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("time", ts(), false),
        Field::new("function", DataType::Utf8, false),
        s("request_id"),
        Field::new("kind", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("summary", DataType::Utf8, false),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("detected_at", ts(), false),
        Field::new("model", DataType::Utf8, false),
        Field::new("date", DataType::Utf8, false),
    ]))
});

/// Partition column of the `alerts` table.
pub const ALERT_PARTITIONS: [&str; 1] = ["date"];

/// Schema of the `alerts` table: the alert contract's fields (`evidence` as
/// JSON text), when and by which model it was raised, and the day partition.
pub fn alerts_schema() -> SchemaRef {
    ALERTS.clone()
}

/// Schema of the `events` table (partition columns last).
pub fn events_schema() -> SchemaRef {
    EVENTS.clone()
}

/// Schema of the `dead_letters` table (partition column last).
pub fn dead_letters_schema() -> SchemaRef {
    DEAD_LETTERS.clone()
}
