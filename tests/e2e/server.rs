//! `fnwatch server` with the real `psql` client: results match `fnwatch sql`,
//! psql's catalogue commands work, wrong passwords and writes are refused,
//! and the row limit, time-out and TLS do what they say.
//!
//! psql comes from Debian's `postgresql-client` (infra/local/test-all.sh
//! installs it); without it these tests fail with the command to run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::common::{bin, count, files_under, fnwatch, ingest};

const PASSWORD: &str = "correct horse battery staple";
const READ_ONLY: &str =
    "is not allowed: the lake is read-only over SQL; it is changed only by fnwatch commands";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A lake with the sample telemetry (3,011 events, 4 dead letters).
fn sample_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    ingest(&lake, &[&repo().join("tests/data/sample.jsonl.gz")]);
    lake
}

fn psql_bin() -> &'static str {
    let found = Command::new("psql")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "psql is missing; install it with: apt-get install -y postgresql-client \
         (infra/local/test-all.sh does this)"
    );
    "psql"
}

/// A running `fnwatch server`, killed when dropped (also when a test fails).
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `fnwatch server --lake LAKE --listen 127.0.0.1:0 ARGS` with
    /// FNWATCH_SQL_PASSWORD set (unless `password` is None) and waits for it
    /// to accept connections.
    fn start(lake: &Path, args: &[&str], password: Option<&str>) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(["-v", "server", "--lake"])
            .arg(lake)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("FNWATCH_SQL_PASSWORD")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(p) = password {
            cmd.env("FNWATCH_SQL_PASSWORD", p);
        }
        let mut child = cmd.spawn().expect("fnwatch server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Drains stderr for the whole run (a full pipe would block the
        // server) and reports the port of the start-up banner.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("fnwatch server: ")
                    && let Some(port) = rest
                        .split_once(" on 127.0.0.1:")
                        .and_then(|(_, r)| r.split_whitespace().next())
                        .and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut server = Server {
            child,
            port: 0,
            log,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(port) => server.port = port,
            Err(_) => panic!("fnwatch server did not start:\n{}", server.log()),
        }
        // The banner is printed once bound; make sure it accepts.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fnwatch server does not accept:\n{}", server.log());
    }

    /// The server's stderr so far, without terminal colours.
    fn log(&self) -> String {
        strip_ansi(&self.log.lock().unwrap())
    }

    /// Runs psql as `user` with `password` (PGPASSWORD) and psql `args`.
    fn psql(&self, user: &str, password: Option<&str>, args: &[&str]) -> Psql {
        self.psql_with(user, password, "", args)
    }

    /// As [`psql`](Self::psql), with extra connection-string options.
    fn psql_with(&self, user: &str, password: Option<&str>, options: &str, args: &[&str]) -> Psql {
        let conninfo = format!(
            "host=127.0.0.1 port={} user={user} dbname=lake connect_timeout=10 {options}",
            self.port
        );
        let mut cmd = Command::new(psql_bin());
        cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &conninfo])
            .args(args)
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .env("PGSSLMODE", "disable")
            .env("PGPASSFILE", "/nonexistent")
            .stdin(Stdio::null());
        if options.contains("sslmode") {
            cmd.env_remove("PGSSLMODE");
        }
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        let o = cmd.output().expect("psql runs");
        Psql {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs one query as `analyst` and returns the unaligned, tuples-only output.
    fn query(&self, sql: &str) -> String {
        let r = self.psql("analyst", Some(PASSWORD), &["-At", "-c", sql]);
        assert_eq!(r.code, 0, "{sql}\n{r:?}\nserver log:\n{}", self.log());
        r.stdout.trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug)]
struct Psql {
    code: i32,
    stdout: String,
    stderr: String,
}

