//! Real receivers for the output tests, started on free loopback ports and
//! stopped when dropped: rsyslog (infra/local/syslog/rsyslog.sh, installed
//! from Debian's packages when missing) and an HTTPS endpoint standing in for
//! Splunk HEC and webhooks (tests/e2e/https_sink.py).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free TCP port on 127.0.0.1 (also free for UDP, checked).
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running rsyslogd writing what it receives to `received.log`.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub tcp: u16,
    pub udp: u16,
    pub tls: u16,
}

impl Rsyslog {
    pub fn start(dir: &Path) -> Rsyslog {
        let r = Rsyslog {
            dir: dir.to_path_buf(),
            tcp: free_port(),
            udp: free_port(),
            tls: free_port(),
        };
        r.up();
        r
    }

    /// Starts it again on the same ports.
    pub fn up(&self) {
        let out = Command::new("bash")
            .arg(repo().join("infra/local/syslog/rsyslog.sh"))
            .arg("start")
            .arg(&self.dir)
            .args(["--tcp", &self.tcp.to_string()])
            .args(["--udp", &self.udp.to_string()])
            .args(["--tls", &self.tls.to_string()])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "rsyslog did not start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn down(&self) {
        let _ = Command::new("bash")
            .arg(repo().join("infra/local/syslog/rsyslog.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The lines received so far: (transport, raw message).
    pub fn received(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join("received.log")).unwrap_or_default();
        complete_lines(&text)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(t, m)| (t.to_string(), m.to_string()))
            .collect()
    }

    /// Waits until `n` lines came over `transport` (or time runs out).
    pub fn wait_for(&self, transport: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got: Vec<String> = self
                .received()
                .into_iter()
                .filter(|(t, _)| t == transport)
                .map(|(_, m)| m)
                .collect();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.down();
    }
}

/// The HTTPS stand-in for HEC and webhooks.
pub struct HttpsSink {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

impl HttpsSink {
    pub fn start(dir: &Path, args: &[&str]) -> HttpsSink {
        std::fs::create_dir_all(dir).unwrap();
        let _ = std::fs::remove_file(dir.join("port"));
        let child = Command::new("python3")
            .arg(repo().join("tests/e2e/https_sink.py"))
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(dir.join("port"))
                && let Ok(p) = p.trim().parse::<u16>()
            {
                break p;
            }
            assert!(Instant::now() < deadline, "https_sink.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        HttpsSink {
            dir: dir.to_path_buf(),
            port,
            child,
        }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn jsonl(&self, name: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        complete_lines(&text)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Requests answered 200.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.jsonl("received.jsonl")
    }

    /// Requests answered otherwise (503, 401, hung).
    pub fn attempts(&self) -> Vec<serde_json::Value> {
        self.jsonl("attempts.jsonl")
    }
}

impl Drop for HttpsSink {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text up to its last newline: a receiver may be half-way through
/// writing the line after it.
fn complete_lines(text: &str) -> &str {
    text.rfind('\n').map_or("", |i| &text[..=i])
}
