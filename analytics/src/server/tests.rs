#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::config::{Access, Users, parse_duration};
use super::guard::{Refusal, check, verb};

/// Parses like the server does (PostgreSQL dialect plus the compatibility
/// rewrites) and checks every statement.
fn guard(sql: &str) -> Result<(), Refusal> {
    let statements = PostgresCompatibilityParser::new()
        .parse(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    assert!(!statements.is_empty(), "{sql}: no statement");
    statements.iter().try_for_each(check)
}

#[test]
fn reads_pass() {
    for sql in [
        "SELECT * FROM alerts ORDER BY time DESC LIMIT 20",
        "select count(*) from events where date >= '2026-11-01'",
        "WITH x AS (SELECT function FROM dns) SELECT * FROM x",
        "SELECT 1 UNION ALL SELECT 2",
        "VALUES (1), (2)",
        "EXPLAIN SELECT * FROM events",
        "EXPLAIN ANALYZE SELECT count(*) FROM events",
        "SHOW TABLES",
        "SHOW search_path",
        "SHOW ALL",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SET statement_timeout = '5s'",
        "SET extra_float_digits = 3",
        "SET application_name = 'PostgreSQL JDBC Driver'",
        "SET TIME ZONE 'UTC'",
        "SET search_path TO public",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "DECLARE c CURSOR FOR SELECT * FROM events",
        "FETCH FORWARD 10 FROM c",
        "CLOSE c",
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(events)$' COLLATE pg_catalog.default",
    ] {
        assert_eq!(guard(sql), Ok(()), "{sql}");
    }
}

#[test]
fn writes_are_refused_with_the_reason() {
    for (sql, what) in [
        ("CREATE TABLE x(a int)", "CREATE TABLE"),
        ("create or replace view v as select 1", "CREATE VIEW"),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            "CREATE TABLE",
        ),
        ("CREATE SCHEMA s", "CREATE SCHEMA"),
        ("DROP TABLE events", "DROP TABLE"),
        ("DROP VIEW IF EXISTS dns", "DROP VIEW"),
        ("INSERT INTO events SELECT * FROM events", "INSERT"),
        ("UPDATE alerts SET severity = 'low'", "UPDATE"),
        ("DELETE FROM alerts", "DELETE"),
        ("TRUNCATE alerts", "TRUNCATE"),
        ("ALTER TABLE events ADD COLUMN x int", "ALTER TABLE"),
        ("COPY events TO '/tmp/out.parquet'", "COPY"),
        ("COPY (SELECT 1) TO STDOUT", "COPY"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("GRANT SELECT ON events TO bob", "GRANT"),
        ("VACUUM", "VACUUM"),
        (
            "MERGE INTO alerts a USING alerts b ON a.id = b.id WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
    ] {
        match guard(sql) {
            Err(Refusal::ReadOnly { what: w }) => assert_eq!(w, what, "{sql}"),
            other => panic!("{sql}: expected a read-only refusal, got {other:?}"),
        }
    }
}

#[test]
fn writes_hidden_inside_reads_are_refused() {
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO events SELECT * FROM events",
        "WITH gone AS (DELETE FROM alerts RETURNING *) SELECT * FROM gone",
        "SELECT * INTO copy_of_events FROM events",
        "DECLARE c CURSOR FOR SELECT * INTO t FROM events",
        "SELECT 1; DROP TABLE events",
    ] {
        assert!(
            matches!(guard(sql), Err(Refusal::ReadOnly { .. })),
            "{sql}: {:?}",
            guard(sql)
        );
    }
}

#[test]
fn shared_settings_are_refused() {
    for sql in [
        "SET datafusion.execution.target_partitions = 1",
        "SET datafusion.runtime.memory_limit = '1K'",
        "SET LOCAL datafusion.execution.batch_size = 1",
        "SET \"datafusion.optimizer.max_passes\" = 0",
    ] {
        assert!(
            matches!(guard(sql), Err(Refusal::SharedSetting { .. })),
            "{sql}: {:?}",
            guard(sql)
        );
    }
}

#[test]
fn refusal_messages_name_why() {
    let r = Refusal::ReadOnly {
        what: "DROP TABLE".into(),
    };
    assert_eq!(
        r.message(),
        "DROP TABLE is not allowed: the lake is read-only over SQL; it is changed only by fnwatch commands"
    );
    assert!(
        Refusal::SharedSetting {
            name: "datafusion.execution.batch_size".into()
        }
        .message()
        .contains("shared by all connections")
    );
}

#[test]
fn verbs_read_like_people_say_them() {
    assert_eq!(verb("CREATE TEMPORARY TABLE x (a int)"), "CREATE TABLE");
    assert_eq!(
        verb("CREATE MATERIALIZED VIEW m AS SELECT 1"),
        "CREATE MATERIALIZED VIEW"
    );
    assert_eq!(verb("CREATE UNIQUE INDEX i ON t (a)"), "CREATE INDEX");
    assert_eq!(verb("insert into t values (1)"), "INSERT");
    assert_eq!(verb("CREATE foo"), "CREATE");
    assert_eq!(verb(""), "this statement");
}

#[test]
fn users_file_lines() {
    let text =
        "# fnwatch SQL users\n\nanalyst:correct horse:battery\n  # indented comment\nbob:pw\r\n";
    let users = Users::parse(text, "users.txt").unwrap();
    assert_eq!(users.names().collect::<Vec<_>>(), ["analyst", "bob"]);
    let map: Vec<(&str, &str)> = users.iter().collect();
    // Everything after the first colon, spaces and colons included.
    assert_eq!(map[0], ("analyst", "correct horse:battery"));
    assert_eq!(map[1], ("bob", "pw"));
}

#[test]
fn users_file_errors_name_the_line_but_never_the_password() {
    for (text, expected) in [
        (
            "analyst secret-one\n",
            "users.txt:1: expected `user:password`",
        ),
        ("ok:x\n:secret-two\n", "users.txt:2: the user name is empty"),
        ("bob:\n", "users.txt:1: user `bob` has an empty password"),
        (
            "bob:secret-3\nbob:secret-4\n",
            "users.txt:2: user `bob` is listed twice",
        ),
        ("bo b:secret-5\n", "users.txt:1: the user name contains ' '"),
    ] {
        let e = Users::parse(text, "users.txt").unwrap_err().to_string();
        assert_eq!(e, expected);
        assert!(!e.contains("secret"), "{e}");
    }
}

#[test]
fn users_debug_hides_passwords() {
    let users = Users::default().with("analyst", "hunter2");
    assert!(!format!("{users:?}").contains("hunter2"));
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn access_needs_a_password_source() {
    let e = Access::resolve(None, None, false, addr("127.0.0.1:5433"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("FNWATCH_SQL_PASSWORD"), "{e}");
    assert!(e.contains("--users-file"), "{e}");

    match Access::resolve(None, Some("pw".into()), false, addr("0.0.0.0:5433")).unwrap() {
        Access::Passwords(u) => assert_eq!(u.names().collect::<Vec<_>>(), ["analyst"]),
        Access::Open => panic!("passwords expected"),
    }
    let e = Access::resolve(None, Some(String::new()), false, addr("127.0.0.1:5433"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn no_auth_only_on_loopback() {
    assert!(matches!(
        Access::resolve(None, None, true, addr("127.0.0.1:5433")).unwrap(),
        Access::Open
    ));
    assert!(matches!(
        Access::resolve(None, None, true, addr("[::1]:5433")).unwrap(),
        Access::Open
    ));
    for a in ["0.0.0.0:5433", "192.168.1.5:5433", "[::]:5433"] {
        let e = Access::resolve(None, None, true, addr(a))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--no-auth is refused"), "{e}");
        assert!(e.contains("loopback"), "{e}");
    }
}

#[test]
fn users_file_and_environment_combine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, "bob:pw\n").unwrap();
    match Access::resolve(Some(&path), Some("x".into()), false, addr("127.0.0.1:1")).unwrap() {
        Access::Passwords(u) => assert_eq!(u.names().collect::<Vec<_>>(), ["analyst", "bob"]),
        Access::Open => panic!("passwords expected"),
    }
    std::fs::write(&path, "analyst:pw\n").unwrap();
    let e = Access::resolve(Some(&path), Some("x".into()), false, addr("127.0.0.1:1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("keep one"), "{e}");
    std::fs::write(&path, "# nobody yet\n").unwrap();
    let e = Access::resolve(Some(&path), None, false, addr("127.0.0.1:1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("names no user"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("60s"), Ok(Some(Duration::from_secs(60))));
    assert_eq!(parse_duration("1m 30s"), Ok(Some(Duration::from_secs(90))));
    assert_eq!(parse_duration("off"), Ok(None));
    assert_eq!(parse_duration("0"), Ok(None));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn unknown_users_get_a_stable_made_up_salt() {
    use datafusion_postgres::pgwire::api::auth::AuthSource;
    let users = super::auth::ScramUsers::new(&Users::default().with("analyst", "pw"));
    assert!(users.knows("analyst"));
    assert!(!users.knows("mallory"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let salt = |name: &str| {
        let login = datafusion_postgres::pgwire::api::auth::LoginInfo::new(
            Some(name),
            None,
            "127.0.0.1".into(),
        );
        let p = rt.block_on(users.get_password(&login)).unwrap();
        p.salt().unwrap().to_vec()
    };
    assert_eq!(salt("mallory"), salt("mallory"));
    assert_ne!(salt("mallory"), salt("eve"));
    assert_eq!(salt("mallory").len(), 16);
}

#[test]
fn catalogue_queries_are_told_apart() {
    use super::limits::reads_only_catalogue;
    let check = |sql: &str| {
        let stmts = PostgresCompatibilityParser::new().parse(sql).unwrap();
        reads_only_catalogue(&stmts[0])
    };
    assert!(check(
        "SELECT c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    ));
    assert!(check("SELECT * FROM information_schema.columns"));
    assert!(check("SELECT * FROM pg_type"));
    assert!(!check("SELECT * FROM events"));
    assert!(!check("SELECT * FROM pg_catalog.pg_class, events"));
    assert!(!check("SELECT 1"));
    assert!(!check("SELECT * FROM generate_series(1, 1000000000)"));
}

#[test]
fn memory_sizes() {
    use super::config::parse_memory;
    assert_eq!(parse_memory("4GB"), Ok(Some(4_000_000_000)));
    assert_eq!(parse_memory("512MiB"), Ok(Some(512 << 20)));
    assert_eq!(parse_memory("off"), Ok(None));
    assert!(parse_memory("lots").is_err());
    assert!(parse_memory("10").is_err(), "ten bytes is a typo");
    assert!(parse_memory("150%").is_err());
    if std::path::Path::new("/proc/meminfo").exists() {
        assert!(parse_memory("50%").unwrap().unwrap() > 1 << 20);
    }
}

fn guard_server(sql: &str) -> Result<(), Refusal> {
    let statements = PostgresCompatibilityParser::new()
        .parse(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    statements.iter().try_for_each(super::guard::check_server)
}

#[test]
fn writes_inside_explain_analyze_and_copy_are_refused() {
    for sql in [
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN ANALYZE DELETE FROM alerts",
        "EXPLAIN ANALYZE VERBOSE INSERT INTO events SELECT * FROM events WHERE false",
        "COPY (SELECT 1) TO 'x.csv'",
    ] {
        assert!(
            matches!(guard(sql), Err(Refusal::ReadOnly { .. })),
            "{sql}: {:?}",
            guard(sql)
        );
    }
}

#[test]
fn set_timezone_is_shared_and_refused() {
    // DataFusion maps `timezone` to datafusion.execution.time_zone, which
    // every connection shares.
    for sql in [
        "SET timezone = '+05:00'",
        "SET TimeZone TO 'Asia/Tokyo'",
        "SET TIME ZONE = 'UTC'",
        "SET SESSION timezone = 'UTC'",
    ] {
        assert!(
            matches!(guard(sql), Err(Refusal::SharedSetting { .. })),
            "{sql}: {:?}",
            guard(sql)
        );
    }
    // The PostgreSQL form is answered per connection (client metadata only).
    assert_eq!(guard("SET TIME ZONE 'UTC'"), Ok(()));
}

#[test]
fn result_building_functions_need_small_literal_sizes() {
    for sql in [
        "SELECT unnest(range(1, 2000000000)) FROM pg_class",
        "SELECT range(2000000000)",
        "SELECT generate_series(-5, 5000000000, 2)",
        "SELECT repeat('x', 1000000000)",
        "SELECT lpad('x', 2000000000, 'y')",
        "SELECT array_repeat(1, 100000000)",
        "SELECT repeat('x', n) FROM (SELECT 5 AS n) t",
        "SELECT range(1, (SELECT 2000000000))",
        "SELECT count(*) FROM events WHERE function IN (SELECT repeat(function, 99999999) FROM events)",
    ] {
        assert!(
            matches!(guard_server(sql), Err(Refusal::TooLarge { .. })),
            "{sql}: {:?}",
            guard_server(sql)
        );
        // `fnwatch sql` (a local user) is not limited so.
        assert_eq!(guard(sql), Ok(()), "{sql}");
    }
    for sql in [
        "SELECT unnest(range(1, 1000)) FROM pg_class",
        "SELECT range(10, 1, -1)",
        "SELECT repeat('-', 40)",
        "SELECT lpad(function, 30, ' ') FROM events",
        "SELECT * FROM generate_series(1, 100000000000)",
        "SELECT * FROM range(1, 5000000000)",
    ] {
        assert_eq!(guard_server(sql), Ok(()), "{sql}");
    }
    let e = guard_server("SELECT unnest(range(1, 2000000000)) FROM pg_class").unwrap_err();
    assert!(
        e.message()
            .starts_with("range(...) is not allowed here: it would build 2000000000 elements"),
        "{}",
        e.message()
    );
}

#[test]
fn failed_logins_back_off_doubling_per_address() {
    use super::auth::Failures;
    use std::time::Instant;
    let f = Failures::new(3);
    let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let b: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    let t = Instant::now();
    assert_eq!(f.failed(a, t), None);
    assert_eq!(f.failed(a, t), None);
    assert_eq!(f.failed(a, t), Some(Duration::from_secs(1)));
    assert_eq!(f.wait(a, t), Some(Duration::from_secs(1)));
    assert_eq!(f.wait(b, t), None, "other addresses are not affected");
    assert_eq!(f.failed(a, t), Some(Duration::from_secs(2)));
    assert_eq!(f.failed(a, t), Some(Duration::from_secs(4)));
    for _ in 0..30 {
        f.failed(a, t);
    }
    assert_eq!(f.wait(a, t), Some(Duration::from_secs(15 * 60)), "capped");
    assert_eq!(f.wait(a, t + Duration::from_secs(15 * 60)), None);
    f.succeeded(a);
    assert_eq!(f.failed(a, t), None, "a success clears the count");
}

#[test]
fn plaintext_passwords_off_loopback_are_warned_about() {
    use super::{ServerConfig, plaintext_password_warning};
    let config = |listen: &str, access: Access, tls: bool| ServerConfig {
        listen: listen.parse().unwrap(),
        access,
        tls: tls.then(|| super::TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
        }),
        allow_plaintext: false,
        query_timeout: None,
        max_rows: 10,
        max_memory: None,
        refresh: None,
        limits: Default::default(),
    };
    let users = || Access::Passwords(Users::default().with("a", "b"));
    let w = plaintext_password_warning(&config("0.0.0.0:5433", users(), false));
    assert!(w.unwrap().contains("without TLS"));
    assert!(plaintext_password_warning(&config("10.1.2.3:5433", users(), false)).is_some());
    assert!(plaintext_password_warning(&config("127.0.0.1:5433", users(), false)).is_none());
    assert!(plaintext_password_warning(&config("0.0.0.0:5433", users(), true)).is_none());
    assert!(plaintext_password_warning(&config("127.0.0.1:5433", Access::Open, false)).is_none());
}

#[test]
fn spills_go_to_the_folder_and_cap_given() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let limits = super::Limits {
        spill_dir: Some(spill.clone()),
        max_spill: 123 << 20,
        ..Default::default()
    };
    let ctx = super::with_runtime_limits(
        &datafusion::prelude::SessionContext::new(),
        Some(64 << 20),
        &limits,
    )
    .unwrap();
    let runtime = ctx.runtime_env();
    assert_eq!(runtime.disk_manager.max_temp_directory_size(), 123 << 20);
    assert!(spill.is_dir());
    let file = runtime.disk_manager.create_tmp_file("test").unwrap();
    assert!(
        file.path().unwrap().starts_with(&spill),
        "{:?} is not under {}",
        file.path(),
        spill.display()
    );
}