#[test]
fn psql_reads_the_lake_like_fnwatch_sql() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));

    for sql in [
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM dns",
        "SELECT count(*) FROM dead_letters",
        "SELECT count(DISTINCT function) FROM invocations WHERE status = 'success'",
    ] {
        let expected = count(&lake, sql);
        assert_eq!(server.query(sql), expected.to_string(), "{sql}");
    }
    assert_eq!(count(&lake, "SELECT count(*) FROM events"), 3011);
    // The example: alerts, newest first (empty before `detect`).
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-c", "select * from alerts order by time desc limit 20"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(0 rows)"), "{r:?}");

    // A grouped result with text, integer and timestamp columns.
    let rows = server
        .query("SELECT function, count(*), max(time) FROM dns GROUP BY function ORDER BY function");
    let fnwatch_rows = crate::common::query(
        &lake,
        "SELECT function, count(*) AS n FROM dns GROUP BY function ORDER BY function",
    );
    assert_eq!(rows.lines().count(), fnwatch_rows.len(), "{rows}");
    for (line, row) in rows.lines().zip(&fnwatch_rows) {
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols[0], row["function"].as_str().unwrap(), "{line}");
        assert_eq!(cols[1], row["n"].to_string(), "{line}");
        assert!(cols[2].starts_with("20"), "a timestamp: {line}");
    }
}

#[test]
fn psql_catalogue_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));

    let dt = server.psql("analyst", Some(PASSWORD), &["-c", "\\dt"]);
    assert_eq!(dt.code, 0, "{dt:?}\n{}", server.log());
    for table in ["events", "dead_letters", "alerts"] {
        assert!(
            dt.stdout.lines().any(|l| l.contains(&format!(" {table} "))),
            "\\dt lacks {table}:\n{}",
            dt.stdout
        );
    }

    let dv = server.psql("analyst", Some(PASSWORD), &["-c", "\\dv"]);
    assert_eq!(dv.code, 0, "{dv:?}");
    for view in [
        "invocations",
        "dns",
        "processes",
        "network",
        "files",
        "api_calls",
        "function_configs",
    ] {
        assert!(
            dv.stdout.lines().any(|l| l.contains(&format!(" {view} "))),
            "\\dv lacks {view}:\n{}",
            dv.stdout
        );
    }

    let d = server.psql("analyst", Some(PASSWORD), &["-c", "\\d"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        d.stdout.contains("events") && d.stdout.contains("dns"),
        "{}",
        d.stdout
    );

    let de = server.psql("analyst", Some(PASSWORD), &["-c", "\\d events"]);
    assert_eq!(de.code, 0, "{de:?}\n{}", server.log());
    assert!(de.stdout.contains("\"public.events\""), "{}", de.stdout);
    for column in ["time", "function", "request_id", "duration_ms", "date"] {
        assert!(
            de.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(column)),
            "\\d events lacks {column}:\n{}",
            de.stdout
        );
    }

    // What JDBC and BI tools ask at connect time.
    assert_eq!(server.query("SELECT current_database()"), "datafusion");
    assert!(!server.query("SHOW transaction_isolation").is_empty());
    let tables = server.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    assert!(tables.lines().any(|t| t == "events"), "{tables}");
}

#[test]
fn wrong_passwords_and_unknown_users_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));

    let wrong = "not-the-password-9137";
    let r = server.psql("analyst", Some(wrong), &["-c", "SELECT 1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("password authentication failed for user \"analyst\""),
        "{r:?}"
    );
    let r = server.psql("mallory", Some(PASSWORD), &["-c", "SELECT 1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("password authentication failed for user \"mallory\""),
        "{r:?}"
    );
    // The right password still works, over SCRAM.
    assert_eq!(server.query("SELECT 1"), "1");

    let log = server.log();
    for user in ["analyst", "mallory"] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("password authentication failed")
                && l.contains(&format!("user={user} "))),
            "{log}"
        );
    }
    assert!(
        !log.contains(wrong),
        "a password leaked into the log:\n{log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "a password leaked into the log:\n{log}"
    );
}

