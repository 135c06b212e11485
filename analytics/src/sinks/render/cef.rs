//! ArcSight Common Event Format (CEF) 0:
//! `CEF:0|fnwatch|fnwatch|<version>|<kind>|<summary>|<0-10>|<extension>`.
//!
//! Escaping follows the CEF specification: in the header `\` and `|` are
//! escaped with a backslash and a header may not span lines (line breaks and
//! other control characters become spaces); in extension values `\` and `=`
//! are escaped, CR and LF are written as `\r` and `\n`, and other control
//! characters (but tab) become U+FFFD. U+2028 and U+2029, which some readers
//! take as line breaks, are treated as control characters. Fields are
//! escaped first and then capped at the sizes ArcSight accepts (name 512,
//! msg 1023, custom strings 4000 bytes), never inside an escape sequence or
//! a UTF-8 character.

use std::fmt::Write;

use fnwatch_ingest::alerts::Severity;

use super::{Origin, escape_capped, is_line_separator};
use crate::sinks::alert::AlertRecord;

/// CEF severity (0-10) of an alert severity.
pub fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// Appends the alert as one CEF line.
pub fn cef(a: &AlertRecord, origin: &Origin, out: &mut String) {
    out.push_str("CEF:0|fnwatch|fnwatch|");
    header(out, origin.version, 63);
    out.push('|');
    header(out, &a.kind, 1023);
    out.push('|');
    header(out, &a.summary, 512);
    out.push('|');
    let _ = write!(out, "{}|", cef_severity(a.severity));

    let ms = a.time_us.div_euclid(1000);
    let _ = write!(out, "rt={ms} externalId=");
    ext(out, &a.id, 100);
    out.push_str(" cat=");
    ext(out, &a.kind, 1023);
    out.push_str(" msg=");
    ext(out, &a.summary, 1023);
    out.push_str(" cs1Label=function cs1=");
    ext(out, &a.function, 4000);
    if let Some(r) = &a.request_id {
        out.push_str(" cs2Label=requestId cs2=");
        ext(out, r, 4000);
    }
    out.push_str(" cs3Label=model cs3=");
    ext(out, &a.model, 1023);
    out.push_str(" cs4Label=evidence cs4=");
    ext(out, &a.evidence, 4000);
    let score = if a.score.is_finite() { a.score } else { 0.0 };
    let _ = write!(out, " cfp1Label=score cfp1={score}");
    if origin.host != "-" {
        out.push_str(" dvchost=");
        ext(out, &origin.host, 1023);
    }
}

/// A header field: `\` and `|` escaped, control characters as spaces; at
/// most `max` bytes once escaped.
fn header(out: &mut String, v: &str, max: usize) {
    escape_capped(out, v, max, header_char);
}

fn header_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '|' => out.push_str("\\|"),
        c if c.is_control() || is_line_separator(c) => out.push(' '),
        c => out.push(c),
    }
}

/// An extension value: `\` and `=` escaped, CR/LF as `\r`/`\n`; at most
/// `max` bytes once escaped.
fn ext(out: &mut String, v: &str, max: usize) {
    escape_capped(out, v, max, ext_char);
}

fn ext_char(c: char, out: &mut String) {
    match c {
        '\\' => out.push_str("\\\\"),
        '=' => out.push_str("\\="),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push('\t'),
        c if c.is_control() || is_line_separator(c) => out.push('\u{FFFD}'),
        c => out.push(c),
    }
}

/// Reads an extension value back (the inverse of the escaping), for tests
/// and for receivers written against this module.
pub fn unescape_ext(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}
