//! A real S3 stand-in for the `s3://` lake tests: moto's server
//! (infra/local/s3/moto-s3.sh, installed with pip when missing), started on a
//! free loopback port with the buckets a test needs and stopped when
//! dropped. Objects are listed with boto3, not with our Rust code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::receivers::free_port;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running moto S3 server on 127.0.0.1:`port`.
pub struct MotoS3 {
    dir: PathBuf,
    endpoint: String,
}

impl MotoS3 {
    /// Starts the server with `buckets` created; returns once it answers.
    pub fn start(dir: &Path, buckets: &[&str]) -> MotoS3 {
        let port = free_port();
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("infra/local/s3/moto-s3.sh"))
            .arg("start")
            .arg(dir)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null());
        for b in buckets {
            cmd.args(["--bucket", b]);
        }
        let out = cmd.output().expect("bash runs");
        assert!(
            out.status.success(),
            "moto's S3 server did not start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        MotoS3 {
            dir: dir.to_path_buf(),
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The environment of an `fnwatch` (or delta-rs) process using this
    /// server for `s3://` lakes: the S3-only endpoint variable, so the same
    /// process still reaches Kinesis wherever `--endpoint-url` says.
    pub fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
    }

    /// Keys (with sizes) under `prefix` in `bucket`, listed by boto3.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let script = r#"
import sys, boto3
endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        print(o["Key"])
"#;
        let out = Command::new("python3")
            .args(["-c", script, &self.endpoint, bucket, prefix])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "listing s3://{bucket}/{prefix} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("infra/local/s3/moto-s3.sh"))
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}