#[test]
fn writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));

    for (sql, what) in [
        ("CREATE TABLE x(a int)", "CREATE TABLE"),
        ("DROP TABLE events", "DROP TABLE"),
        ("INSERT INTO alerts SELECT * FROM alerts", "INSERT"),
        ("DELETE FROM alerts", "DELETE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("COPY events TO '/tmp/fnwatch-copy.parquet'", "COPY"),
        (
            "WITH gone AS (DELETE FROM alerts RETURNING *) SELECT * FROM gone",
            "DELETE",
        ),
    ] {
        let r = server.psql("analyst", Some(PASSWORD), &["-c", sql]);
        assert_ne!(r.code, 0, "{sql} was not refused: {r:?}");
        assert!(
            r.stderr.contains(&format!("{what} {READ_ONLY}")),
            "{sql}: {r:?}"
        );
    }
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-c", "SET datafusion.execution.batch_size = 1"],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("shared by all connections"), "{r:?}");
    // Nothing changed, and session settings still work.
    assert_eq!(server.query("SELECT count(*) FROM events"), "3011");
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &[
            "-At",
            "-c",
            "SET application_name = 'hunt'",
            "-c",
            "SET TIME ZONE 'UTC'",
            "-c",
            "SELECT 42",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim_end().ends_with("42"), "{r:?}");
    assert!(!Path::new("/tmp/fnwatch-copy.parquet").exists());
}

#[test]
fn row_limit_cuts_results_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--max-rows", "5"], Some(PASSWORD));

    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &[
            "-At",
            "-c",
            "SELECT function, time FROM events ORDER BY time",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 5, "{r:?}");
    assert!(
        r.stderr.contains(
            "NOTICE:  result cut to its first 5 rows: the server's row limit (--max-rows)"
        ),
        "{r:?}"
    );
    // Catalogue queries are not cut: \d shows every column of events.
    let r = server.psql("analyst", Some(PASSWORD), &["-c", "\\d events"]);
    assert_eq!(r.code, 0, "{r:?}");
    for column in ["time", "duration_ms", "ingested_at", "date"] {
        assert!(
            r.stdout.lines().any(|l| l.trim_start().starts_with(column)),
            "{column}: {r:?}"
        );
    }
    assert!(!r.stderr.contains("NOTICE"), "{r:?}");
    // A result within the limit has no notice.
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-At", "-c", "SELECT count(*) FROM events"],
    );
    assert_eq!(r.stdout.trim(), "3011", "{r:?}");
    assert!(!r.stderr.contains("NOTICE"), "{r:?}");
}

#[test]
fn long_queries_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--query-timeout", "1s"], Some(PASSWORD));

    let slow = "SELECT count(*) FROM generate_series(1, 100000000000) AS t(n) WHERE n % 7 = 3";
    let started = std::time::Instant::now();
    let r = server.psql("analyst", Some(PASSWORD), &["-c", slow]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("canceling statement due to statement timeout")
            && r.stderr.contains("--query-timeout"),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The server goes on serving.
    assert_eq!(server.query("SELECT count(*) FROM events"), "3011");

    // A session's own, shorter statement_timeout counts too.
    let server = Server::start(&lake, &[], Some(PASSWORD));
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-c", "SET statement_timeout = '500ms'", "-c", slow],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("statement_timeout"), "{r:?}");
}

/// A self-signed certificate for 127.0.0.1 and its key, in `dir`.
fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (cert, key)
}

