//! Alerts as the sinks see them: rows of the lake's `alerts` table.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use fnwatch_ingest::alerts::{Severity, rfc3339_us};

use crate::error::{AnalyticsError, Result};
use crate::session::LakeSession;

/// One stored alert (the contract's fields plus when and by what it was raised).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    /// Time of the offending event, microseconds since the epoch (UTC).
    pub time_us: i64,
    pub function: String,
    pub request_id: Option<String>,
    /// One of the contract's kinds (kept as text: a newer fnwatch may add kinds).
    pub kind: String,
    pub severity: Severity,
    pub score: f64,
    pub summary: String,
    /// The evidence object as JSON text, as stored.
    pub evidence: String,
    pub detected_at_us: i64,
    pub model: String,
}

impl AlertRecord {
    /// `time` in the contract's form (RFC 3339 UTC, milliseconds).
    pub fn time_text(&self) -> String {
        rfc3339_us(self.time_us)
    }

    /// The evidence as a JSON value; text that is not a JSON object (an older
    /// or foreign writer) is carried as `{"text": ...}` rather than dropped.
    pub fn evidence_value(&self) -> serde_json::Value {
        match serde_json::from_str::<serde_json::Value>(&self.evidence) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => serde_json::json!({ "text": self.evidence }),
        }
    }

    /// The alert contract's JSON object (`shared/spec/alerts.md`), fields in
    /// the contract's order.
    pub fn contract_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.contract_map())
    }

    /// As [`contract_json`](Self::contract_json), as a map to extend.
    pub fn contract_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("time".into(), self.time_text().into());
        m.insert("function".into(), self.function.clone().into());
        m.insert(
            "request_id".into(),
            self.request_id
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
        m.insert("kind".into(), self.kind.clone().into());
        m.insert("severity".into(), self.severity.as_str().into());
        m.insert(
            "score".into(),
            serde_json::Number::from_f64(self.score)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        );
        m.insert("summary".into(), self.summary.clone().into());
        m.insert("evidence".into(), self.evidence_value());
        m
    }
}

/// The columns [`from_batch`] reads, in order.
pub const ALERT_COLUMNS: &str =
    "id, time, function, request_id, kind, severity, score, summary, evidence, detected_at, model";

/// Reads the stored alerts, oldest first (by time of the offending event,
/// then id): all of them, or those stored (detected) at or after `since_us`.
pub async fn read_alerts(session: &LakeSession, since_us: Option<i64>) -> Result<Vec<AlertRecord>> {
    let filter = match since_us {
        Some(us) => format!(" WHERE detected_at >= TIMESTAMP '{}'", rfc3339_us(us)),
        None => String::new(),
    };
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts{filter} ORDER BY time, id");
    let result = session.query(&sql).await?;
    let mut out = Vec::with_capacity(result.num_rows());
    for b in &result.batches {
        out.extend(from_batch(b)?);
    }
    Ok(out)
}

/// Alerts from a batch with the columns of [`ALERT_COLUMNS`] (the `alerts`
/// table's schema, or a query over it; string views are accepted).
pub fn from_batch(b: &RecordBatch) -> Result<Vec<AlertRecord>> {
    let text = |name: &str| -> Result<StringArray> {
        let col = column(b, name)?;
        let c = arrow::compute::cast(col, &DataType::Utf8).map_err(|e| bad(name, e))?;
        c.as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| bad(name, "not text"))
    };
    let ts = |name: &str| -> Result<TimestampMicrosecondArray> {
        let col = column(b, name)?;
        let c = arrow::compute::cast(
            col,
            &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        )
        .map_err(|e| bad(name, e))?;
        c.as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .cloned()
            .ok_or_else(|| bad(name, "not a timestamp"))
    };
    let id = text("id")?;
    let time = ts("time")?;
    let function = text("function")?;
    let request_id = text("request_id")?;
    let kind = text("kind")?;
    let severity = text("severity")?;
    let score_col = arrow::compute::cast(column(b, "score")?, &DataType::Float64)
        .map_err(|e| bad("score", e))?;
    let score = score_col
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| bad("score", "not a number"))?;
    let summary = text("summary")?;
    let evidence = text("evidence")?;
    let detected_at = ts("detected_at")?;
    let model = text("model")?;
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let sev_text = severity.value(i);
        let Some(sev) = Severity::parse(sev_text) else {
            return Err(AnalyticsError::Execution(format!(
                "alerts table: alert {} has severity `{sev_text}` (valid: low, medium, high, critical)",
                id.value(i)
            )));
        };
        out.push(AlertRecord {
            id: id.value(i).to_string(),
            time_us: time.value(i),
            function: function.value(i).to_string(),
            request_id: (!request_id.is_null(i)).then(|| request_id.value(i).to_string()),
            kind: kind.value(i).to_string(),
            severity: sev,
            score: if score.is_null(i) {
                0.0
            } else {
                score.value(i)
            },
            summary: summary.value(i).to_string(),
            evidence: evidence.value(i).to_string(),
            detected_at_us: detected_at.value(i),
            model: model.value(i).to_string(),
        });
    }
    Ok(out)
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>> {
    b.column_by_name(name)
        .ok_or_else(|| AnalyticsError::Execution(format!("alerts: no column `{name}`")))
}

fn bad(name: &str, e: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::Execution(format!("alerts: column `{name}`: {e}"))
}

#[cfg(test)]
pub(crate) fn sample() -> AlertRecord {
    AlertRecord {
        id: "4f1c2a9e-0b7d-4e21-9a3c-5d6e7f809102".into(),
        time_us: 1_793_800_000_123_000,
        function: "orders-api".into(),
        request_id: Some("8d2f6c1e-3b4a-4c5d-9e8f-0a1b2c3d4e5f".into()),
        kind: "unusual_dns".into(),
        severity: Severity::High,
        score: 0.83,
        summary: "orders-api resolved pastebin.com, a domain it has never resolved (known domains: 4) and no function in the fleet has".into(),
        evidence: r#"{"name":"pastebin.com","apex":"pastebin.com","known_domains":4,"fleet_seen":false}"#.into(),
        detected_at_us: 1_793_800_060_000_000,
        model: "default@v1".into(),
    }
}
