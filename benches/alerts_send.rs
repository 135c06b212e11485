//! Benchmark: render and send alerts as CEF in RFC 5424 messages over TCP
//! syslog to a real local rsyslog, with the delivery ledger (the "spool")
//! enabled — the figure the SIEM-outputs issue names (target: at least
//! 50,000 alerts/s for 1,000,000 alerts).
//!
//!   cargo bench --bench alerts_send                 # 1,000,000 alerts
//!   cargo bench --bench alerts_send -- --alerts 200000
//!
//! It writes a lake with synthetic alerts under target/bench-alerts-N/, starts
//! rsyslog with infra/local/syslog/rsyslog.sh, times `fnwatch alerts send`
//! (reading the alerts table, planning against the ledger, rendering,
//! sending, recording every acknowledged batch durably) and then waits until
//! rsyslog has written every message to its file, and prints both rates.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fnwatch_models::alert::{Alert, Kind, Severity, alert_id, alerts_batch, rfc3339_us};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // without it, as a quick smoke run of the same path.
    let default = if args.iter().any(|a| a == "--bench") {
        1_000_000
    } else {
        2_000
    };
    let n: usize = args
        .iter()
        .position(|a| a == "--alerts")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(format!("target/bench-alerts-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench folder");
    let lake = dir.join("lake");

    let t = Instant::now();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(write_alerts(&lake, n));
    eprintln!(
        "wrote {n} alerts to {} in {:.1} s",
        lake.display(),
        t.elapsed().as_secs_f64()
    );

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("address").port()
    };
    let rs_dir = dir.join("rsyslog");
    let script = root.join("infra/local/syslog/rsyslog.sh");
    let ok = Command::new("bash")
        .arg(&script)
        .args([
            "start",
            rs_dir.to_str().expect("utf-8"),
            "--tcp",
            &port.to_string(),
        ])
        .status()
        .expect("bash runs");
    assert!(ok.success(), "rsyslog did not start");
    let config = dir.join("fnwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[outputs]]\nname = \"bench\"\ntype = \"syslog\"\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"cef\"\nmin_severity = \"low\"\nbatch_size = 5000\n"
        ),
    )
    .expect("config");

    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fnwatch"))
        .args([
            "alerts",
            "send",
            "--lake",
            lake.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--since",
            "-1d",
        ])
        .output()
        .expect("fnwatch runs");
    let sent = t.elapsed().as_secs_f64();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "fnwatch alerts send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = rs_dir.join("received.log");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut lines = 0;
    while Instant::now() < deadline {
        lines = std::fs::read(&log)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if lines >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = t.elapsed().as_secs_f64();
    let _ = Command::new("bash")
        .arg(&script)
        .args(["stop", rs_dir.to_str().expect("utf-8")])
        .status();
    println!(
        "fnwatch alerts send: {n} alerts as CEF over TCP syslog in {sent:.2} s = {:.0} alerts/s (target 50,000/s: {:.1}x)",
        n as f64 / sent,
        n as f64 / sent / 50_000.0
    );
    println!(
        "rsyslog had written {lines} of {n} messages to its file after {written:.2} s = {:.0} alerts/s end to end",
        lines as f64 / written
    );
    assert_eq!(lines, n, "rsyslog did not receive every alert");
}

/// `n` alerts shaped like detection's: 200 functions, every kind, evidence
/// of a few hundred bytes, times spread over the last day.
async fn write_alerts(lake: &std::path::Path, n: usize) {
    let lake = fnwatch_ingest::lake::Lake::open_or_create(lake.to_str().expect("utf-8"))
        .await
        .expect("lake");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64;
    let day_us = 86_400_000_000i64;
    let chunk = 100_000;
    let mut i = 0;
    while i < n {
        let m = chunk.min(n - i);
        let mut alerts = Vec::with_capacity(m);
        let mut times = Vec::with_capacity(m);
        for j in i..i + m {
            let kind = Kind::ALL[j % Kind::ALL.len()];
            let function = format!("svc-{:03}-handler", j % 200);
            let request = format!("{:08x}-7b61-11e6-9a41-{:012x}", j, j * 7919);
            let t = now_us - day_us + (j as i64 * day_us / n as i64);
            times.push(t);
            alerts.push(Alert {
                id: alert_id(kind, &function, Some(&request), ""),
                time: rfc3339_us(t),
                function: function.clone(),
                request_id: Some(request),
                kind,
                severity: Severity::ALL[j % 4],
                score: 0.5 + (j % 50) as f64 / 100.0,
                summary: format!(
                    "{function} resolved c{j}.exfil-example.net, a domain it has never resolved (known domains: 12) and no function in the fleet has"
                ),
                evidence: serde_json::json!({
                    "query": format!("c{j}.exfil-example.net"),
                    "qtype": "A",
                    "site": "exfil-example.net",
                    "answers": ["203.0.113.7"],
                    "baseline": {"known_domains": 12, "lookups": 48211, "fleet_functions_resolving_site": 0}
                }),
            });
        }
        let batch = alerts_batch(&alerts, &times, now_us, "default@v1").expect("batch");
        lake.append_alerts(batch).await.expect("append");
        i += m;
    }
}
