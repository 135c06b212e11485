//! Property tests of the renderings with attacker-chosen alert fields
//! (proptest): whatever the fields hold, one alert is one CEF line with the
//! fixed header and exactly the extension keys fnwatch writes, one RFC 5424
//! message in one octet-counted frame within the size limit, and one line of
//! JSON that reads back to the same values; no raw line break or line/
//! paragraph separator anywhere.
//!
//! The short version runs with `cargo test`; the long one is
//! `cargo test -p fnwatch-analytics -- --ignored fuzz` (10 million cases per
//! target, or `FNWATCH_FUZZ_CASES`).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use fnwatch_ingest::alerts::Severity;

use super::tests::parse_cef;
use super::*;
use crate::sinks::alert::AlertRecord;
use crate::sinks::syslog::{Header, message};

/// Cases of the short version (every `cargo test`).
pub(crate) const SHORT_CASES: u32 = 512;

/// Cases of the long version: `FNWATCH_FUZZ_CASES`, or 10 million.
pub(crate) fn long_cases() -> u32 {
    std::env::var("FNWATCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(10_000_000)
}

/// A runner for `cases` cases that writes no regression files (a failure
/// prints its minimal input) and reports progress of long runs.
pub(crate) fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    })
}

/// Text an attacker would send: arbitrary Unicode, and the pieces that
/// mean something to CEF, syslog and JSON readers.
pub(crate) fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => any::<String>(),
        2 => "[\\x00-\\x7f]{0,12}",
        1 => Just("|".to_string()),
        1 => Just("\\".to_string()),
        1 => Just("=".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("\r\n".to_string()),
        1 => Just("\u{2028}".to_string()),
        1 => Just("\u{2029}".to_string()),
        1 => Just("\u{85}".to_string()),
        1 => Just("\0".to_string()),
        1 => Just("CEF:0|forged|forged|1|x|forged alert|10|act=blocked".to_string()),
        1 => Just("<13>1 2026-01-01T00:00:00Z forged app - - - injected".to_string()),
        1 => Just(" cs1=forged dvchost=evil ".to_string()),
        1 => Just("\"},{\"id\":\"forged\"".to_string()),
        1 => Just("é漢字🦀\u{200b}\u{feff}".to_string()),
    ];
    let short = prop::collection::vec(piece, 0..6).prop_map(|v| v.concat());
    // Long values near and over the caps, heavy in characters that escape
    // to two bytes (so cutting after escaping matters) or are multi-byte.
    let long = (
        0usize..6000,
        prop::sample::select(vec!['=', '\\', '|', '\n', 'é', '漢', '🦀', 'x']),
    )
        .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect::<String>());
    prop_oneof![8 => short, 1 => long]
}

pub(crate) fn alert() -> impl Strategy<Value = AlertRecord> {
    let severity = prop::sample::select(vec![
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]);
    let evidence = prop_oneof![
        hostile_text().prop_map(|t| serde_json::json!({ "detail": t }).to_string()),
        hostile_text(),
    ];
    (
        (
            hostile_text(),
            -1_000_000_000_000_000i64..253_402_300_799_000_000,
        ),
        (
            hostile_text(),
            prop::option::of(hostile_text()),
            hostile_text(),
        ),
        (severity, any::<f64>(), hostile_text(), evidence),
        (0i64..253_402_300_799_000_000, hostile_text()),
    )
        .prop_map(
            |(
                (id, time_us),
                (function, request_id, kind),
                (severity, score, summary, evidence),
                (detected_at_us, model),
            )| {
                AlertRecord {
                    id,
                    time_us,
                    function,
                    request_id,
                    kind,
                    severity,
                    score,
                    summary,
                    evidence,
                    detected_at_us,
                    model,
                }
            },
        )
}

fn origin() -> Origin {
    Origin {
        host: "siem-relay-1".into(),
        version: "0.1.0",
    }
}

/// No character that ends a line for some reader.
fn one_line(s: &str) -> Result<(), TestCaseError> {
    if let Some(c) = s
        .chars()
        .find(|c| (c.is_control() && *c != '\t') || is_line_separator(*c))
    {
        return Err(TestCaseError::fail(format!("{c:?} in {s:?}")));
    }
    Ok(())
}

