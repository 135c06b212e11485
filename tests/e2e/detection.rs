//! The behaviour models judged the way the product is: simulate a fleet
//! (a seed the models were never tuned on), train on the quiet days, detect
//! on the last, and compare the alerts with the simulator's labels.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::common::{fnwatch, query};

/// A seed no threshold was tuned on.
const SEED: &str = "4242";

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check_contract(a: &Value) {
    let o = a.as_object().expect("an alert is an object");
    for f in [
        "id",
        "time",
        "function",
        "request_id",
        "kind",
        "severity",
        "score",
        "summary",
        "evidence",
    ] {
        assert!(o.contains_key(f), "alert lacks `{f}`: {a}");
    }
    let kind = a["kind"].as_str().unwrap();
    assert!(
        [
            "unusual_dns",
            "unexpected_process",
            "unknown_host",
            "unusual_file_access",
            "sleep_timeout",
            "event_injection",
            "unusual_api_call",
            "behaviour_anomaly",
            "over_permissive"
        ]
        .contains(&kind),
        "{kind}"
    );
    assert!(["low", "medium", "high", "critical"].contains(&a["severity"].as_str().unwrap()));
    let score = a["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{score}");
    assert!(chrono::DateTime::parse_from_rfc3339(a["time"].as_str().unwrap()).is_ok());
    assert!(a["evidence"].is_object());
    assert!(a["summary"].as_str().unwrap().len() > 20);
    assert_eq!(a["request_id"].is_null(), kind == "over_permissive", "{a}");
}

