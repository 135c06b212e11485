//! Every saved query in `queries/hunts/` runs against a fixture lake (the
//! sample fleet plus a few attacks, a CloudTrail log file and the
//! inventory's configurations, tests/data/make_cloudtrail.py) and matches its golden CSV in
//! `tests/golden/hunts/`. Regenerate the goldens with `FNWATCH_BLESS=1` and
//! review the diff by eye.

use std::path::Path;
use std::process::Command;

use crate::common::*;

#[test]
fn every_hunt_matches_its_golden_result() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    for f in [
        "sample.jsonl.gz",
        "attacks.jsonl",
        "cloudtrail.json.gz",
        "inventory.jsonl",
    ] {
        std::fs::copy(root.join("tests/data").join(f), dir.path().join(f)).expect("copy fixture");
    }
    // Relative paths, so sources in dead letters are the same on every machine.
    let run = |args: &[&str]| {
        let o = Command::new(bin())
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("fnwatch runs");
        assert!(
            o.status.success(),
            "fnwatch {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&[
        "ingest",
        "--lake",
        "lake",
        "sample.jsonl.gz",
        "attacks.jsonl",
        "cloudtrail.json.gz",
        "inventory.jsonl",
    ]);

    let bless = std::env::var_os("FNWATCH_BLESS").is_some();
    let mut hunts: Vec<_> = std::fs::read_dir(root.join("queries/hunts"))
        .expect("queries/hunts")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    hunts.sort();
    assert!(hunts.len() >= 12, "a dozen hunts: {hunts:?}");
    let mut failures = Vec::new();
    for hunt in &hunts {
        let text = std::fs::read_to_string(hunt).expect("read hunt");
        assert!(
            text.starts_with("-- "),
            "{} starts with a header comment saying what it finds",
            hunt.display()
        );
        let out = run(&[
            "sql",
            "--lake",
            "lake",
            "--format",
            "csv",
            "--file",
            hunt.to_str().expect("utf-8"),
            "--param",
            "since=2026-11-01T00:00:00Z",
        ]);
        let name = hunt
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let golden = root.join("tests/golden/hunts").join(format!("{name}.csv"));
        if bless {
            std::fs::write(&golden, &out).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == out => {}
            Ok(want) => failures.push(format!(
                "{name}: result differs from {}\n--- want\n{want}--- got\n{out}",
                golden.display()
            )),
            Err(_) => failures.push(format!(
                "{name}: no golden file {} (run with FNWATCH_BLESS=1)",
                golden.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parameters_and_stdin_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let file = write(
        dir.path(),
        "in.jsonl",
        format!(
            "{}\n{}\n",
            dns_line("f", "r1", "a.example.com"),
            dns_line("g", "r2", "b.example.com")
        )
        .as_bytes(),
    );
    ingest(&lake, &[&file]);
    let l = lake.to_str().expect("utf-8");
    let q = write(
        dir.path(),
        "q.sql",
        b"-- @param who = f  the function\nSELECT query FROM dns WHERE function = ${who};\n",
    );
    let q = q.to_str().expect("utf-8");
    let r = fnwatch(&["sql", "--lake", l, "--format", "csv", "--file", q]).ok();
    assert_eq!(r.stdout, "query\na.example.com\n", "the header's default");
    let r = fnwatch(&[
        "sql", "--lake", l, "--format", "csv", "--file", q, "--param", "who=g",
    ])
    .ok();
    assert_eq!(r.stdout, "query\nb.example.com\n");
    let r = fnwatch(&["sql", "--lake", l, "--file", q, "--param", "whom=g"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("parameter `whom` is not used by the query (it takes: who)"),
        "{}",
        r.stderr
    );
    let r = fnwatch_stdin(
        &["sql", "--lake", l, "--format", "csv"],
        b"SELECT count(*) AS n FROM dns",
    )
    .ok();
    assert_eq!(r.stdout, "n\n2\n");
}

/// `fnwatch sql` (a query, a saved query file, stdin) runs reads only: each
/// way to write, including through EXPLAIN ANALYZE, is refused, the lake's
/// rows stay, and no file appears.
#[test]
fn sql_refuses_every_way_to_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let file = write(
        dir.path(),
        "in.jsonl",
        format!(
            "{}\n{}\n{}\n",
            dns_line("f", "r1", "a.example.com"),
            dns_line("g", "r2", "b.example.com"),
            invocation_line("f", "r1"),
        )
        .as_bytes(),
    );
    ingest(&lake, &[&file]);
    let l = lake.to_str().expect("utf-8");
    let before = files_under(dir.path());
    let events = count(&lake, "SELECT count(*) FROM events");
    assert_eq!(events, 3);

    let writes = [
        "EXPLAIN ANALYZE INSERT OVERWRITE events SELECT * FROM events WHERE false",
        "EXPLAIN ANALYZE INSERT INTO events SELECT * FROM events",
        "EXPLAIN INSERT INTO events SELECT * FROM events",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN COPY (SELECT 1) TO 'x.csv'",
        "COPY (SELECT 1) TO 'x.csv'",
        "COPY events TO 'x.parquet'",
        "INSERT INTO events SELECT * FROM events",
        "INSERT OVERWRITE events SELECT * FROM events WHERE false",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'x.csv'",
        "DROP TABLE events",
        "DROP VIEW dns",
        "DELETE FROM events",
        "UPDATE events SET function = 'x'",
        "SET datafusion.execution.batch_size = 1",
        "SET timezone = '+05:00'",
        "RESET datafusion.execution.batch_size",
        "WITH gone AS (DELETE FROM events RETURNING *) SELECT * FROM gone",
        "SELECT * INTO t FROM events",
    ];
    for sql in writes {
        let o = Command::new(bin())
            .args(["sql", "--lake", l, sql])
            .current_dir(dir.path())
            .output()
            .expect("fnwatch runs");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{sql} was not refused: {stderr}");
        assert!(
            stderr.contains("is not allowed: only queries are allowed here"),
            "{sql}: {stderr}"
        );
    }
    // The same through a saved query file and through stdin.
    let q = write(
        dir.path(),
        "shared.sql",
        b"-- looks like a hunt\nEXPLAIN ANALYZE INSERT OVERWRITE events SELECT * FROM events WHERE false;\n",
    );
    let r = fnwatch(&["sql", "--lake", l, "--file", q.to_str().expect("utf-8")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("INSERT is not allowed"), "{}", r.stderr);
    let r = fnwatch_stdin(
        &["sql", "--lake", l],
        b"EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("COPY is not allowed"), "{}", r.stderr);

    assert_eq!(count(&lake, "SELECT count(*) FROM events"), events);
    let mut after = files_under(dir.path());
    after.retain(|(p, _)| p != &q);
    assert_eq!(before, after, "a refused statement wrote a file");
    // Reads still work, EXPLAIN ANALYZE of a query included.
    let r = fnwatch(&[
        "sql",
        "--lake",
        l,
        "EXPLAIN ANALYZE SELECT count(*) FROM events",
    ])
    .ok();
    assert!(r.stdout.contains("metrics"), "{}", r.stdout);
}
