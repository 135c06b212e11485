use super::*;
use crate::sinks::alert::sample;
use crate::sinks::render::tests::hostile;

fn header() -> Header {
    Header {
        facility: 16,
        app_name: "fnwatch".into(),
        hostname: "siem-relay-1".into(),
    }
}

fn origin() -> Origin {
    Origin {
        host: "siem-relay-1".into(),
        version: "0.1.0",
    }
}

#[test]
fn rfc5424_header() {
    let mut m = String::new();
    message(&sample(), Format::Cef, &header(), &origin(), 8192, &mut m);
    // local0 (16) * 8 + error (3) = 131.
    assert!(
        m.starts_with("<131>1 2026-11-04T13:47:40.000Z siem-relay-1 fnwatch - unusual_dns - CEF:0|fnwatch|fnwatch|0.1.0|unusual_dns|"),
        "{m}"
    );
}

#[test]
fn hostile_message_stays_one_frame() {
    for f in [Format::Cef, Format::Json, Format::OcsfJson] {
        let mut m = String::new();
        message(&hostile(), f, &header(), &origin(), 8192, &mut m);
        assert!(!m.contains('\n') && !m.contains('\r'), "{f:?}: {m}");
        // The forged syslog header inside the request id is inert text in the body.
        assert!(m.starts_with("<130>1 "), "{m}");
    }
}

#[test]
fn long_alerts_fit_the_limit_and_stay_valid_json() {
    let mut a = sample();
    a.evidence = serde_json::json!({"blob": "y".repeat(50_000)}).to_string();
    a.function = "f".repeat(3000);
    for f in [Format::Json, Format::OcsfJson, Format::Cef] {
        let mut m = String::new();
        message(&a, f, &header(), &origin(), 2048, &mut m);
        assert!(m.len() <= 2048, "{f:?}: {}", m.len());
        if f != Format::Cef {
            let body = m.splitn(8, ' ').nth(7).unwrap();
            let v: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{f:?}: {e}: {body}"));
            assert!(v.to_string().contains("truncated"), "{f:?}");
        }
    }
}

#[test]
fn octet_counting_frames() {
    let a = sample();
    let b = hostile();
    let mut msg = String::new();
    let mut out = Vec::new();
    conn::frames(
        &[&a, &b],
        Format::Cef,
        &header(),
        &origin(),
        8192,
        &mut msg,
        &mut out,
    );
    // Read the frames back by their lengths.
    let mut rest = &out[..];
    let mut n = 0;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&c| c == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        let body = &rest[sp + 1..sp + 1 + len];
        assert!(
            body.starts_with(b"<1"),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        rest = &rest[sp + 1 + len..];
        n += 1;
    }
    assert_eq!(n, 2);
}
