//! OCSF Detection Finding (class 2004, category 2 "Findings").
//!
//! The alert `id` is `finding_info.uid` (and `metadata.uid`), the function is
//! the finding's resource, the evidence's top-level facts (names, addresses,
//! ports, command lines, paths) are observables typed by what they are, and the
//! whole evidence object rides in `unmapped.evidence` so nothing is lost.

use fnwatch_ingest::alerts::Severity;
use serde_json::{Map, Value, json};

use super::{Origin, cap};
use crate::sinks::alert::AlertRecord;

/// The OCSF schema version the rendering follows.
pub const OCSF_VERSION: &str = "1.5.0";

/// OCSF `severity_id` of an alert severity (1 Informational … 5 Critical).
pub fn ocsf_severity_id(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// Observable type ids of the OCSF dictionary.
const HOSTNAME: u8 = 1;
const IP_ADDRESS: u8 = 2;
const URL_STRING: u8 = 6;
const FILE_PATH: u8 = 45;
const RESOURCE_UID: u8 = 10;
const PORT: u8 = 11;
const COMMAND_LINE: u8 = 13;
const OTHER: u8 = 99;

fn observable_type(key: &str) -> (u8, &'static str) {
    match key {
        "query" | "name" | "remote_host" | "site" | "apex" | "host" | "domain" => {
            (HOSTNAME, "Hostname")
        }
        "remote_ip" | "ip" | "answers" => (IP_ADDRESS, "IP Address"),
        "remote_port" | "port" => (PORT, "Port"),
        "cmdline" | "command_line" => (COMMAND_LINE, "Command Line"),
        "exe" | "parent_exe" | "path" | "file" => (FILE_PATH, "File Path"),
        "url" => (URL_STRING, "URL String"),
        "resource" | "arn" => (RESOURCE_UID, "Resource UID"),
        _ => (OTHER, "Other"),
    }
}

/// At most this many observables per finding.
const MAX_OBSERVABLES: usize = 32;

/// The alert as an OCSF Detection Finding object.
pub fn ocsf(a: &AlertRecord, origin: &Origin) -> Value {
    let (sev_id, sev) = ocsf_severity_id(a.severity);
    let time_ms = a.time_us.div_euclid(1000);
    let evidence = a.evidence_value();
    let mut observables = Vec::new();
    if let Value::Object(m) = &evidence {
        for (k, v) in m {
            if k == "baseline" {
                continue;
            }
            let values: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for v in values {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                if text.is_empty() || observables.len() >= MAX_OBSERVABLES {
                    continue;
                }
                let (type_id, type_name) = observable_type(k);
                observables.push(json!({
                    "name": format!("evidence.{k}"),
                    "type_id": type_id,
                    "type": type_name,
                    "value": cap(&text, 2048),
                }));
            }
        }
    }
    observables.push(json!({
        "name": "resources.uid",
        "type_id": RESOURCE_UID,
        "type": "Resource UID",
        "value": a.function,
    }));
    let mut unmapped = Map::new();
    unmapped.insert("kind".into(), a.kind.clone().into());
    unmapped.insert("score".into(), json!(a.score));
    if let Some(r) = &a.request_id {
        unmapped.insert("request_id".into(), r.clone().into());
    }
    unmapped.insert("evidence".into(), evidence);
    json!({
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": sev_id,
        "severity": sev,
        "status_id": 1,
        "status": "New",
        "is_alert": a.severity >= Severity::Medium,
        "time": time_ms,
        "message": a.summary,
        "risk_score": (a.score.clamp(0.0, 1.0) * 100.0).round() as i64,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": a.id,
            "product": {
                "name": "fnwatch",
                "vendor_name": "fnwatch",
                "version": origin.version,
            },
        },
        "finding_info": {
            "uid": a.id,
            "title": format!("{}: {}", a.kind, a.function),
            "desc": a.summary,
            "types": [a.kind],
            "created_time": a.detected_at_us.div_euclid(1000),
            "first_seen_time": time_ms,
            "last_seen_time": time_ms,
            "analytic": {
                "name": a.kind,
                "uid": a.model,
                "type_id": 2,
                "type": "Behavioral",
            },
        },
        "resources": [{
            "type": "AWS::Lambda::Function",
            "name": a.function,
            "uid": a.function,
        }],
        "observables": observables,
        "unmapped": unmapped,
    })
}
