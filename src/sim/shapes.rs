//! The record shapes an invocation's report can take (telemetry contract
//! sections 2-4), and the `function_config` event.

use serde::Serialize;
use serde_json::{Value, json};

use super::behave::Status;
use super::fleet::FnSpec;
use super::util::{
    DIGITS, HEX, Rng, chance, esc, fnv, int, iso, iso_into, kfloat, kint, knull, kraw, kstr, kstrs,
    mix, pick, token,
};

/// Everything an `invocation` record says.
pub struct InvRecord<'a> {
    pub f: &'a FnSpec,
    pub account: &'a str,
    pub version: &'a str,
    pub rid: &'a str,
    pub t0_ms: i64,
    pub end_ms: i64,
    pub duration: f64,
    pub billed: i64,
    pub cpu: f64,
    pub max_mem: i64,
    pub init_ms: Option<f64>,
    pub status: Status,
    pub error_type: Option<&'a str>,
    pub trigger: &'a str,
    pub event_bytes: i64,
    pub sample: Option<&'a Value>,
}

/// A native `invocation` event line.
pub fn native(out: &mut Vec<u8>, rec: &InvRecord<'_>) {
    out.extend_from_slice(b"{\"type\":\"invocation\",\"time\":\"");
    iso_into(out, rec.end_ms);
    out.extend_from_slice(b"\",\"function\":\"");
    out.extend_from_slice(rec.f.name.as_bytes());
    out.extend_from_slice(b"\",\"request_id\":\"");
    out.extend_from_slice(rec.rid.as_bytes());
    out.push(b'"');
    kstr(out, "account", rec.account);
    kstr(out, "region", rec.f.region);
    kstr(out, "version", rec.version);
    kfloat(out, "duration_ms", rec.duration);
    kint(out, "billed_ms", rec.billed);
    kfloat(out, "cpu_ms", rec.cpu);
    kint(out, "memory_mb", rec.f.memory_mb);
    kint(out, "max_memory_mb", rec.max_mem);
    match rec.init_ms {
        Some(i) => kfloat(out, "init_ms", i),
        None => knull(out, "init_ms"),
    }
    kint(out, "timeout_ms", rec.f.timeout_ms);
    kstr(out, "status", rec.status.as_str());
    if let Some(e) = rec.error_type {
        kstr(out, "error_type", e);
    }
    kstr(out, "trigger", rec.trigger);
    kint(out, "event_bytes", rec.event_bytes);
    if let Some(v) = rec.sample {
        let raw = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
        kraw(out, "event", &raw);
    }
    out.extend_from_slice(b"}\n");
}

fn runtime_version(f: &FnSpec) -> &'static str {
    match f.runtime {
        "python3.12" => "python:3.12.v38",
        "python3.11" => "python:3.11.v52",
        "nodejs20.x" => "nodejs:20.v41",
        "java21" => "java:21.v27",
        _ => "provided:al2023.v67",
    }
}

fn runtime_arn(f: &FnSpec) -> String {
    let mut h = fnv(f.runtime);
    let mut s = String::with_capacity(64);
    for _ in 0..4 {
        h = mix(h);
        s.push_str(&format!("{h:016x}"));
    }
    format!("arn:aws:lambda:{}::runtime:{s}", f.region)
}

fn is_python(f: &FnSpec) -> bool {
    f.runtime.starts_with("python")
}

/// An application log line in the runtime's format.
fn app_line(f: &FnSpec, rid: &str, t: i64, level: &str, msg: &str) -> String {
    if is_python(f) {
        format!("[{level}]\t{}\t{rid}\t{msg}\n", iso(t))
    } else if f.runtime.starts_with("java") {
        format!(
            "{} [main] {level} {} - {msg}\n",
            iso(t),
            f.handler.split("::").next().unwrap_or("App")
        )
    } else {
        format!("{}\t{rid}\t{level}\t{msg}\n", iso(t))
    }
}

fn info_message(r: &mut Rng, f: &FnSpec) -> String {
    match f.kind {
        super::fleet::Kind::EmailSender => format!(
            "sent {} to customer-{}@example.com (MessageId {}-{})",
            pick(r, &["receipt", "welcome", "reset-password", "invoice"]),
            int(r, 1000, 99_999),
            token(r, 16, HEX),
            token(r, 8, HEX)
        ),
        super::fleet::Kind::OrdersApi => {
            format!("dynamodb throttled, retrying (attempt {})", int(r, 2, 4))
        }
        _ => pick(
            r,
            &[
                "waiting for upstream response",
                "processing batch",
                "retrying request",
                "fetching object",
            ],
        )
        .to_string(),
    }
}

