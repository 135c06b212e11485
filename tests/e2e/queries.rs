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
