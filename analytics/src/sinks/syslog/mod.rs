//! Syslog output: RFC 5424 messages carrying CEF, OCSF JSON or the alert
//! JSON, over UDP (RFC 5426, one message per datagram), TCP (RFC 6587 octet
//! counting) or TLS (RFC 5425, rustls).
//!
//! The RFC 5424 header is written here rather than with a syslog crate:
//! fasyslog, the maintained one, stamps `now()` inside its formatter (so
//! renderings cannot be pinned by golden tests) and does not sanitise header
//! fields. Header fields are printable ASCII only; the message body can hold
//! anything because octet counting frames it by length and each rendering
//! escapes line breaks.

mod config;
mod conn;
#[cfg(test)]
mod tests;

pub use config::{Protocol, SyslogConfig};
pub use conn::SyslogSink;

use std::fmt::Write;

use fnwatch_ingest::alerts::{Severity, rfc3339_us};

use super::alert::AlertRecord;
use super::render::{Format, Origin, printable_ascii, render};

/// Syslog severity (RFC 5424 §6.2.1) of an alert severity.
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 5,      // notice
        Severity::Medium => 4,   // warning
        Severity::High => 3,     // error
        Severity::Critical => 2, // critical
    }
}

/// Header settings of the messages.
#[derive(Debug, Clone)]
pub struct Header {
    pub facility: u8,
    pub app_name: String,
    pub hostname: String,
}

/// Appends one RFC 5424 message (without framing): the header (time = when
/// the alert was raised, MSGID = the alert kind, no structured data) and the
/// rendered alert. Messages longer than `max_bytes` are rendered again with
/// the evidence and long fields cut until they fit.
pub fn message(
    a: &AlertRecord,
    format: Format,
    header: &Header,
    origin: &Origin,
    max_bytes: usize,
    out: &mut String,
) {
    let start = out.len();
    write_header(a, header, out);
    let body_start = out.len();
    render(format, a, origin, out);
    // Too long: cut the evidence and the long fields, harder each round,
    // until it fits.
    let mut level = 0;
    while out.len() - start > max_bytes && level < 8 {
        out.truncate(body_start);
        render(format, &shrink(a, level), origin, out);
        level += 1;
    }
    if out.len() - start > max_bytes {
        // Only absurd limits get here; cut on a character boundary: the
        // frame stays intact either way.
        let mut end = start + max_bytes;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
}

fn write_header(a: &AlertRecord, h: &Header, out: &mut String) {
    let pri = u16::from(h.facility) * 8 + u16::from(syslog_severity(a.severity));
    let msgid = printable_ascii(&a.kind, 32);
    let _ = write!(
        out,
        "<{pri}>1 {} {} {} - {} - ",
        rfc3339_us(a.detected_at_us),
        h.hostname,
        h.app_name,
        if msgid.is_empty() { "-" } else { &msgid }
    );
}

/// A copy of `a` with long fields cut; each `level` halves the room.
pub fn shrink(a: &AlertRecord, level: u32) -> AlertRecord {
    use super::render::cap;
    let room = |full: usize, floor: usize| (full >> level).max(floor);
    let mut s = a.clone();
    // The id and kind are fnwatch's own, but bounded all the same.
    s.id = cap(&a.id, room(128, 40)).into_owned();
    s.kind = cap(&a.kind, room(128, 40)).into_owned();
    s.function = cap(&a.function, room(256, 32)).into_owned();
    s.request_id = a
        .request_id
        .as_deref()
        .map(|r| cap(r, room(128, 40)).into_owned());
    s.summary = cap(&a.summary, room(512, 64)).into_owned();
    s.model = cap(&a.model, 64).into_owned();
    if a.evidence.len() > room(2048, 64) {
        s.evidence = serde_json::json!({
            "truncated": true,
            "bytes": a.evidence.len(),
            "head": cap(&a.evidence, room(1024, 24)),
        })
        .to_string();
    }
    s
}
