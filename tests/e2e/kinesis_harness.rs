//! A real Kinesis stand-in for the `fnwatch ingest --kinesis` tests:
//! kinesalite (infra/local/kinesis/kinesalite.sh, installed with npm when
//! missing), started on a free loopback port and stopped when dropped, and
//! the independent producer and admin client that fills and inspects its
//! streams (tests/e2e/kinesis_tool.py, boto3: not our Rust code).

// Not every scenario uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::receivers::free_port;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The environment of a child process that talks to kinesalite: dummy
/// credentials (kinesalite checks that requests are signed, not by whom),
/// region us-east-1 and no instance-metadata lookups.
pub fn aws_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// A running kinesalite on 127.0.0.1:`port`, its log and pid in `dir`
/// (and, when persistent, its streams and records in `dir/data`).
pub struct Kinesalite {
    pub dir: PathBuf,
    pub port: u16,
    persist: bool,
    /// The start/stop script under infra/local/kinesis/.
    script: &'static str,
}

impl Kinesalite {
    /// Starts kinesalite on a free port. With `persist`, streams and records
    /// survive `restart`; without, they live in memory and a restart starts
    /// empty.
    pub fn start(dir: &Path, persist: bool) -> Kinesalite {
        let k = Kinesalite {
            dir: dir.to_path_buf(),
            port: free_port(),
            persist,
            script: "kinesalite.sh",
        };
        k.up();
        k
    }

    /// Starts kinesis-mock instead (infra/local/kinesis/kinesis-mock.sh):
    /// the emulator that pages ListShards like AWS; in memory, for small
    /// streams. Its TLS port is the one after `port`.
    pub fn start_kinesis_mock(dir: &Path) -> Kinesalite {
        let mut port = free_port();
        while port == u16::MAX || std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
            port = free_port();
        }
        let k = Kinesalite {
            dir: dir.to_path_buf(),
            port,
            persist: false,
            script: "kinesis-mock.sh",
        };
        k.up();
        k
    }

    fn script(&self) -> PathBuf {
        repo().join("infra/local/kinesis").join(self.script)
    }

    /// Starts it (again) on the same port and directory; returns once it
    /// answers API calls.
    fn up(&self) {
        let mut cmd = Command::new("bash");
        cmd.arg(self.script())
            .arg("start")
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .stdin(Stdio::null());
        if self.persist {
            cmd.arg("--persist");
        }
        let out = cmd.output().expect("bash runs");
        assert!(
            out.status.success(),
            "{} did not start:\n{}\n{}",
            self.script,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops it (not an error when it is not running).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(self.script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }

    /// Stops it and starts it again on the same port and directory.
    pub fn restart(&self) {
        self.stop();
        self.up();
    }

    /// The endpoint URL clients use.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `python3 tests/e2e/kinesis_tool.py --endpoint ENDPOINT ARGS...`,
    /// asserts that it succeeded and returns its stdout.
    #[track_caller]
    pub fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("python3")
            .arg(repo().join("tests/e2e/kinesis_tool.py"))
            .arg("--endpoint")
            .arg(self.endpoint())
            .args(args)
            .envs(aws_env())
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "kinesis_tool.py {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kinesis_tool.py prints UTF-8")
    }

    fn tool_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.tool(args);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("kinesis_tool.py {args:?} printed no JSON ({e}):\n{out}"))
    }

    /// Creates a stream of `shards` shards and waits until it is ACTIVE.
    #[track_caller]
    pub fn create_stream(&self, name: &str, shards: u32) {
        self.tool(&["create", name, "--shards", &shards.to_string()]);
    }

    /// Splits `shard` at the middle of its hash key range and waits until the
    /// stream is ACTIVE again; returns the two children (as in `shards`).
    #[track_caller]
    pub fn split(&self, name: &str, shard: &str) -> Vec<serde_json::Value> {
        let v = self.tool_json(&["split", name, "--shard", shard]);
        let children = v["children"].as_array().cloned().unwrap_or_default();
        assert_eq!(children.len(), 2, "split of {shard} made {v}");
        children
    }

    /// Merges `shard` with the adjacent shard `adjacent`; returns the child.
    #[track_caller]
    pub fn merge(&self, name: &str, shard: &str, adjacent: &str) -> serde_json::Value {
        let v = self.tool_json(&["merge", name, "--shard", shard, "--adjacent", adjacent]);
        let children = v["children"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            children.len(),
            1,
            "merge of {shard} and {adjacent} made {v}"
        );
        children[0].clone()
    }

    /// The stream's shards, a JSON array of objects: `id`, `parent` and
    /// `adjacent_parent` (string or null), `state` ("open" or "closed"),
    /// `starting_hash_key` and `ending_hash_key` (decimal strings).
    #[track_caller]
    pub fn shards(&self, name: &str) -> serde_json::Value {
        self.tool_json(&["shards", name])
    }

    /// The ids of the stream's open shards.
    #[track_caller]
    pub fn open_shards(&self, name: &str) -> Vec<String> {
        self.shards(name)
            .as_array()
            .expect("shards is an array")
            .iter()
            .filter(|s| s["state"] == "open")
            .map(|s| s["id"].as_str().expect("shard id").to_string())
            .collect()
    }

    /// Puts every non-empty line of `path` (JSON lines, optionally gzipped)
    /// as one record, keyed by its request_id (else function, else a hash);
    /// returns how many records were put.
    #[track_caller]
    pub fn put_file(&self, name: &str, path: &Path) -> u64 {
        let path = path.to_str().expect("UTF-8 path");
        let v = self.tool_json(&["put", name, "--file", path]);
        v["put"]
            .as_u64()
            .unwrap_or_else(|| panic!("put printed {v}"))
    }

    /// Puts one record of the bytes `data` under `partition_key` (e.g. a
    /// poison record); returns the shard id it landed in.
    #[track_caller]
    pub fn put_raw(&self, name: &str, partition_key: &str, data: &[u8]) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let file = self.dir.join(format!("put-raw-{n}.bin"));
        std::fs::write(&file, data).unwrap();
        let v = self.tool_json(&[
            "put-raw",
            name,
            "--partition-key",
            partition_key,
            "--data-file",
            file.to_str().expect("UTF-8 path"),
        ]);
        let _ = std::fs::remove_file(&file);
        v["shard_id"]
            .as_str()
            .unwrap_or_else(|| panic!("put-raw printed {v}"))
            .to_string()
    }

    /// The number of records in the stream, every shard (open or closed)
    /// read from its oldest record to its current end.
    #[track_caller]
    pub fn count(&self, name: &str) -> u64 {
        let out = self.tool(&["count", name]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("count printed {out:?}: {e}"))
    }

    /// The names of the streams.
    #[track_caller]
    pub fn list_streams(&self) -> Vec<String> {
        serde_json::from_value(self.tool_json(&["list-streams"])).unwrap()
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        self.stop();
    }
}
