//! `fnwatch inventory` against moto's server: boto3
//! (tests/e2e/inventory_aws.py) creates roles with managed and inline
//! policies (one granting `s3:*` on `*`, one with `NotAction`), functions
//! with layers and environment variables, an SQS event source mapping and a
//! resource-policy permission; the lake's rows are compared with what boto3
//! created and read back, field by field. The `AccessDenied` paths (which
//! moto cannot produce for one call alone) are unit tests of the collector
//! (ingest/src/sources/inventory/tests.rs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::common::{bin, fnwatch_env};
use crate::s3_harness::MotoS3;

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/inventory_aws.py")
}

fn aws(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "inventory_aws.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn endpoint(s3: &MotoS3) -> String {
    s3.env()
        .iter()
        .find(|(k, _)| *k == "AWS_ENDPOINT_URL_S3")
        .map(|(_, v)| v.to_string())
        .expect("the moto endpoint")
}

/// A value of a row: a typed column, else the field kept in `extra`; JSON
/// text (a column holding JSON) is parsed.
fn field(row: &Map<String, Value>, name: &str) -> Value {
    let v = match row.get(name) {
        Some(v) if !v.is_null() => v.clone(),
        _ => row
            .get("extra")
            .and_then(Value::as_str)
            .and_then(|e| serde_json::from_str::<Map<String, Value>>(e).ok())
            .and_then(|e| e.get(name).cloned())
            .unwrap_or(Value::Null),
    };
    match &v {
        Value::String(s) if s.starts_with('[') || s.starts_with('{') => {
            serde_json::from_str(s).unwrap_or(v)
        }
        _ => v,
    }
}

fn sql(lake: &str, env: &[(&str, &str)], q: &str) -> String {
    fnwatch_env(&["sql", "--lake", lake, "--format", "json", q], env)
        .ok()
        .stdout
}

/// The `function_config` rows, oldest first per function.
fn configs(lake: &str, env: &[(&str, &str)]) -> Vec<Map<String, Value>> {
    let out = sql(
        lake,
        env,
        "SELECT * FROM events WHERE type = 'function_config' ORDER BY function, time",
    );
    let v: Value = serde_json::from_str(out.trim()).expect("json rows");
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_object().expect("row").clone())
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// boto3's reading of a policy document, in the contract's statement shape
/// (an independent reading of the same IAM grammar).
fn expected_statements(policy: &str, doc: &Value) -> Vec<Value> {
    list(&doc["Statement"])
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("effect".into(), s["Effect"].clone());
            let (a, na) = (list(&s["Action"]), list(&s["NotAction"]));
            m.insert("actions".into(), json!(a));
            if !na.is_empty() {
                m.insert("not_actions".into(), json!(na));
            }
            m.insert("resources".into(), json!(list(&s["Resource"])));
            if !s["Condition"].is_null() {
                m.insert("condition".into(), s["Condition"].clone());
            }
            m.insert("policy".into(), json!(policy));
            Value::Object(m)
        })
        .collect()
}

fn inventory(lake: &str, ep: &str, env: &[(&str, &str)]) -> crate::common::Run {
    fnwatch_env(
        &[
            "inventory",
            "--lake",
            lake,
            "--region",
            "us-east-1",
            "--endpoint-url",
            ep,
        ],
        env,
    )
    .ok()
}

