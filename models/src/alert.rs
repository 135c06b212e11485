//! Alerts in the form of the output contract (`shared/spec/alerts.md`).

pub use fnwatch_ingest::alerts::{Kind, Severity, alert_id, rfc3339_us};
use serde::{Deserialize, Serialize};

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub time: String,
    pub function: String,
    pub request_id: Option<String>,
    pub kind: Kind,
    pub severity: Severity,
    pub score: f64,
    pub summary: String,
    pub evidence: serde_json::Value,
}

/// The alerts as a batch of the lake's `alerts` table; `times_us` are the
/// alerts' times in microseconds, in the same order.
pub fn alerts_batch(
    alerts: &[Alert],
    times_us: &[i64],
    detected_at_us: i64,
    model: &str,
) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
    let schema = fnwatch_ingest::schema::alerts_schema();
    let n = alerts.len();
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let strs = |f: &dyn Fn(&Alert) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(alerts.iter().map(f).collect::<Vec<_>>()))
    };
    let dates: Vec<String> = times_us
        .iter()
        .map(|&t| {
            chrono::DateTime::from_timestamp_micros(t)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "1970-01-01".to_string())
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strs(&|a| Some(a.id.clone())),
        ts(times_us.to_vec()),
        strs(&|a| Some(a.function.clone())),
        strs(&|a| a.request_id.clone()),
        strs(&|a| Some(a.kind.as_str().to_string())),
        strs(&|a| Some(a.severity.as_str().to_string())),
        Arc::new(Float64Array::from(
            alerts.iter().map(|a| a.score).collect::<Vec<_>>(),
        )),
        strs(&|a| Some(a.summary.clone())),
        strs(&|a| Some(a.evidence.to_string())),
        ts(vec![detected_at_us; n]),
        Arc::new(StringArray::from(vec![model; n])),
        Arc::new(StringArray::from(dates)),
    ];
    arrow::array::RecordBatch::try_new(schema, columns)
}

/// An alert's time in microseconds (its `time` field parsed back).
pub fn time_us(a: &Alert) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&a.time)
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = alert_id(Kind::UnusualDns, "f", Some("r1"), "");
        assert_eq!(a, alert_id(Kind::UnusualDns, "f", Some("r1"), ""));
        assert_ne!(a, alert_id(Kind::UnknownHost, "f", Some("r1"), ""));
        assert_ne!(a, alert_id(Kind::UnusualDns, "f", Some("r2"), ""));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn serialises_per_contract() {
        let a = Alert {
            id: "x".into(),
            time: rfc3339_us(1_700_000_000_123_000),
            function: "f".into(),
            request_id: None,
            kind: Kind::OverPermissive,
            severity: Severity::Medium,
            score: 0.5,
            summary: "s".into(),
            evidence: serde_json::json!({}),
        };
        let j = serde_json::to_string(&a).unwrap();
        assert!(j.contains("\"kind\":\"over_permissive\""), "{j}");
        assert!(j.contains("\"severity\":\"medium\""), "{j}");
        assert!(j.contains("\"request_id\":null"), "{j}");
        assert!(j.contains("\"time\":\"2023-11-14T22:13:20.123Z\""), "{j}");
    }
}
