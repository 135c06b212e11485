//! The alert contract's JSON object, fields in the contract's order.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::sinks::alert::AlertRecord;

#[derive(Serialize)]
struct Contract<'a> {
    id: &'a str,
    time: String,
    function: &'a str,
    request_id: Option<&'a str>,
    kind: &'a str,
    severity: &'a str,
    score: f64,
    summary: &'a str,
    evidence: Evidence,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Evidence {
    Raw(Box<RawValue>),
    Value(serde_json::Value),
}

fn contract(a: &AlertRecord) -> Contract<'_> {
    // The stored evidence is JSON text; embed it as is when it is a JSON
    // object, otherwise carry it as a string under `text`.
    let evidence = if a.evidence.trim_start().starts_with('{') {
        RawValue::from_string(a.evidence.clone())
            .ok()
            .map(Evidence::Raw)
    } else {
        None
    }
    .unwrap_or_else(|| Evidence::Value(serde_json::json!({ "text": a.evidence })));
    Contract {
        id: &a.id,
        time: a.time_text(),
        function: &a.function,
        request_id: a.request_id.as_deref(),
        kind: &a.kind,
        severity: a.severity.as_str(),
        score: if a.score.is_finite() { a.score } else { 0.0 },
        summary: &a.summary,
        evidence,
    }
}

/// Appends the alert as one line of JSON (no newline at the end).
pub fn contract_line(a: &AlertRecord, out: &mut String) {
    // Serialising plain strings and numbers cannot fail.
    if let Ok(s) = serde_json::to_string(&contract(a)) {
        super::push_json_line(out, &s);
    }
}

/// Writes the alert as JSON to `w` (for HEC events, which embed it).
pub fn write_contract<W: std::io::Write>(w: W, a: &AlertRecord) -> serde_json::Result<()> {
    serde_json::to_writer(w, &contract(a))
}
