//! `s3://` lakes against a real S3 stand-in (moto's server, started by
//! tests/e2e/s3_harness.rs): the file ingest writes exactly once, SQL,
//! training, detection and compaction work on the lake in the bucket, and an
//! independent Delta reader (the PyPI `deltalake` package) reads the same
//! rows. The Kinesis worker on an `s3://` lake is in tests/e2e/kinesis.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::fnwatch_env;
use crate::kinesis::{dump_at, reference, simulated};
use crate::s3_harness::MotoS3;

/// Two simulated days: a benign one and one with attacks.
fn two_days(dir: &Path) -> Vec<PathBuf> {
    simulated(
        &dir.join("telemetry"),
        &[
            "--seed",
            "71",
            "--days",
            "2",
            "--invocations-per-day",
            "800",
            "--attack-days",
            "1",
            "--attacks-per-class",
            "4",
        ],
    )
}

fn scalar(lake: &str, env: &[(&str, &str)], sql: &str) -> i64 {
    let r = fnwatch_env(&["sql", "--lake", lake, "--format", "csv", sql], env).ok();
    let line = r.stdout.lines().nth(1).unwrap_or_default().to_string();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {:?}", r.stdout))
}

#[test]
fn an_s3_lake_ingests_exactly_once_and_serves_sql_models_and_an_independent_reader() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = MotoS3::start(&dir.path().join("moto"), &["telemetry-lake"]);
    let env = s3.env();
    let files = two_days(dir.path());
    let (reference, want) = reference(dir.path(), &files);
    let lake = "s3://telemetry-lake/prod/lake";

    // Ingest: the lake is created in the bucket and holds what the same
    // files give in a local lake, row for row.
    let mut args = vec!["ingest", "--lake", lake, "--no-progress"];
    for f in &files {
        args.push(f.to_str().unwrap());
    }
    let first = fnwatch_env(&args, &env).ok();
    let rows = dump_at(lake, &env);
    assert_eq!(
        rows,
        dump_at(reference.to_str().unwrap(), &[]),
        "the s3 lake differs from the local reference\n{}",
        first.stderr
    );
    assert_eq!(rows.lines().count() as i64 - 1, want);

    // Everything went to the bucket, nothing to a local folder.
    let keys = s3.keys("telemetry-lake", "prod/lake/");
    for k in [
        "prod/lake/_fnwatch.json",
        "prod/lake/events/_delta_log/00000000000000000000.json",
        "prod/lake/dead_letters/_delta_log/00000000000000000000.json",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
    }
    assert!(keys.iter().any(|k| k.ends_with(".parquet")), "{keys:?}");
    assert!(!Path::new("s3:").exists() && !dir.path().join("s3:").exists());

    // Exactly once: the same files again add nothing.
    fnwatch_env(&args, &env).ok();
    assert_eq!(scalar(lake, &env, "SELECT count(*) FROM events"), want);

    // An independent Delta reader (delta-rs's Python binding with its own
    // S3 client) reads the same counts.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/read_lake.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(lake)
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "read_lake.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events_total"].as_i64(), Some(want), "{v}");

    // Train on the benign day, detect on the attack day: the model is a
    // versioned object in the bucket and the alerts a table beside events.
    fnwatch_env(
        &[
            "train",
            "--lake",
            lake,
            "--from",
            "2026-11-20T00:00:00Z",
            "--to",
            "2026-11-21T00:00:00Z",
        ],
        &env,
    )
    .ok();
    assert!(
        s3.keys("telemetry-lake", "prod/lake/_models/default/")
            .iter()
            .any(|k| k.ends_with("v000001.json"))
    );
    let alerts = dir.path().join("alerts.jsonl");
    fnwatch_env(
        &[
            "detect",
            "--lake",
            lake,
            "--from",
            "2026-11-21T00:00:00Z",
            "--to",
            "2026-11-22T00:00:00Z",
            "--format",
            "jsonl",
            "--output",
            alerts.to_str().unwrap(),
        ],
        &env,
    )
    .ok();
    let written = std::fs::read_to_string(&alerts).unwrap().lines().count() as i64;
    assert!(written > 0, "the attack day raises alerts");
    assert_eq!(scalar(lake, &env, "SELECT count(*) FROM alerts"), written);

    // Compaction rewrites files in the bucket and keeps every row.
    fnwatch_env(&["compact", "--lake", lake], &env).ok();
    assert_eq!(scalar(lake, &env, "SELECT count(*) FROM events"), want);

    // A prefix that is not a lake is a clear error, not an empty result.
    let r = fnwatch_env(
        &["sql", "--lake", "s3://telemetry-lake/elsewhere", "SELECT 1"],
        &env,
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not a fnwatch lake"), "{}", r.stderr);
}