#[test]
fn inventory_writes_what_boto3_created_once_per_function_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoS3::start(&dir.path().join("moto"), &[]);
    let ep = endpoint(&moto);
    let env = moto.env();
    let created: Value = serde_json::from_str(&aws(&["setup", &ep])).unwrap();
    let lake_path = dir.path().join("lake");
    let lake = lake_path.to_str().unwrap();

    let first = inventory(lake, &ep, &env);
    assert!(
        first
            .stdout
            .contains("inventory of account 123456789012 at ")
            && first
                .stdout
                .contains(": 2 functions in 1 region (us-east-1), 2 roles, 1 managed policy"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("wrote 2 function_config events"),
        "{}",
        first.stdout
    );
    // Each call counted: one page of functions, one of mappings, a
    // resource policy per function, the shared managed policy read once.
    for call in [
        "lambda:ListFunctions 1",
        "lambda:ListEventSourceMappings 1",
        "lambda:GetPolicy 2",
        "iam:GetPolicy 1,",
        "iam:GetPolicyVersion 1,",
        "iam:GetRolePolicy 2",
    ] {
        assert!(first.stdout.contains(call), "{call}: {}", first.stdout);
    }
    assert!(!first.stdout.contains("problems"), "{}", first.stdout);

    let rows = configs(lake, &env);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let name = row["function"].as_str().unwrap();
        let want = &created["functions"][name];
        assert_eq!(field(row, "source"), json!("inventory"), "{name}");
        assert_eq!(field(row, "account"), json!("123456789012"));
        assert_eq!(field(row, "region"), json!("us-east-1"));
        for k in ["runtime", "handler", "role_arn", "code_sha256"] {
            assert_eq!(field(row, k), want[k], "{name}.{k}");
        }
        for k in ["memory_mb", "timeout_ms"] {
            assert_eq!(field(row, k).as_i64(), want[k].as_i64(), "{name}.{k}");
        }
        assert_eq!(
            strings(&field(row, "layers")),
            strings(&want["layers"]),
            "{name}"
        );
        assert_eq!(
            strings(&field(row, "triggers")),
            strings(&want["triggers"]),
            "{name}"
        );
        // Environment variable names, never their values.
        let names: Vec<String> = want["env"].as_object().unwrap().keys().cloned().collect();
        let mut names = names;
        names.sort();
        assert_eq!(strings(&field(row, "env_keys")), names, "{name}");
        // The statements of the role's policies as boto3 read them.
        let role = want["role_arn"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let mut statements = Vec::new();
        for p in created["policies"][role].as_array().unwrap() {
            statements.extend(expected_statements(
                p["policy"].as_str().unwrap(),
                &p["document"],
            ));
        }
        assert_eq!(field(row, "statements"), Value::Array(statements), "{name}");
        assert!(field(row, "inventory_errors").is_null(), "{name}");
    }
    let by = |f: &str| rows.iter().find(|r| r["function"] == f).unwrap();
    assert_eq!(
        strings(&field(by("orders-api"), "permissions")),
        ["dynamodb:GetItem", "dynamodb:PutItem", "s3:*"]
    );
    // NotAction grants nothing listable: named as a grant not judged.
    let audit = by("audit-job");
    assert_eq!(strings(&field(audit, "permissions")), ["s3:*"]);
    let unjudged = field(audit, "unjudged_grants");
    assert!(
        unjudged[0].as_str().unwrap().contains(
            "inline policy `almost-admin` of role audit-role allows every action except iam:*, organizations:* (NotAction)"
        ),
        "{unjudged}"
    );
    // No secret anywhere: not in the rows, the dead letters or the output.
    let everything = sql(lake, &env, "SELECT * FROM events")
        + &sql(lake, &env, "SELECT * FROM dead_letters")
        + &first.stdout
        + &first.stderr;
    for secret in ["hunter2-do-not-log", "tok-7f3a-secret-value"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(sql(lake, &env, "SELECT count(*) AS n FROM dead_letters").contains("\"n\":0"));

    // A second run with nothing changed adds one row per function.
    let second = inventory(lake, &ep, &env);
    assert!(second.stdout.contains("wrote 2 function_config events"));
    // A changed layer shows in the third run.
    let layer = aws(&["add-layer", &ep, "audit-job"]).trim().to_string();
    inventory(lake, &ep, &env);
    let rows = configs(lake, &env);
    assert_eq!(rows.len(), 6);
    let times: std::collections::BTreeSet<String> =
        rows.iter().map(|r| r["time"].to_string()).collect();
    assert_eq!(times.len(), 3, "one time per run");
    let audit: Vec<&Map<String, Value>> = rows
        .iter()
        .filter(|r| r["function"] == "audit-job")
        .collect();
    assert_eq!(strings(&field(audit[1], "layers")), Vec::<String>::new());
    assert_eq!(strings(&field(audit[2], "layers")), vec![layer.clone()]);
    let orders: Vec<&Map<String, Value>> = rows
        .iter()
        .filter(|r| r["function"] == "orders-api")
        .collect();
    assert_eq!(
        field(orders[0], "statements"),
        field(orders[2], "statements")
    );

    // Trained on the first two runs, detect over the third: the added
    // layer (no new code) is configuration drift, on that function only.
    let mut runs: Vec<String> = rows
        .iter()
        .filter_map(|r| r["time"].as_str().map(str::to_string))
        .collect();
    runs.sort();
    runs.dedup();
    crate::common::fnwatch(&[
        "train",
        "--lake",
        lake,
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        &runs[2],
    ])
    .ok();
    let alerts = crate::common::detect_alerts(
        std::path::Path::new(lake),
        &runs[2],
        "2100-01-01T00:00:00Z",
        &["--min-severity", "low"],
        &std::path::Path::new(lake).with_extension("alerts.jsonl"),
    );
    let drift: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "config_drift")
        .collect();
    assert_eq!(drift.len(), 1, "{alerts:#?}");
    assert_eq!(drift[0]["function"], "audit-job");
    assert_eq!(drift[0]["evidence"]["added_layers"], json!([layer]));
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn start_every(
    lake: &str,
    ep: &str,
    every: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> std::process::Child {
    Command::new(bin())
        .args([
            "inventory",
            "--lake",
            lake,
            "--region",
            "us-east-1",
            "--endpoint-url",
            ep,
            "--every",
            every,
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("fnwatch starts")
}

fn terminate(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "SIGTERM stops cleanly: {s}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_runs_on_schedule_resumes_from_the_lake_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let moto = MotoS3::start(&dir.path().join("moto"), &[]);
    let ep = endpoint(&moto);
    let env = moto.env();
    aws(&["setup", &ep]);
    let lake_path = dir.path().join("lake");
    let lake = lake_path.to_str().unwrap();
    let count = |env: &[(&str, &str)]| -> usize {
        if !lake_path.join("_fnwatch.json").exists() {
            return 0;
        }
        configs(lake, env).len()
    };

    // The first run comes at once, the next an hour later.
    let log = dir.path().join("every-1.log");
    let child = start_every(lake, &ep, "1h", &env, &log);
    wait_for("the first run", || count(&env) == 2);
    wait_for("the wait for the next run", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("next inventory at")
    });
    terminate(child);

    // A restart finds the run in the lake and does not take it again.
    let log = dir.path().join("every-2.log");
    let child = start_every(lake, &ep, "1h", &env, &log);
    wait_for("the restart to wait", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("next inventory at")
    });
    terminate(child);
    assert_eq!(count(&env), 2, "a restart within the hour adds nothing");

    // A short schedule takes run after run, each whole.
    let log = dir.path().join("every-3.log");
    let child = start_every(lake, &ep, "2s", &env, &log);
    wait_for("two more runs", || count(&env) >= 6);
    terminate(child);
    let rows = configs(lake, &env);
    let mut per_time: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &rows {
        *per_time.entry(r["time"].to_string()).or_default() += 1;
    }
    assert!(per_time.values().all(|n| *n == 2), "{per_time:?}");
}
