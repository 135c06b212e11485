//! The vocabulary of the `alerts` table (`shared/spec/alerts.md`): alert
//! kinds, severities, stable ids and the time format. Shared by the models
//! that raise alerts and the sinks that deliver them.

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
    /// (v1.1) the function's role credentials used from outside the function.
    CredentialExfiltration,
    /// (v1.1) the function's configuration changed outside a deploy.
    ConfigDrift,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::UnusualDns,
        Kind::UnexpectedProcess,
        Kind::UnknownHost,
        Kind::UnusualFileAccess,
        Kind::SleepTimeout,
        Kind::EventInjection,
        Kind::UnusualApiCall,
        Kind::BehaviourAnomaly,
        Kind::OverPermissive,
        Kind::CredentialExfiltration,
        Kind::ConfigDrift,
    ];

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

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
            Kind::CredentialExfiltration => "credential_exfiltration",
            Kind::ConfigDrift => "config_drift",
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

/// A stable id: the same (kind, function, request, discriminator) always
/// gives the same id, so re-running detection gives the same ids.
pub fn alert_id(kind: Kind, function: &str, request_id: Option<&str>, extra: &str) -> String {
    stable_id(
        "fnwatch-alert-v1",
        &[kind.as_str(), function, request_id.unwrap_or(""), extra],
    )
}

/// A UUID-shaped id (so SIEM fields typed as ids accept it) from a blake3
/// digest of `tag` and `parts`, each NUL-separated.
pub fn stable_id(tag: &str, parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(tag.as_bytes());
    for p in parts {
        h.update(b"\0");
        h.update(p.as_bytes());
    }
    let hex = h.finalize().to_hex();
    let s = hex.as_str();
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
