//! Tests of the simulator on tiny configurations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::*;

fn tiny(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        start: Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap(),
        days: 3,
        invocations_per_day: 600,
        attack_days: 1,
        attacks_per_class: 6,
        hard_cases: true,
    }
}

fn read_gz(p: &Path) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

fn lines_of(sum: &SimSummary) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for f in &sum.files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        for line in read_gz(f).lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            out.push((name.clone(), v));
        }
    }
    out
}

/// Request ids of the invocations reported in a line, with their end time.
fn reported(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if v.get("type").and_then(Value::as_str) == Some("invocation") {
        out.push((
            v["request_id"].as_str().unwrap().to_string(),
            v["time"].as_str().unwrap().to_string(),
        ));
    } else if v.get("messageType").is_some() {
        for e in v["logEvents"].as_array().unwrap() {
            let msg = e["message"].as_str().unwrap();
            if let Some(rest) = msg.strip_prefix("REPORT RequestId: ") {
                let id = rest.split('\t').next().unwrap().to_string();
                let t = util::iso(e["timestamp"].as_i64().unwrap());
                out.push((id, t));
            }
        }
    } else if let Some(items) = v.as_array() {
        for it in items {
            if it["type"] == "platform.report" {
                out.push((
                    it["record"]["requestId"].as_str().unwrap().to_string(),
                    it["time"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let cfg = tiny(11);
    let sa = generate(&cfg, a.path(), |_| {}).unwrap();
    let sb = generate(&cfg, b.path(), |_| {}).unwrap();
    assert_eq!(sa.files.len(), 3);
    for (fa, fb) in sa.files.iter().zip(&sb.files) {
        assert_eq!(fa.file_name(), fb.file_name());
        assert_eq!(
            std::fs::read(fa).unwrap(),
            std::fs::read(fb).unwrap(),
            "{}",
            fa.display()
        );
    }
    assert_eq!(
        std::fs::read(&sa.labels).unwrap(),
        std::fs::read(&sb.labels).unwrap()
    );
    // another seed is another fleet history
    let c = tempfile::tempdir().unwrap();
    let sc = generate(&tiny(12), c.path(), |_| {}).unwrap();
    assert_ne!(
        std::fs::read(&sa.files[0]).unwrap(),
        std::fs::read(&sc.files[0]).unwrap()
    );
}

#[test]
fn every_line_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let sum = generate(&tiny(5), dir.path(), |_| {}).unwrap();
    let names: Vec<String> = sum
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "telemetry-2026-11-20.jsonl.gz",
            "telemetry-2026-11-21.jsonl.gz",
            "telemetry-2026-11-22.jsonl.gz"
        ]
    );
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut invocations = 0u64;
    let mut events = 0u64;
    for (file, v) in lines_of(&sum) {
        invocations += reported(&v).len() as u64;
        if v.is_array() {
            *types.entry("telemetry_api".into()).or_default() += 1;
            for it in v.as_array().unwrap() {
                assert!(
                    it["function"].is_string()
                        && it["time"].is_string()
                        && it["record"].is_object()
                        || it["record"].is_string(),
                    "{it}"
                );
            }
            events += 1;
            continue;
        }
        if v.get("messageType").is_some() {
            *types.entry("cloudwatch".into()).or_default() += 1;
            assert_eq!(v["messageType"], "DATA_MESSAGE");
            let group = v["logGroup"].as_str().unwrap();
            assert!(group.starts_with("/aws/lambda/"), "{group}");
            assert!(
                v["logStream"].is_string()
                    && v["owner"].is_string()
                    && v["subscriptionFilters"].is_array()
            );
            for e in v["logEvents"].as_array().unwrap() {
                assert!(
                    e["timestamp"].is_i64() && e["message"].is_string() && e["id"].is_string(),
                    "{e}"
                );
            }
            events += reported(&v).len() as u64;
            continue;
        }
        events += 1;
        let o = v.as_object().unwrap();
        let ty = o["type"].as_str().unwrap();
        *types.entry(ty.into()).or_default() += 1;
        let time = o["time"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert!(
            file.contains(&parsed.format("%Y-%m-%d").to_string()) || ty != "function_config",
            "{file}: {v}"
        );
        assert!(!o["function"].as_str().unwrap().is_empty());
        assert_eq!(o["account"].as_str().unwrap().len(), 12);
        if ty != "function_config" {
            assert!(o["request_id"].is_string(), "{v}");
        }
        let has = |k: &str| o.contains_key(k);
        match ty {
            "invocation" => {
                assert!(o["duration_ms"].as_f64().unwrap() >= 0.0);
                assert!(
                    ["success", "error", "timeout", "crash"]
                        .contains(&o["status"].as_str().unwrap())
                );
                assert!(
                    has("cpu_ms")
                        && has("memory_mb")
                        && has("max_memory_mb")
                        && has("timeout_ms")
                        && has("trigger")
                );
                if let Some(e) = o.get("event") {
                    assert!(e.is_object(), "{v}");
                }
            }
            "dns" => {
                assert!(!o["query"].as_str().unwrap().is_empty());
                assert!(o["answers"].is_array() && has("qtype") && has("rcode"));
            }
            "process" => {
                assert!(o["exe"].as_str().unwrap().starts_with('/'), "{v}");
                assert!(o["args"].is_array() && has("parent_exe"));
            }
            "network" => {
                o["remote_ip"]
                    .as_str()
                    .unwrap()
                    .parse::<std::net::IpAddr>()
                    .unwrap();
                assert!(o["remote_port"].is_u64());
                assert!(["outbound", "inbound"].contains(&o["direction"].as_str().unwrap()));
            }
            "file" => {
                assert!(!o["path"].as_str().unwrap().is_empty());
                assert!(
                    ["read", "write", "create", "delete", "exec", "chmod"]
                        .contains(&o["op"].as_str().unwrap())
                );
            }
            "api_call" => assert!(o["service"].is_string() && o["action"].is_string()),
            "function_config" => {
                assert!(
                    o["permissions"].is_array()
                        && o["code_sha256"].is_string()
                        && o["runtime"].is_string()
                );
            }
            other => panic!("unknown type {other}"),
        }
    }
    for t in [
        "function_config",
        "invocation",
        "dns",
        "process",
        "network",
        "file",
        "api_call",
        "cloudwatch",
    ] {
        assert!(types.get(t).copied().unwrap_or(0) > 0, "no {t}: {types:?}");
    }
    assert_eq!(invocations, sum.invocations, "{types:?}");
    assert_eq!(events, sum.events, "{types:?}");
    assert!(sum.invocations >= 3 * 600);
}

#[test]
fn labels_match_the_output_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(9);
    let sum = generate(&cfg, dir.path(), |_| {}).unwrap();
    let mut reports: HashMap<String, (String, String)> = HashMap::new();
    for (file, v) in lines_of(&sum) {
        for (id, t) in reported(&v) {
            assert!(
                reports.insert(id.clone(), (file.clone(), t)).is_none(),
                "{id} reported twice"
            );
        }
    }
    let text = std::fs::read_to_string(&sum.labels).unwrap();
    let mut per_class: BTreeMap<String, u64> = BTreeMap::new();
    let mut hard: BTreeMap<String, u64> = BTreeMap::new();
    let mut attacked_fns: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        let id = l["request_id"].as_str().unwrap();
        let (file, t) = reports
            .get(id)
            .unwrap_or_else(|| panic!("label of an unknown request: {line}"));
        assert_eq!(l["time"].as_str().unwrap(), t, "{line}");
        let class = l["class"].as_str().unwrap().to_string();
        match l["label"].as_str().unwrap() {
            "attack" => {
                *per_class.entry(class.clone()).or_default() += 1;
                attacked_fns
                    .entry(class)
                    .or_default()
                    .insert(l["function"].as_str().unwrap().to_string());
                assert!(
                    file.contains("2026-11-22"),
                    "attack outside the attack day: {line} in {file}"
                );
                assert!(t.starts_with("2026-11-22"), "{line}");
            }
            "benign_hard" => {
                assert!(HARD_CASES.contains(&class.as_str()), "{class}");
                assert!(file.contains("2026-11-22"), "{line}");
                *hard.entry(class).or_default() += 1;
            }
            other => panic!("label {other}"),
        }
    }
    assert_eq!(per_class.len(), 8, "{per_class:?}");
    for c in Class::ALL.map(Class::name) {
        assert_eq!(
            per_class.get(c).copied(),
            Some(u64::from(cfg.attacks_per_class)),
            "{c}"
        );
        assert_eq!(
            sum.attacks.get(c).copied(),
            Some(u64::from(cfg.attacks_per_class)),
            "{c}"
        );
        assert!(
            attacked_fns[c].len() >= 3,
            "{c} planted in {:?}",
            attacked_fns[c]
        );
    }
    let nonzero: BTreeMap<String, u64> = sum
        .hard_cases
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(hard, nonzero);
    for case in [
        "deploy_new_dependency",
        "traffic_spike",
        "outage",
        "code_in_payload",
    ] {
        assert!(
            hard.get(case).copied().unwrap_or(0) > 0,
            "no {case}: {hard:?}"
        );
    }
}

#[test]
fn no_attacks_or_hard_cases_when_asked_for_none() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        days: 1,
        invocations_per_day: 200,
        attack_days: 0,
        ..tiny(3)
    };
    let sum = generate(&cfg, dir.path(), |_| {}).unwrap();
    assert!(sum.attacks.is_empty() && sum.hard_cases.is_empty());
    assert_eq!(std::fs::read_to_string(&sum.labels).unwrap(), "");
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        hard_cases: false,
        ..tiny(3)
    };
    let sum = generate(&cfg, dir.path(), |_| {}).unwrap();
    assert!(sum.hard_cases.is_empty());
    assert_eq!(sum.attacks.values().sum::<u64>(), 8 * 6);
}