#[test]
fn finds_the_attacks_and_stays_quiet_on_benign_surprises() {
    let dir = tempfile::tempdir().unwrap();
    let tel = dir.path().join("telemetry");
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    fnwatch(&[
        "simulate",
        "--out",
        tel.to_str().unwrap(),
        "--seed",
        SEED,
        "--start",
        "2026-11-20",
        "--days",
        "4",
        "--invocations-per-day",
        "25000",
        "--attacks-per-class",
        "40",
    ])
    .ok();
    fnwatch(&["ingest", "--lake", lake_s, tel.to_str().unwrap()]).ok();
    let dl = query(&lake, "SELECT count(*) AS n FROM dead_letters");
    assert_eq!(dl[0]["n"], 0, "the simulator writes only valid records");

    let train = fnwatch(&[
        "train",
        "--lake",
        lake_s,
        "--from",
        "2026-11-20T00:00:00Z",
        "--to",
        "2026-11-23T00:00:00Z",
    ])
    .ok();
    assert!(train.stdout.contains("version 1"), "{}", train.stdout);
    let alerts_path = dir.path().join("alerts.jsonl");
    let detect = fnwatch(&[
        "detect",
        "--lake",
        lake_s,
        "--from",
        "2026-11-23T00:00:00Z",
        "--to",
        "2026-11-24T00:00:00Z",
        "--format",
        "jsonl",
        "--output",
        alerts_path.to_str().unwrap(),
    ])
    .ok();
    assert!(detect.stdout.contains("Scored"), "{}", detect.stdout);

    let alerts = read_jsonl(&alerts_path);
    for a in &alerts {
        check_contract(a);
    }
    // One alert per (request, kind).
    let mut seen = HashSet::new();
    for a in &alerts {
        let key = (
            a["request_id"].to_string(),
            a["kind"].to_string(),
            a["function"].to_string(),
        );
        assert!(seen.insert(key), "two alerts for one (request, kind): {a}");
    }

    let labels = read_jsonl(&tel.join("_labels.jsonl"));
    let mut class_of: HashMap<String, String> = HashMap::new();
    let mut hard: HashMap<String, String> = HashMap::new();
    for l in &labels {
        let r = l["request_id"].as_str().unwrap().to_string();
        let c = l["class"].as_str().unwrap().to_string();
        if l["label"] == "attack" {
            class_of.insert(r, c);
        } else {
            hard.insert(r, c);
        }
    }
    let flagged: HashSet<&str> = alerts
        .iter()
        .filter(|a| ["medium", "high", "critical"].contains(&a["severity"].as_str().unwrap()))
        .filter_map(|a| a["request_id"].as_str())
        .collect();
    let mut per_class: HashMap<&str, (usize, usize)> = HashMap::new();
    for (r, c) in &class_of {
        let e = per_class.entry(c.as_str()).or_default();
        e.0 += 1;
        if flagged.contains(r.as_str()) {
            e.1 += 1;
        }
    }
    let mut report = String::new();
    for (r, c) in &class_of {
        if !flagged.contains(r.as_str()) {
            let low: Vec<String> = alerts
                .iter()
                .filter(|a| a["request_id"].as_str() == Some(r.as_str()))
                .map(|a| format!("{} {}", a["severity"], a["summary"]))
                .collect();
            report.push_str(&format!("missed {c} {r}: {low:?}\n"));
        }
    }
    for (c, (n, found)) in &per_class {
        report.push_str(&format!("{c}: {found}/{n}\n"));
    }
    let fps: Vec<&Value> = alerts
        .iter()
        .filter(|a| ["medium", "high", "critical"].contains(&a["severity"].as_str().unwrap()))
        .filter(|a| {
            a["request_id"]
                .as_str()
                .is_some_and(|r| !class_of.contains_key(r))
        })
        .collect();
    let fp_requests: HashSet<&str> = fps
        .iter()
        .filter_map(|a| a["request_id"].as_str())
        .collect();
    let invocations = query(
        &lake,
        "SELECT count(DISTINCT request_id) AS n FROM invocations \
         WHERE time >= TIMESTAMP '2026-11-23T00:00:00Z' AND time < TIMESTAMP '2026-11-24T00:00:00Z'",
    )[0]["n"]
        .as_u64()
        .unwrap();
    let benign = invocations - class_of.len() as u64;
    let fp_per_100k = fp_requests.len() as f64 * 100_000.0 / benign as f64;
    let fp_list: Vec<String> = fps
        .iter()
        .take(15)
        .map(|a| {
            format!(
                "[{}] {} {}",
                hard.get(a["request_id"].as_str().unwrap_or(""))
                    .map(String::as_str)
                    .unwrap_or("-"),
                a["kind"],
                a["summary"]
            )
        })
        .collect();
    eprintln!(
        "recall:\n{report}benign medium+: {} of {benign} ({fp_per_100k:.1} per 100k)\n{}",
        fp_requests.len(),
        fp_list.join("\n")
    );
    assert_eq!(
        per_class.len(),
        8,
        "eight attack classes are planted: {report}"
    );
    for (c, (n, found)) in &per_class {
        assert!(
            *found as f64 >= 0.97 * *n as f64,
            "recall of {c} is {found}/{n}\n{report}"
        );
    }
    assert!(
        fp_per_100k <= 10.0,
        "{} benign invocations alerted medium+ out of {benign}:\n{}",
        fp_requests.len(),
        fp_list.join("\n")
    );

    // The lake holds the same alerts; detecting again adds none and keeps the ids.
    let stored = query(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM alerts",
    );
    assert_eq!(stored[0]["n"].as_u64().unwrap(), alerts.len() as u64);
    assert_eq!(stored[0]["ids"], stored[0]["n"]);
    let again = dir.path().join("again.jsonl");
    let rerun = fnwatch(&[
        "detect",
        "--lake",
        lake_s,
        "--from",
        "2026-11-23T00:00:00Z",
        "--to",
        "2026-11-24T00:00:00Z",
        "--output",
        again.to_str().unwrap(),
    ])
    .ok();
    assert!(
        rerun.stdout.contains("Stored 0 new alerts"),
        "{}",
        rerun.stdout
    );
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&read_jsonl(&again)),
        ids(&alerts),
        "re-running gives the same ids"
    );
    let stored = query(&lake, "SELECT count(*) AS n FROM alerts");
    assert_eq!(stored[0]["n"].as_u64().unwrap(), alerts.len() as u64);
    // A second training run is a new version.
    let t2 = fnwatch(&[
        "train",
        "--lake",
        lake_s,
        "--from",
        "2026-11-21",
        "--to",
        "2026-11-23",
    ])
    .ok();
    assert!(t2.stdout.contains("version 2"), "{}", t2.stdout);
}

#[test]
fn detect_without_a_model_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let tel = dir.path().join("t");
    let lake = dir.path().join("lake");
    fnwatch(&[
        "simulate",
        "--out",
        tel.to_str().unwrap(),
        "--days",
        "1",
        "--invocations-per-day",
        "200",
        "--attack-days",
        "0",
    ])
    .ok();
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        tel.to_str().unwrap(),
    ])
    .ok();
    let r = fnwatch(&[
        "detect",
        "--lake",
        lake.to_str().unwrap(),
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-21",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("run `fnwatch train` first"),
        "{}",
        r.stderr
    );
    let r = fnwatch(&[
        "train",
        "--lake",
        lake.to_str().unwrap(),
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no events in"), "{}", r.stderr);
    let r = fnwatch(&["train", "--lake", lake.to_str().unwrap(), "--from", "-3y"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown unit"), "{}", r.stderr);
}