#[test]
fn users_file_tls_and_scram_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let users = dir.path().join("sql-users");
    std::fs::write(&users, "# analysts\nbob:b0b's pass:word\n").unwrap();
    let (cert, key) = self_signed_cert(dir.path());

    let args = [
        "--users-file",
        users.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let server = Server::start(&lake, &args, None);
    // TLS, and SCRAM-SHA-256-PLUS bound to the TLS channel.
    let r = server.psql_with(
        "bob",
        Some("b0b's pass:word"),
        "sslmode=require channel_binding=require",
        &["-At", "-c", "SELECT count(*) FROM events"],
    );
    assert_eq!(r.code, 0, "{r:?}\n{}", server.log());
    assert_eq!(r.stdout.trim(), "3011");
    // Without TLS: refused at start-up, and told how to connect.
    let r = server.psql("bob", Some("b0b's pass:word"), &["-At", "-c", "SELECT 1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("this server requires TLS: connect with sslmode=require"),
        "{r:?}"
    );
    // `analyst` has no password here.
    let r = server.psql_with(
        "analyst",
        Some(PASSWORD),
        "sslmode=require",
        &["-c", "SELECT 1"],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("password authentication failed"), "{r:?}");
    let log = server.log();
    assert!(log.contains("tls=true"), "{log}");
    assert!(log.contains("connection without TLS refused"), "{log}");
    assert!(log.contains("TLS required"), "{log}");
    // The users file is world-readable as written by the test: warned about.
    assert!(log.contains("chmod 600"), "{log}");
    drop(server);

    // --allow-plaintext: both kinds of client.
    let server = Server::start(&lake, &[&args[..], &["--allow-plaintext"]].concat(), None);
    // Plain TCP: SCRAM-SHA-256 without channel binding.
    let r = server.psql("bob", Some("b0b's pass:word"), &["-At", "-c", "SELECT 1"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", server.log());
    let r = server.psql_with(
        "bob",
        Some("b0b's pass:word"),
        "sslmode=require",
        &["-At", "-c", "SELECT 1"],
    );
    assert_eq!(r.code, 0, "{r:?}\n{}", server.log());
    assert!(
        server.log().contains("plaintext also accepted"),
        "{}",
        server.log()
    );
}

/// One protocol message: the tag byte (none for a start-up message), the
/// length and the body.
fn frame(tag: Option<u8>, body: &[u8]) -> Vec<u8> {
    let mut m: Vec<u8> = tag.into_iter().collect();
    m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A simple-protocol query of the events.
fn query_frame() -> Vec<u8> {
    frame(Some(b'Q'), b"SELECT count(*) FROM events\0")
}

/// Sends `messages` in one write, without waiting for any answer, as a
/// hostile client would; returns the open socket.
fn send_all(server: &Server, messages: &[Vec<u8>]) -> std::net::TcpStream {
    use std::io::Write;
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket.write_all(&messages.concat()).unwrap();
    socket
}

/// Asserts that the server closes `socket` by itself, while the client sends
/// nothing it could answer. pgwire shuts its writing side after a refusal,
/// which alone leaves the connection open; so this dribbles the start of a
/// message the server must wait on, until the closed socket answers with a
/// reset. Returns what the server sent before; fails after 20 s.
fn assert_server_closes(mut socket: std::net::TcpStream) -> String {
    use std::io::{Read, Write};
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    // Up to the end of what the server writes (an error on a reset).
    let _ = socket.read_to_end(&mut answer);
    let mut pending = frame(Some(b'Q'), &[b' '; 1000]).into_iter();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let next = pending.next().unwrap();
        if socket.write_all(&[next]).is_err() {
            return String::from_utf8_lossy(&answer).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server keeps a refused connection open"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the server has logged `n` refusals of a statement on a
/// connection that has not authenticated; fails after 20 s.
fn wait_for_refusals(server: &Server, n: usize) {
    let refused = "statement on a connection that has not authenticated refused";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.log().matches(refused).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the query was not refused:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_refused_connection_cannot_run_statements() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let (cert, key) = self_signed_cert(dir.path());
    let server = Server::start(
        &lake,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        Some(PASSWORD),
    );
    let startup = frame(None, b"\0\x03\0\0user\0analyst\0database\0lake\0\0");
    // A plaintext start-up (refused: TLS is required), then a query.
    let socket = send_all(&server, &[startup.clone(), query_frame()]);
    wait_for_refusals(&server, 1);
    assert!(
        server.log().contains("connection without TLS refused"),
        "{}",
        server.log()
    );
    drop(socket);

    // The same start-up, then an extended-protocol Parse, Describe and Sync:
    // the statement is not even planned.
    let socket = send_all(
        &server,
        &[
            startup.clone(),
            frame(Some(b'P'), b"s1\0SELECT count(*) FROM events\0\0\0"),
            frame(Some(b'D'), b"Ss1\0"),
            frame(Some(b'S'), b""),
        ],
    );
    wait_for_refusals(&server, 2);
    drop(socket);

    // A refused client that goes quiet is disconnected, the FATAL error
    // delivered first.
    let socket = send_all(&server, &[startup]);
    let answer = assert_server_closes(socket);
    assert!(answer.contains("this server requires TLS"), "{answer:?}");

    // The same after a failed password exchange (an unknown SASL mechanism),
    // with a start-up parameter named like an authentication marker.
    let server = Server::start(&lake, &[], Some(PASSWORD));
    let _socket = send_all(
        &server,
        &[
            frame(
                None,
                b"\0\x03\0\0user\0analyst\0database\0lake\0fnwatch.authenticated\0true\0\0",
            ),
            frame(Some(b'p'), b"NO-SUCH-MECHANISM\0\xff\xff\xff\xff"),
            query_frame(),
        ],
    );
    wait_for_refusals(&server, 1);
}

#[test]
fn allow_plaintext_needs_tls() {
    let r = fnwatch(&["server", "--lake", "x", "--allow-plaintext", "--no-auth"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("required arguments were not provided")
            && r.stderr.contains("--tls-cert"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_auth_only_on_loopback_and_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let lake_s = lake.to_str().unwrap();

    let r = fnwatch(&[
        "server",
        "--lake",
        lake_s,
        "--listen",
        "0.0.0.0:0",
        "--no-auth",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--no-auth is refused on 0.0.0.0:0"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("loopback"), "{}", r.stderr);

    let o = Command::new(bin())
        .args(["server", "--lake", lake_s, "--listen", "127.0.0.1:0"])
        .env_remove("FNWATCH_SQL_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("set FNWATCH_SQL_PASSWORD") && stderr.contains("--users-file"),
        "{stderr}"
    );

    let server = Server::start(&lake, &["--no-auth"], None);
    let r = server.psql(
        "whoever",
        None,
        &["-At", "-c", "SELECT count(*) FROM events"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "3011");
}

#[test]
fn help_shows_examples() {
    let r = fnwatch(&["server", "--help"]).ok();
    for needle in [
        "--users-file",
        "--no-auth",
        "--tls-cert",
        "--allow-plaintext",
        "--query-timeout",
        "--max-rows",
        "FNWATCH_SQL_PASSWORD",
        "Examples:",
    ] {
        assert!(r.stdout.contains(needle), "{needle}:\n{}", r.stdout);
    }
}

#[test]
fn a_running_server_sees_new_commits() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--refresh", "1s"], Some(PASSWORD));
    assert_eq!(server.query("SELECT count(*) FROM events"), "3011");

    ingest(&lake, &[&repo().join("tests/data/attacks.jsonl")]);
    let expected = count(&lake, "SELECT count(*) FROM events").to_string();
    let expected_processes = count(&lake, "SELECT count(*) FROM processes").to_string();
    assert_ne!(expected, "3011");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Tables and views move together.
        let now = server.query("SELECT count(*) FROM events");
        if now == expected {
            assert_eq!(
                server.query("SELECT count(*) FROM processes"),
                expected_processes
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {now} events, expected {expected}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(server.log().contains("lake refreshed"), "{}", server.log());
    // psql's catalogue still answers after the swap.
    let r = server.psql("analyst", Some(PASSWORD), &["-c", "\\dt"]);
    assert!(r.stdout.contains(" events "), "{r:?}");
}

/// pgjdbc from Debian's `libpostgresql-jdbc-java` (infra/local/test-all.sh
/// installs it).
const PGJDBC: &str = "/usr/share/java/postgresql.jar";

#[test]
fn a_jdbc_client_lists_tables_and_columns_and_queries() {
    assert!(
        Path::new(PGJDBC).is_file(),
        "{PGJDBC} is missing: apt-get install -y libpostgresql-jdbc-java (infra/local/test-all.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));
    let function = crate::common::query(&lake, "SELECT min(function) AS f FROM dns")[0]["f"]
        .as_str()
        .unwrap()
        .to_string();
    // A single-file Java program (java 11+ runs the source directly).
    let out = Command::new("java")
        .args(["-cp", PGJDBC])
        .arg(repo().join("tests/e2e/JdbcCheck.java"))
        .arg(format!("jdbc:postgresql://127.0.0.1:{}/lake", server.port))
        .args(["analyst", PASSWORD, &function])
        .output()
        .expect("java runs (openjdk: apt-get install -y default-jre-headless)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("product PostgreSQL"), "{stdout}");
    for t in [
        "table events TABLE",
        "table dead_letters TABLE",
        "table dns VIEW",
        "table invocations VIEW",
    ] {
        assert!(lines.contains(&t), "{t} missing:\n{stdout}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("column events.request_id ")),
        "{stdout}"
    );
    let events = count(&lake, "SELECT count(*) FROM events");
    assert!(
        lines.contains(&format!("count {events}").as_str()),
        "{stdout}"
    );
    let dns = count(
        &lake,
        &format!("SELECT count(*) FROM dns WHERE function = '{function}'"),
    );
    assert!(dns > 0);
    assert!(
        lines.contains(&format!("prepared {dns}").as_str()),
        "{stdout}"
    );
    assert!(lines.iter().any(|l| l.starts_with("row ")), "{stdout}");
}

/// Writes hidden in EXPLAIN ANALYZE, COPY to a file, DDL, DML and SET of
/// shared settings: each refused over the wire, the lake's rows unchanged
/// and no file written.
#[test]
fn hidden_writes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));
    let before = files_under(dir.path());
    let out = dir.path().join("x.csv");
    let out = out.to_str().unwrap();
    for sql in [
        "EXPLAIN ANALYZE INSERT OVERWRITE events SELECT * FROM events WHERE false".to_string(),
        "EXPLAIN ANALYZE INSERT INTO events SELECT * FROM events WHERE false".to_string(),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'"),
        format!("COPY (SELECT 1) TO '{out}'"),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP VIEW dns".to_string(),
        "INSERT INTO events SELECT * FROM events".to_string(),
        "SET datafusion.execution.target_partitions = 1".to_string(),
        "SET timezone = '+05:00'".to_string(),
    ] {
        let r = server.psql("analyst", Some(PASSWORD), &["-c", &sql]);
        assert_ne!(r.code, 0, "{sql} was not refused: {r:?}");
        assert!(
            r.stderr.contains("is not allowed") || r.stderr.contains("syntax error"),
            "{sql}: {r:?}"
        );
    }
    assert_eq!(server.query("SELECT count(*) FROM events"), "3011");
    server.query("SELECT count(*) FROM dns");
    assert_eq!(
        before,
        files_under(dir.path()),
        "a refused statement wrote a file"
    );
}

/// `SET timezone` would change DataFusion's time zone for every
/// connection: it is refused, and another connection's results keep UTC.
#[test]
fn one_connection_cannot_set_the_time_zone_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &[], Some(PASSWORD));
    // now()'s type names the session's time zone.
    let show = "SELECT arrow_typeof(now())";
    let zone = server.query(show);
    for sql in ["SET timezone = '+05:00'", "SET TimeZone TO 'Asia/Tokyo'"] {
        let r = server.psql("analyst", Some(PASSWORD), &["-c", sql]);
        assert_ne!(r.code, 0, "{sql} was accepted: {r:?}");
        assert!(r.stderr.contains("shared by all connections"), "{r:?}");
    }
    assert_eq!(
        server.query(show),
        zone,
        "another connection's zone changed"
    );
    // The per-connection form still answers (clients send it).
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-At", "-c", "SET TIME ZONE 'UTC'", "-c", "SELECT 1"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(server.query(show), zone);
}

/// Statements over `pg_*` tables are bounded too: a generator that would
/// build 2 billion elements is refused before it runs, and a large
/// catalogue result is cut.
#[test]
fn catalogue_statements_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--max-rows", "5"], Some(PASSWORD));
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-c", "SELECT unnest(range(1, 2000000000)) FROM pg_class"],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("range(...) is not allowed here")
            && r.stderr.contains("2000000000 elements"),
        "{r:?}"
    );
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &[
            "-c",
            "SELECT repeat('x', n) FROM pg_class, (SELECT 5 AS n) t",
        ],
    );
    assert_ne!(r.code, 0, "a size not known before running: {r:?}");
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-At", "-c", "SELECT unnest(range(1, 100000)) FROM pg_class"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 10_000, "{}", r.stderr);
    assert!(
        r.stderr.contains("result cut to its first 10000 rows"),
        "{r:?}"
    );
    // Streaming generate_series in FROM stays allowed (and cut).
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-At", "-c", "SELECT * FROM generate_series(1, 1000000000)"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 5, "{r:?}");
}

/// A row wider than --max-row-bytes fails its statement; a result larger
/// than --max-result-bytes is cut with a NOTICE.
#[test]
fn wide_rows_and_large_results_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(
        &lake,
        &["--max-row-bytes", "1KiB", "--max-result-bytes", "20KiB"],
        Some(PASSWORD),
    );
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-c", "SELECT repeat('x', 5000)"],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("wider than the server's limit of 1024 bytes"),
        "{r:?}"
    );
    let r = server.psql(
        "analyst",
        Some(PASSWORD),
        &["-At", "-c", "SELECT repeat('y', 500) FROM events"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let rows = r.stdout.lines().count();
    assert!(rows > 10 && rows < 50, "{rows} rows: {}", r.stderr);
    assert!(r.stderr.contains("result cut at 20480 bytes"), "{r:?}");
}

/// Connections beyond --max-connections are refused with PostgreSQL's
/// "too many clients", and accepted again once others close.
#[test]
fn connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--max-connections", "2"], Some(PASSWORD));
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = server.psql("analyst", Some(PASSWORD), &["-At", "-c", "SELECT 1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("too many clients"), "{r:?}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.query("SELECT 1"), "1");
}

/// After --max-failed-logins wrong passwords from one address, even the
/// right password waits out the back-off; then it works again.
#[test]
fn failed_logins_back_off_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = Server::start(&lake, &["--max-failed-logins", "2"], Some(PASSWORD));
    for _ in 0..2 {
        let r = server.psql("analyst", Some("wrong"), &["-c", "SELECT 1"]);
        assert!(r.stderr.contains("password authentication failed"), "{r:?}");
    }
    let r = server.psql("analyst", Some(PASSWORD), &["-At", "-c", "SELECT 1"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("too many failed logins"), "{r:?}");
    assert!(
        server
            .log()
            .contains("too many failed logins from this address"),
        "{}",
        server.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.query("SELECT 1"), "1");
    // A success cleared the count: one more failure does not block.
    let r = server.psql("analyst", Some("wrong"), &["-c", "SELECT 1"]);
    assert!(r.stderr.contains("password authentication failed"), "{r:?}");
    assert_eq!(server.query("SELECT 1"), "1");
}

/// Password logins on a non-loopback address without TLS are served, with
/// a warning in the log.
#[test]
fn plaintext_passwords_on_the_network_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let mut child = Command::new(bin())
        .args(["server", "--lake"])
        .arg(&lake)
        .args(["--listen", "0.0.0.0:0"])
        .env("FNWATCH_SQL_PASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("fnwatch server: ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = strip_ansi(&seen);
    assert!(
        seen.contains("password logins on 0.0.0.0:0 without TLS"),
        "{seen}"
    );
}
