//! Helpers: run the binary, read query results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The result of one `fnwatch` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "fnwatch failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fnwatch"))
}

/// Runs `fnwatch ARGS`.
pub fn fnwatch(args: &[&str]) -> Run {
    let o = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("fnwatch binary runs");
    Run::from(o)
}

/// Runs `fnwatch ARGS` with extra environment variables.
pub fn fnwatch_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let o = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("fnwatch binary runs");
    Run::from(o)
}

/// Runs `fnwatch ARGS` with `input` on stdin.
pub fn fnwatch_stdin(args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fnwatch binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("stdin accepts input");
    Run::from(child.wait_with_output().expect("fnwatch finishes"))
}

/// Ingests `files` into `lake`, expecting success.
pub fn ingest(lake: &Path, files: &[&Path]) -> Run {
    let mut args = vec!["ingest", "--lake", lake.to_str().expect("utf-8 path")];
    for f in files {
        args.push(f.to_str().expect("utf-8 path"));
    }
    fnwatch(&args).ok()
}

/// Runs a query and returns the rows as JSON objects.
pub fn query(lake: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let r = fnwatch(&[
        "sql",
        "--lake",
        lake.to_str().expect("utf-8 path"),
        "--format",
        "json",
        sql,
    ])
    .ok();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("json output: {e}\n{}", r.stdout));
    v.as_array()
        .expect("an array of rows")
        .iter()
        .map(|r| r.as_object().expect("row object").clone())
        .collect()
}

/// Runs `fnwatch detect --lake LAKE --from FROM --to TO` (plus `extra`) with
/// the alerts written as JSON Lines to `out`, and returns them.
pub fn detect_alerts(
    lake: &Path,
    from: &str,
    to: &str,
    extra: &[&str],
    out: &Path,
) -> Vec<serde_json::Value> {
    let mut args = vec![
        "detect",
        "--lake",
        lake.to_str().expect("utf-8 path"),
        "--from",
        from,
        "--to",
        to,
        "--format",
        "jsonl",
        "--output",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    fnwatch(&args).ok();
    std::fs::read_to_string(out)
        .expect("detect wrote its alerts file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert JSON: {e}\n{l}")))
        .collect()
}

/// Every file under `dir` (path and size), to show nothing was written.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// A single integer from a `SELECT count(*) ...` style query.
pub fn count(lake: &Path, sql: &str) -> i64 {
    let rows = query(lake, sql);
    let row = rows.first().expect("one row");
    let v = row.values().next().expect("one column");
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write fixture");
    p
}

/// Gzip-compresses bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A valid native DNS event for `function` and `request`.
pub fn dns_line(function: &str, request: &str, query: &str) -> String {
    format!(
        r#"{{"type":"dns","time":"2026-11-23T10:00:00.371Z","function":"{function}","request_id":"{request}","query":"{query}","qtype":"A","rcode":"NOERROR","answers":["3.218.182.10"]}}"#
    )
}

/// A valid native invocation event.
pub fn invocation_line(function: &str, request: &str) -> String {
    format!(
        r#"{{"type":"invocation","time":"2026-11-23T10:00:00.412Z","function":"{function}","request_id":"{request}","duration_ms":84.2,"billed_ms":85,"cpu_ms":31.0,"memory_mb":256,"max_memory_mb":91,"init_ms":null,"timeout_ms":6000,"status":"success","trigger":"apigateway","event_bytes":733}}"#
    )
}