/// The CEF extension keys fnwatch writes, in order.
fn cef_keys(a: &AlertRecord, o: &Origin) -> Vec<&'static str> {
    let mut k = vec!["rt", "externalId", "cat", "msg", "cs1Label", "cs1"];
    if a.request_id.is_some() {
        k.extend(["cs2Label", "cs2"]);
    }
    k.extend(["cs3Label", "cs3", "cs4Label", "cs4", "cfp1Label", "cfp1"]);
    if o.host != "-" {
        k.push("dvchost");
    }
    k
}

/// A value as CEF would carry it if it were not cut: controls replaced.
fn cef_plain(v: &str) -> String {
    v.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => c,
            c if c.is_control() || is_line_separator(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn check_cef(a: &AlertRecord) -> Result<(), TestCaseError> {
    let o = origin();
    let mut line = String::new();
    cef(a, &o, &mut line);
    one_line(&line)?;
    let (header, ext) = parse_cef(&line);
    prop_assert_eq!(header.len(), 7, "{}", line);
    prop_assert_eq!(&header[0..4], &["CEF:0", "fnwatch", "fnwatch", "0.1.0"]);
    prop_assert_eq!(&header[6], &cef_severity(a.severity).to_string());
    prop_assert!(header[4].len() <= 1023 && header[5].len() <= 512);
    let keys: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
    prop_assert_eq!(keys, cef_keys(a, &o), "{}", line);
    let get = |k: &str| ext.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    for (key, value, limit) in [
        ("externalId", Some(&a.id), 100),
        ("msg", Some(&a.summary), 1023),
        ("cs1", Some(&a.function), 4000),
        ("cs2", a.request_id.as_ref(), 4000),
        ("cs3", Some(&a.model), 1023),
        ("cs4", Some(&a.evidence), 4000),
    ] {
        let Some(value) = value else { continue };
        let got = get(key).unwrap_or_default();
        // The escaped form of what was written is within the limit...
        let mut escaped = String::new();
        escape_capped(&mut escaped, &got, usize::MAX, |c, out| match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        });
        prop_assert!(escaped.len() <= limit, "{key}: {} > {limit}", escaped.len());
        // ...and it is the value itself, or a prefix of it with the marker.
        let plain = cef_plain(value);
        if got != plain {
            let marker = format!("…[{} bytes cut]", value.len());
            let head = got.strip_suffix(&marker);
            prop_assert!(
                head.is_some_and(|h| plain.starts_with(h)),
                "{key}: {got:?} is neither {plain:?} nor a cut of it"
            );
        }
    }
    Ok(())
}

fn check_json(a: &AlertRecord) -> Result<(), TestCaseError> {
    let mut line = String::new();
    contract_line(a, &mut line);
    one_line(&line)?;
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
    prop_assert_eq!(v["id"].as_str(), Some(a.id.as_str()));
    prop_assert_eq!(v["function"].as_str(), Some(a.function.as_str()));
    prop_assert_eq!(v["summary"].as_str(), Some(a.summary.as_str()));
    prop_assert_eq!(v["request_id"].as_str(), a.request_id.as_deref());
    prop_assert!(v["evidence"].is_object(), "{}", line);

    let mut ocsf_line = String::new();
    render(Format::OcsfJson, a, &origin(), &mut ocsf_line);
    one_line(&ocsf_line)?;
    let o: serde_json::Value = serde_json::from_str(&ocsf_line)
        .map_err(|e| TestCaseError::fail(format!("{e}: {ocsf_line}")))?;
    prop_assert!(o.is_object());

    let meta = HecMeta {
        source: "fnwatch".into(),
        sourcetype: "fnwatch:alert".into(),
        index: Some("security".into()),
    };
    let mut hec = String::new();
    hec_event(a, Format::Json, &meta, &origin(), &mut hec);
    one_line(&hec)?;
    let h: serde_json::Value =
        serde_json::from_str(&hec).map_err(|e| TestCaseError::fail(format!("{e}: {hec}")))?;
    prop_assert_eq!(h["event"]["id"].as_str(), Some(a.id.as_str()));
    Ok(())
}

/// One RFC 5424 message per alert, within the limit, in octet-counted
/// frames that read back to exactly the messages.
fn check_syslog(batch: &[AlertRecord], format: Format, max: usize) -> Result<(), TestCaseError> {
    let header = Header {
        facility: 16,
        app_name: "fnwatch".into(),
        hostname: "siem-relay-1".into(),
    };
    let mut messages = Vec::new();
    let mut framed = Vec::new();
    for a in batch {
        let mut m = String::new();
        message(a, format, &header, &origin(), max, &mut m);
        prop_assert!(m.len() <= max, "{} > {max}", m.len());
        one_line(&m)?;
        let pri = 16 * 8 + u16::from(crate::sinks::syslog::syslog_severity(a.severity));
        let prefix = format!("<{pri}>1 ");
        prop_assert!(m.starts_with(&prefix), "{}", m);
        // The header: VERSION TIMESTAMP HOSTNAME APP PROCID MSGID SD, all
        // printable ASCII; the body starts after them.
        let fields: Vec<&str> = m.splitn(8, ' ').collect();
        prop_assert_eq!(fields.len(), 8, "{}", m);
        prop_assert_eq!(fields[2], "siem-relay-1");
        prop_assert_eq!(fields[3], "fnwatch");
        for f in &fields[..7] {
            prop_assert!(f.chars().all(|c| c.is_ascii_graphic()), "{f:?}");
        }
        if max >= 4096 {
            let body = fields[7];
            match format {
                Format::Cef => prop_assert!(body.starts_with("CEF:0|fnwatch|fnwatch|")),
                Format::Json | Format::OcsfJson => {
                    let parsed: Result<serde_json::Value, _> = serde_json::from_str(body);
                    prop_assert!(parsed.is_ok(), "{}", body);
                }
            }
        }
        framed.extend_from_slice(m.len().to_string().as_bytes());
        framed.push(b' ');
        framed.extend_from_slice(m.as_bytes());
        messages.push(m);
    }
    // Read the octet counting back (RFC 6587 §3.4.1).
    let mut rest: &[u8] = &framed;
    let mut read = Vec::new();
    while !rest.is_empty() {
        let sp = rest.iter().position(|b| *b == b' ');
        prop_assert!(sp.is_some());
        let sp = sp.unwrap_or_default();
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| TestCaseError::fail("bad length"))?;
        prop_assert!(rest.len() >= sp + 1 + len);
        read.push(String::from_utf8_lossy(&rest[sp + 1..sp + 1 + len]).into_owned());
        rest = &rest[sp + 1 + len..];
    }
    prop_assert_eq!(read, messages);
    Ok(())
}

