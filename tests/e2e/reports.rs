//! `fnwatch report`: the report of a window in HTML, Markdown and JSON over
//! the lake the output tests build (a simulated fleet with attacks, and a
//! function with a hostile name), and the cron mode writing one report per
//! tick and stopping cleanly.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{bin, fnwatch, query};
use crate::outputs::{HOSTILE_FN, fixture};

#[test]
fn a_report_of_a_window_in_three_renderings() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let r = fnwatch(&[
        "report",
        "--lake",
        f.lake.to_str().unwrap(),
        "--from",
        "2026-11-12T00:00:00Z",
        "--to",
        "2026-11-13T00:00:00Z",
        "--baseline",
        "-2d",
        "--out",
        out.to_str().unwrap(),
    ])
    .ok();
    let stem = "fnwatch-report-2026-11-12T00-00-00Z--2026-11-13T00-00-00Z";
    for ext in ["html", "md", "json"] {
        let p = out.join(format!("{stem}.{ext}"));
        assert!(
            p.exists(),
            "{} missing; printed:\n{}",
            p.display(),
            r.stdout
        );
        assert!(r.stdout.contains(p.to_str().unwrap()));
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap())
            .unwrap();
    let s = &json["sections"];
    // The figures are the lake's: the same counts as plain SQL.
    let inv = query(
        &f.lake,
        "SELECT count(*) AS n FROM invocations WHERE time >= TIMESTAMP '2026-11-12T00:00:00Z' AND time < TIMESTAMP '2026-11-13T00:00:00Z'",
    );
    assert_eq!(s["volume"]["rows"][0]["invocations"], inv[0]["n"]);
    let alerts_total: i64 = s["alerts_by_kind"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["total"].as_i64().unwrap())
        .sum();
    assert_eq!(alerts_total as usize, f.alerts.len());
    assert!(!s["top_findings"]["rows"].as_array().unwrap().is_empty());
    assert_eq!(
        s["invocations_by_hour"]["rows"].as_array().unwrap().len(),
        24
    );
    // Drift: the hostile function's lookup of pastebin.com is new for it.
    let drift = s["drift_new_domains"]["rows"].as_array().unwrap();
    assert!(
        drift
            .iter()
            .any(|r| r["function"] == HOSTILE_FN && r["domain"] == "pastebin.com"),
        "{drift:?}"
    );

    let html = std::fs::read_to_string(out.join(format!("{stem}.html"))).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.matches("<svg").count() >= 4, "charts are inline SVG");
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src=\"http"));
    // Attacker-chosen names are text, not markup.
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<img src=x"));

    let md = std::fs::read_to_string(out.join(format!("{stem}.md"))).unwrap();
    assert!(
        md.contains("## Top findings\n\n| time | severity | kind | function | summary | id |"),
        "{md}"
    );
    assert!(md.contains("evil\\|fn=1"), "pipes in cells are escaped");
}

#[test]
fn cron_mode_writes_a_report_per_tick_and_stops_cleanly() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scheduled");
    let mut child = Command::new(bin())
        .args([
            "report",
            "--lake",
            f.lake.to_str().unwrap(),
            "--cron",
            "*/2 * * * * *",
            "--window",
            "-1h",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let count = || {
        std::fs::read_dir(&out)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".html"))
                    .count()
            })
            .unwrap_or(0)
    };
    while count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    // Stopped within 30 s, even when the signal came while a report was
    // being written.
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > stop_deadline {
            let _ = child.kill();
            panic!("fnwatch report --cron did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(count() >= 2, "{} reports in 40 s:\n{err}", count());
    assert!(
        status.success(),
        "SIGTERM ends it cleanly: {status:?}\n{err}"
    );
    assert!(
        err.contains("scheduled") && err.contains("stopped"),
        "{err}"
    );
}

#[test]
fn report_mistakes_get_clear_errors() {
    let f = fixture();
    let r = fnwatch(&[
        "report",
        "--lake",
        f.lake.to_str().unwrap(),
        "--cron",
        "every day",
        "--out",
        "/tmp",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("--cron `every day` is not a cron expression"),
        "{}",
        r.stderr
    );
    let r = fnwatch(&[
        "report",
        "--lake",
        f.lake.to_str().unwrap(),
        "--window",
        "soon",
    ]);
    assert!(r.stderr.contains("--window `soon`"), "{}", r.stderr);
}
