//! Property tests of the SQL guards (proptest): statements built from
//! random shapes, keywords, letter cases, comments and nesting. Whenever a
//! write (DDL, DML, COPY, SET of a shared setting, SELECT INTO) is anywhere
//! in the statement, both the server's guard (PostgreSQL dialect) and
//! `fnwatch sql`'s (DataFusion's parser) refuse it or cannot parse it; reads
//! pass the server's guard.
//!
//! Short version in `cargo test`; long: `cargo test -p fnwatch-analytics --
//! --ignored fuzz` (10 million cases, or `FNWATCH_FUZZ_CASES`).

use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::guard::{check, check_server};
use crate::session::read_only;
use crate::sinks::render::fuzz::{SHORT_CASES, long_cases, runner};

/// A generated statement and whether a write is somewhere in it.
#[derive(Debug, Clone)]
struct Sql {
    text: String,
    writes: bool,
}

fn read() -> impl Strategy<Value = Sql> {
    prop::sample::select(vec![
        "SELECT * FROM events",
        "SELECT count(*) FROM events WHERE date >= '2026-11-01'",
        "SELECT function, count(*) FROM dns GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
        "SELECT 1",
        "VALUES (1), (2)",
        "SELECT a.id FROM alerts a JOIN events e ON a.function = e.function",
        "SELECT * FROM (SELECT 1 AS x) q",
        "SELECT relname FROM pg_catalog.pg_class",
    ])
    .prop_map(|t| Sql {
        text: t.to_string(),
        writes: false,
    })
}

fn write() -> impl Strategy<Value = Sql> {
    prop::sample::select(vec![
        "INSERT INTO events SELECT * FROM events",
        "INSERT OVERWRITE events SELECT * FROM events WHERE false",
        "INSERT INTO alerts VALUES (1)",
        "DELETE FROM alerts",
        "UPDATE alerts SET severity = 'low'",
        "TRUNCATE TABLE events",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TABLE t (a int)",
        "CREATE OR REPLACE VIEW v AS SELECT 1",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/tmp/x.csv'",
        "CREATE SCHEMA s",
        "DROP TABLE events",
        "DROP VIEW IF EXISTS dns",
        "ALTER TABLE events ADD COLUMN x int",
        "COPY (SELECT 1) TO 'x.csv'",
        "COPY events TO '/tmp/out.parquet'",
        "SET datafusion.execution.batch_size = 1",
        "SET timezone = '+05:00'",
        "SET TimeZone TO 'Asia/Tokyo'",
        "SELECT * INTO t FROM events",
        "PREPARE p AS SELECT 1",
        "GRANT SELECT ON events TO bob",
        "MERGE INTO alerts a USING alerts b ON a.id = b.id WHEN MATCHED THEN DELETE",
        // Not a bare `VACUUM`: inside `FROM (...)` one word reads as a
        // table name, a read.
        "VACUUM FULL ANALYZE events",
    ])
    .prop_map(|t| Sql {
        text: t.to_string(),
        writes: true,
    })
}

/// Statements nested in EXPLAIN, CTEs, subqueries, set operations, cursors
/// and COPY, up to three deep.
fn statement() -> impl Strategy<Value = Sql> {
    let leaf = prop_oneof![read(), write()];
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| wrap(s, "EXPLAIN ", "", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "EXPLAIN ANALYZE ", "", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "EXPLAIN VERBOSE ", "", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "EXPLAIN ANALYZE VERBOSE ", "", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "WITH c AS (", ") SELECT * FROM c", false)),
            inner.clone().prop_map(|s| wrap(
                s,
                "WITH c AS (",
                " RETURNING *) SELECT * FROM c",
                false
            )),
            inner
                .clone()
                .prop_map(|s| wrap(s, "SELECT * FROM (", ") q", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "SELECT 1 UNION ALL (", ")", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "DECLARE c CURSOR FOR ", "", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "SELECT * FROM events WHERE EXISTS (", ")", false)),
            inner
                .clone()
                .prop_map(|s| wrap(s, "COPY (", ") TO 'x.csv'", true)),
            (inner.clone(), inner).prop_map(|(a, b)| Sql {
                text: format!("{}; {}", a.text, b.text),
                writes: a.writes || b.writes,
            }),
        ]
    })
}

fn wrap(s: Sql, before: &str, after: &str, writes: bool) -> Sql {
    Sql {
        text: format!("{before}{}{after}", s.text),
        writes: s.writes || writes,
    }
}

/// The statement with random letter case, and comments or extra space
/// between some words.
fn disguised() -> impl Strategy<Value = Sql> {
    (
        statement(),
        prop::collection::vec(any::<u8>(), 64),
        prop::sample::select(vec![" ", "  ", "\n", "\t", " /* x */ ", " -- c\n"]),
    )
        .prop_map(|(s, noise, gap)| {
            let mut text = String::with_capacity(s.text.len() + 32);
            let mut quoted = false;
            for (i, c) in s.text.chars().enumerate() {
                let n = noise[i % noise.len()];
                if c == '\'' {
                    quoted = !quoted;
                }
                if quoted {
                    text.push(c);
                } else if c == ' ' && n % 5 == 0 {
                    text.push_str(gap);
                } else if n % 2 == 0 {
                    text.push(c.to_ascii_lowercase());
                } else {
                    text.push(c.to_ascii_uppercase());
                }
            }
            Sql {
                text,
                writes: s.writes,
            }
        })
}

fn check_sql(s: &Sql) -> Result<(), TestCaseError> {
    // The server: PostgreSQL dialect with the compatibility rewrites.
    if let Ok(stmts) = PostgresCompatibilityParser::new().parse(&s.text) {
        let refused = stmts.iter().any(|st| check_server(st).is_err());
        if s.writes {
            prop_assert!(
                refused,
                "the server's guard let a write through: {}",
                s.text
            );
        } else if !stmts.is_empty() {
            prop_assert!(
                stmts.iter().all(|st| check(st).is_ok()),
                "the server's guard refused a read: {}",
                s.text
            );
        }
    }
    // `fnwatch sql`: DataFusion's parser, one statement only.
    if let Ok(stmts) = DFParser::parse_sql_with_dialect(&s.text, &GenericDialect {}) {
        let stmts: Vec<_> = stmts.into_iter().collect();
        if s.writes && stmts.len() == 1 {
            prop_assert!(
                read_only(&stmts[0]).is_err(),
                "fnwatch sql's guard let a write through: {}",
                s.text
            );
        }
    }
    Ok(())
}

fn run(cases: u32) {
    runner(cases)
        .run(&disguised(), |s| check_sql(&s))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn only_reads_pass_the_guards() {
    run(SHORT_CASES);
}

#[test]
#[ignore = "long: cargo test -p fnwatch-analytics -- --ignored fuzz"]
fn fuzz_sql_guard() {
    run(long_cases());
}