/// The log events (epoch ms, message) CloudWatch Logs holds for one invocation.
pub fn cloudwatch_lines(r: &mut Rng, rec: &InvRecord<'_>) -> Vec<(i64, String)> {
    let f = rec.f;
    let rid = rec.rid;
    let mut lines = Vec::with_capacity(7);
    if let Some(init) = rec.init_ms {
        lines.push((
            rec.t0_ms - init.ceil() as i64,
            format!(
                "INIT_START Runtime Version: {}\tRuntime Version ARN: {}\n",
                runtime_version(f),
                runtime_arn(f)
            ),
        ));
    }
    lines.push((
        rec.t0_ms,
        format!("START RequestId: {rid} Version: {}\n", rec.version),
    ));
    let mid = rec.t0_ms + ((rec.end_ms - rec.t0_ms) / 8).max(1);
    if chance(r, 0.6) {
        let msg = info_message(r, f);
        let level = if rec.status == Status::Timeout {
            "WARNING"
        } else {
            "INFO"
        };
        let level = if !is_python(f) && level == "WARNING" {
            "WARN"
        } else {
            level
        };
        lines.push((mid, app_line(f, rid, mid, level, &msg)));
    }
    match rec.status {
        Status::Error => {
            let et = rec.error_type.unwrap_or("Error");
            let err = json!({"errorType": et, "errorMessage": "request failed", "requestId": rid});
            let t = rec.end_ms.saturating_sub(1).max(rec.t0_ms);
            lines.push((
                t,
                app_line(f, rid, t, "ERROR", &format!("Invoke Error \t{err}")),
            ));
        }
        Status::Timeout => {
            let secs = f.timeout_ms as f64 / 1000.0;
            lines.push((
                rec.end_ms,
                format!(
                    "{} {rid} Task timed out after {secs:.2} seconds\n\n",
                    iso(rec.end_ms)
                ),
            ));
        }
        Status::Crash => {
            lines.push((
                rec.end_ms,
                format!("RequestId: {rid} Error: Runtime exited with error: signal: killed\nRuntime.ExitError\n"),
            ));
        }
        Status::Success => {}
    }
    lines.push((rec.end_ms, format!("END RequestId: {rid}\n")));
    let mut report = format!(
        "REPORT RequestId: {rid}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        rec.duration, rec.billed, f.memory_mb, rec.max_mem
    );
    if let Some(init) = rec.init_ms {
        report.push_str(&format!("Init Duration: {init:.2} ms\t"));
    }
    match rec.status {
        Status::Timeout => report.push_str("Status: timeout"),
        Status::Crash => report.push_str("Status: error\tError Type: Runtime.ExitError"),
        _ => {}
    }
    report.push('\n');
    lines.push((rec.end_ms, report));
    lines
}

#[derive(Serialize)]
struct CwPayload<'a> {
    #[serde(rename = "messageType")]
    message_type: &'a str,
    owner: &'a str,
    #[serde(rename = "logGroup")]
    log_group: String,
    #[serde(rename = "logStream")]
    log_stream: String,
    #[serde(rename = "subscriptionFilters")]
    subscription_filters: [&'a str; 1],
    #[serde(rename = "logEvents")]
    log_events: Vec<CwEvent<'a>>,
}

#[derive(Serialize)]
struct CwEvent<'a> {
    id: String,
    timestamp: i64,
    message: &'a str,
}

