//! Renderings of the alert contract for SIEMs: the contract's own JSON, ArcSight
//! CEF, OCSF Detection Finding and Splunk HEC events.
//!
//! Every field comes from attacker-influenced telemetry (function names,
//! domains, command lines, event payloads), so each rendering escapes what its
//! format gives meaning to and caps field sizes: no value can end a message,
//! start another or break the framing around it. JSON renderings are safe by
//! construction (serde escapes every control character).

mod cef;
mod hec;
mod json;
mod ocsf;
#[cfg(test)]
pub(crate) mod tests;

pub use cef::{cef, cef_severity, unescape_ext};
pub use hec::{HecMeta, hec_event};
pub use json::{contract_line, write_contract};
pub use ocsf::{OCSF_VERSION, ocsf, ocsf_severity_id};

use serde::Deserialize;

/// How an alert is written inside a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// ArcSight Common Event Format.
    Cef,
    /// OCSF Detection Finding (class 2004) as JSON.
    OcsfJson,
    /// The alert contract's JSON object.
    Json,
}

impl Format {
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Cef => "cef",
            Format::OcsfJson => "ocsf-json",
            Format::Json => "json",
        }
    }
}

/// Facts about the sender that renderings carry.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The host fnwatch runs on (printable ASCII, no spaces).
    pub host: String,
    /// fnwatch's version.
    pub version: &'static str,
}

impl Origin {
    /// This host, as the system names it.
    pub fn local() -> Origin {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| printable_ascii(h.trim(), 255))
            .unwrap_or_default();
        Origin {
            host: if host.is_empty() { "-".into() } else { host },
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Renders one alert in `format` (one line: no raw CR or LF inside).
pub fn render(format: Format, a: &super::alert::AlertRecord, origin: &Origin, out: &mut String) {
    match format {
        Format::Cef => cef(a, origin, out),
        Format::Json => json::contract_line(a, out),
        Format::OcsfJson => {
            let v = ocsf(a, origin);
            out.push_str(&v.to_string());
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with a marker
/// saying how much was cut.
pub fn cap(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let marker = format!("…[{} bytes cut]", s.len());
    let keep = max.saturating_sub(marker.len());
    let mut end = keep.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{marker}", &s[..end]))
}

/// Printable ASCII only (RFC 5424 header fields): other bytes become `_`,
/// at most `max` characters.
pub fn printable_ascii(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}