fn syslog_case() -> impl Strategy<Value = (Vec<AlertRecord>, Format, usize)> {
    (
        prop::collection::vec(alert(), 1..4),
        prop::sample::select(vec![Format::Cef, Format::Json, Format::OcsfJson]),
        prop_oneof![480usize..=65_000, Just(480usize), Just(8192usize)],
    )
}

fn run_cef(cases: u32) {
    runner(cases)
        .run(&alert(), |a| check_cef(&a))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn run_json(cases: u32) {
    runner(cases)
        .run(&alert(), |a| check_json(&a))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn run_syslog(cases: u32) {
    runner(cases)
        .run(&syslog_case(), |(batch, format, max)| {
            check_syslog(&batch, format, max)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cef_forges_nothing_and_respects_limits() {
    run_cef(SHORT_CASES);
}

#[test]
fn json_renderings_are_one_line_and_read_back() {
    run_json(SHORT_CASES);
}

#[test]
fn syslog_frames_one_message_per_alert() {
    run_syslog(SHORT_CASES / 2);
}

#[test]
#[ignore = "long: cargo test -p fnwatch-analytics -- --ignored fuzz"]
fn fuzz_cef() {
    run_cef(long_cases());
}

#[test]
#[ignore = "long: cargo test -p fnwatch-analytics -- --ignored fuzz"]
fn fuzz_json() {
    run_json(long_cases());
}

#[test]
#[ignore = "long: cargo test -p fnwatch-analytics -- --ignored fuzz"]
fn fuzz_syslog() {
    run_syslog(long_cases());
}