#[test]
fn attack_events_look_like_their_class() {
    let dir = tempfile::tempdir().unwrap();
    let sum = generate(&tiny(21), dir.path(), |_| {}).unwrap();
    let text = std::fs::read_to_string(&sum.labels).unwrap();
    let class_of: HashMap<String, String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["label"] == "attack")
        .map(|l| {
            (
                l["request_id"].as_str().unwrap().to_string(),
                l["class"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut seen: HashMap<&str, Vec<Value>> = HashMap::new();
    let all = lines_of(&sum);
    for (_, v) in &all {
        if let Some(id) = v.get("request_id").and_then(Value::as_str)
            && let Some(c) = class_of.get(id)
        {
            seen.entry(c.as_str()).or_default().push(v.clone());
        }
    }
    let any = |c: &str, pred: &dyn Fn(&Value) -> bool| {
        seen.get(c).is_some_and(|evs| evs.iter().any(pred))
    };
    assert!(any("command_injection", &|v| v["exe"] == "/bin/sh"));
    assert!(any("sleep_timeout_child", &|v| v["exe"] == "/bin/sleep"));
    assert!(any("dns_tunnelling", &|v| v["rcode"] == "NXDOMAIN"));
    assert!(any("credential_theft", &|v| v["path"]
        .as_str()
        .is_some_and(
            |p| p.ends_with("environ") || p.ends_with("credentials")
        )));
    assert!(any("cryptomining", &|v| v["args"]
        .to_string()
        .contains("stratum+tcp://")));
    assert!(any("stolen_role_api_abuse", &|v| v["error_code"]
        .as_str()
        .is_some_and(|e| e.starts_with("AccessDenied"))));
    assert!(any("payload_injection", &|v| v["type"] == "invocation"
        && v.get("event").is_some()));
    // payload injections always carry their event
    let n_payload = seen["payload_injection"]
        .iter()
        .filter(|v| v["type"] == "invocation" && v.get("event").is_some())
        .count();
    assert_eq!(n_payload, 6);
}
