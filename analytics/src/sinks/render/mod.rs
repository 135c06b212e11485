//! Renderings of the alert contract for SIEMs: the contract's own JSON, ArcSight
//! CEF, OCSF Detection Finding and Splunk HEC events.
//!
//! Every field comes from attacker-influenced telemetry (function names,
//! domains, command lines, event payloads), so each rendering escapes what its
//! format gives meaning to and caps field sizes: no value can end a message,
//! start another or break the framing around it. JSON renderings are safe by
//! construction (serde escapes every control character).

mod cef;
#[cfg(test)]
pub(crate) mod fuzz;
mod hec;
mod json;
mod ocsf;
#[cfg(test)]
pub(crate) mod tests;

pub use cef::{cef, cef_severity, unescape_ext};
pub use hec::{HecMeta, hec_event};
pub use json::{contract_line, write_contract};

/// An alert's rendering cut to at most `max` bytes after escaping, on the
/// boundary of an escaped character (never inside an escape sequence or a
/// UTF-8 character), with a marker saying how much of `v` was cut; `escape`
/// writes one character's escaped form.
pub fn escape_capped(out: &mut String, v: &str, max: usize, escape: impl Fn(char, &mut String)) {
    let start = out.len();
    for c in v.chars() {
        escape(c, out);
    }
    if out.len() - start <= max {
        return;
    }
    out.truncate(start);
    let marker = format!("…[{} bytes cut]", v.len());
    let (room, marker) = if marker.len() <= max {
        (max - marker.len(), Some(marker))
    } else {
        (max, None)
    };
    let mut unit = String::new();
    for c in v.chars() {
        unit.clear();
        escape(c, &mut unit);
        if out.len() - start + unit.len() > room {
            break;
        }
        out.push_str(&unit);
    }
    if let Some(m) = marker {
        out.push_str(&m);
    }
}
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

/// Renders one alert in `format` (one line: no raw CR or LF inside, nor
/// any other line or paragraph separator).
pub fn render(format: Format, a: &super::alert::AlertRecord, origin: &Origin, out: &mut String) {
    match format {
        Format::Cef => cef(a, origin, out),
        Format::Json => json::contract_line(a, out),
        Format::OcsfJson => {
            let v = ocsf(a, origin);
            push_json_line(out, &v.to_string());
        }
    }
}

/// Characters some readers take as the end of a line although they are not
/// control characters: U+2028 LINE SEPARATOR and U+2029 PARAGRAPH
/// SEPARATOR (JavaScript, many log viewers and SIEM parsers). NEL (U+0085),
/// VT and FF are control characters and handled with them.
pub fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Appends serialised JSON as one line that no reader can split: U+2028
/// and U+2029 (which JSON allows raw inside strings) written as `\u2028` /
/// `\u2029` escapes (DEL and the C1 controls such as NEL likewise), and CR, LF and tab, which valid JSON can hold only as
/// whitespace between tokens, as spaces. The value read back is the same.
pub fn push_json_line(out: &mut String, json: &str) {
    use std::fmt::Write as _;
    for c in json.chars() {
        match c {
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            // DEL and the C1 controls (NEL among them), which serde leaves raw.
            c if c.is_control() && !matches!(c, '\n' | '\r' | '\t') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
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
