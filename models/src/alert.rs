//! Alerts in the form of the output contract (`shared/spec/alerts.md`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    UnusualDns,
    UnexpectedProcess,
    UnknownHost,
    UnusualFileAccess,
    SleepTimeout,
    EventInjection,
    UnusualApiCall,
    BehaviourAnomaly,
    OverPermissive,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::UnusualDns,
        Kind::UnexpectedProcess,
        Kind::UnknownHost,
        Kind::UnusualFileAccess,
        Kind::SleepTimeout,
        Kind::EventInjection,
        Kind::UnusualApiCall,
        Kind::BehaviourAnomaly,
        Kind::OverPermissive,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::UnusualDns => "unusual_dns",
            Kind::UnexpectedProcess => "unexpected_process",
            Kind::UnknownHost => "unknown_host",
            Kind::UnusualFileAccess => "unusual_file_access",
            Kind::SleepTimeout => "sleep_timeout",
            Kind::EventInjection => "event_injection",
            Kind::UnusualApiCall => "unusual_api_call",
            Kind::BehaviourAnomaly => "behaviour_anomaly",
            Kind::OverPermissive => "over_permissive",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Triage level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The score band of a severity; `within` in 0..1 places it in the band.
    pub fn score(&self, within: f64) -> f64 {
        let (lo, hi) = match self {
            Severity::Low => (0.2, 0.45),
            Severity::Medium => (0.5, 0.7),
            Severity::High => (0.75, 0.9),
            Severity::Critical => (0.92, 1.0),
        };
        let w = within.clamp(0.0, 1.0);
        ((lo + (hi - lo) * w) * 1000.0).round() / 1000.0
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// A stable id: the same (kind, function, request, discriminator) always
/// gives the same id, so re-running detection gives the same ids.
pub fn alert_id(kind: Kind, function: &str, request_id: Option<&str>, extra: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"fnwatch-alert-v1\0");
    h.update(kind.as_str().as_bytes());
    h.update(b"\0");
    h.update(function.as_bytes());
    h.update(b"\0");
    h.update(request_id.unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(extra.as_bytes());
    let hex = h.finalize().to_hex();
    let s = hex.as_str();
    // UUID-shaped, so SIEM fields typed as ids accept it.
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{us}us"))
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