/// A CloudWatch Logs subscription payload (plain JSON, one line).
pub fn cloudwatch_payload(
    out: &mut Vec<u8>,
    r: &mut Rng,
    account: &str,
    f: &FnSpec,
    version: &str,
    lines: &[(i64, String)],
) {
    let first = lines.first().map(|l| l.0).unwrap_or(0);
    let day = iso(first)[..10].replace('-', "/");
    let log_events = lines
        .iter()
        .map(|(ms, msg)| CwEvent {
            id: format!(
                "3{}{}{}",
                token(r, 19, DIGITS),
                token(r, 19, DIGITS),
                token(r, 17, DIGITS)
            ),
            timestamp: *ms,
            message: msg,
        })
        .collect();
    let payload = CwPayload {
        message_type: "DATA_MESSAGE",
        owner: account,
        log_group: format!("/aws/lambda/{}", f.name),
        log_stream: format!("{day}/[{version}]{}", token(r, 32, HEX)),
        subscription_filters: ["fnwatch-ingest"],
        log_events,
    };
    if serde_json::to_writer(&mut *out, &payload).is_ok() {
        out.push(b'\n');
    }
}

#[derive(Serialize)]
struct TelemetryItem {
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: &'static str,
    record: Value,
}

/// A Lambda Telemetry API batch (JSON array, one line) for one invocation.
pub fn telemetry_batch(out: &mut Vec<u8>, r: &mut Rng, rec: &InvRecord<'_>) {
    let f = rec.f;
    let status = match rec.status {
        Status::Success => "success",
        Status::Error => "error",
        Status::Timeout => "timeout",
        Status::Crash => "failure",
    };
    let mut start_rec = json!({"requestId": rec.rid, "version": rec.version});
    if chance(r, 0.5) {
        start_rec["tracing"] = json!({"spanId": token(r, 16, HEX), "type": "X-Amzn-Trace-Id",
            "value": format!("Root=1-{}-{};Sampled=0", token(r, 8, HEX), token(r, 24, HEX))});
    }
    let t_log = rec.t0_ms + 2;
    let log = format!(
        "{}\t{}\tINFO\trelaying {} to {}\n",
        iso(t_log),
        rec.rid,
        pick(r, &["OrderShipped", "OrderCreated", "RefundIssued"]),
        pick(
            r,
            &["hooks.slack.com", "api.github.com", "hooks.zapier.com"]
        )
    );
    let mut done = json!({"requestId": rec.rid, "status": status,
        "metrics": {"durationMs": rec.duration, "producedBytes": int(r, 0, 400)}});
    let mut metrics = json!({"durationMs": rec.duration, "billedDurationMs": rec.billed,
        "memorySizeMB": f.memory_mb, "maxMemoryUsedMB": rec.max_mem});
    if let Some(i) = rec.init_ms {
        metrics["initDurationMs"] = json!(i);
    }
    let mut report = json!({"requestId": rec.rid, "status": status, "metrics": metrics});
    if let Some(e) = rec.error_type.filter(|_| rec.status != Status::Success) {
        done["errorType"] = json!(e);
        report["errorType"] = json!(e);
    }
    let item = |t: i64, kind: &'static str, record: Value| TelemetryItem {
        time: iso(t),
        kind,
        function: f.name,
        record,
    };
    let batch = [
        item(rec.t0_ms, "platform.start", start_rec),
        item(t_log, "function", Value::from(log)),
        item(
            (rec.end_ms - 1).max(rec.t0_ms),
            "platform.runtimeDone",
            done,
        ),
        item(rec.end_ms, "platform.report", report),
    ];
    if serde_json::to_writer(&mut *out, &batch).is_ok() {
        out.push(b'\n');
    }
}

/// A `function_config` event.
pub fn function_config(
    out: &mut Vec<u8>,
    f: &FnSpec,
    account: &str,
    version: u32,
    layers: &[String],
    t_ms: i64,
) {
    out.extend_from_slice(b"{\"type\":\"function_config\",\"time\":\"");
    iso_into(out, t_ms);
    out.push(b'"');
    kstr(out, "function", f.name);
    kstr(out, "account", account);
    kstr(out, "region", f.region);
    kstr(out, "version", &version.to_string());
    kstr(out, "runtime", f.runtime);
    kstr(out, "handler", f.handler);
    kint(out, "memory_mb", f.memory_mb);
    kint(out, "timeout_ms", f.timeout_ms);
    kstr(
        out,
        "role_arn",
        &format!("arn:aws:iam::{account}:role/{}-role", f.name),
    );
    kstrs(out, "permissions", &f.permissions);
    kstrs(out, "triggers", &f.triggers);
    kstrs(out, "layers", layers);
    out.extend_from_slice(b",\"code_sha256\":");
    esc(out, &f.code_sha256(version));
    out.extend_from_slice(b"}\n");
}
