//! A DataFusion session over a lake: `events`, `dead_letters` and the views of
//! `queries/views.sql`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{QueryPlanner, SQLOptions, SessionContext};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use fnwatch_ingest::lake::{ALERTS, DEAD_LETTERS, EVENTS, Lake};
use tracing::debug;

use crate::error::{AnalyticsError, Result};

/// The views every session has, compiled in from `queries/views.sql`.
pub const VIEWS_SQL: &str = include_str!("../../queries/views.sql");

/// A query result: the schema (even with no rows) and the batches.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// SQL over one lake.
pub struct LakeSession {
    ctx: SessionContext,
}

impl LakeSession {
    /// Opens the lake at `spec` and registers its tables and the standard views.
    pub async fn open(spec: &str) -> Result<LakeSession> {
        Self::open_with_views(spec, VIEWS_SQL, "queries/views.sql").await
    }

    /// As [`open`](Self::open), with another views file.
    pub async fn open_with_views(spec: &str, views: &str, views_name: &str) -> Result<LakeSession> {
        let lake = Lake::open(spec).await?;
        Self::from_lake(&lake, views, views_name).await
    }

    /// Registers an already open lake.
    pub async fn from_lake(lake: &Lake, views: &str, views_name: &str) -> Result<LakeSession> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            );
        // Every plan this context executes is checked again before it runs
        // (see `ReadOnlyPlanner`), whoever planned it.
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_query_planner(Arc::new(ReadOnlyPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let alerts = lake.alerts().await?;
        let mut tables = vec![(EVENTS, &lake.events), (DEAD_LETTERS, &lake.dead_letters)];
        if let Some(a) = &alerts {
            tables.push((ALERTS, a));
        } else {
            // No detection has run yet: an empty `alerts`, so saved queries still plan.
            let empty = datafusion::datasource::MemTable::try_new(
                fnwatch_ingest::schema::alerts_schema(),
                vec![vec![]],
            )
            .map_err(|e| AnalyticsError::Execution(format!("registering `alerts`: {e}")))?;
            ctx.register_table(ALERTS, Arc::new(empty))
                .map_err(|e| AnalyticsError::Execution(format!("registering `alerts`: {e}")))?;
        }
        for (name, table) in tables {
            table
                .update_datafusion_session(&ctx.state())
                .map_err(|e| AnalyticsError::Execution(format!("registering `{name}`: {e}")))?;
            let provider = table
                .table_provider()
                .await
                .map_err(|e| AnalyticsError::Execution(format!("registering `{name}`: {e}")))?;
            ctx.register_table(name, provider)
                .map_err(|e| AnalyticsError::Execution(format!("registering `{name}`: {e}")))?;
        }
        let session = LakeSession { ctx };
        session.run_script(views, views_name).await?;
        Ok(session)
    }

    /// The DataFusion context, for callers that build plans themselves.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs every statement of a saved SQL file (e.g. view definitions).
    pub async fn run_script(&self, sql: &str, name: &str) -> Result<()> {
        let statements =
            DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).map_err(|e| {
                AnalyticsError::SavedQuery {
                    file: name.to_string(),
                    message: clean_message(&e.to_string()),
                }
            })?;
        for stmt in statements {
            let text = stmt.to_string();
            debug!(file = name, statement = %text, "running saved statement");
            self.ctx
                .sql(&text)
                .await
                .map_err(|e| AnalyticsError::SavedQuery {
                    file: name.to_string(),
                    message: clean_message(&e.to_string()),
                })?
                .collect()
                .await
                .map_err(|e| AnalyticsError::SavedQuery {
                    file: name.to_string(),
                    message: clean_message(&e.to_string()),
                })?;
        }
        Ok(())
    }

    /// Runs one read-only query and collects the result.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let df = self.read_only_plan(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| sql_error(sql, &e))?;
        Ok(QueryResult { schema, batches })
    }

    /// Runs a query the caller wrote and streams its batches (for reads too
    /// large to collect, such as the models' pass over a window). Only
    /// reads, as for [`query`](Self::query).
    pub async fn stream(
        &self,
        sql: &str,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        let df = self.read_only_plan(sql).await?;
        df.execute_stream().await.map_err(|e| sql_error(sql, &e))
    }

    /// Plans exactly one statement that only reads, checked twice: on its
    /// syntax tree (the allow-list of [`read_only`], nested statements such as
    /// `EXPLAIN ANALYZE INSERT ...` included) and on its logical plan
    /// (DataFusion's [`SQLOptions`] with DDL, DML, COPY and statements such as
    /// SET refused), so a statement the parser learns tomorrow cannot slip
    /// through either check alone.
    async fn read_only_plan(&self, sql: &str) -> Result<DataFrame> {
        let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| sql_error(sql, &e))?;
        let statements: Vec<Statement> = statements.into_iter().collect();
        let [stmt] = statements.as_slice() else {
            return Err(AnalyticsError::Sql {
                message: format!(
                    "expected exactly one SQL statement, found {}",
                    statements.len()
                ),
                context: String::new(),
            });
        };
        read_only(stmt).map_err(|what| refused(&what))?;
        let plan = self
            .ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(|e| sql_error(sql, &e))?;
        verify_read_only(&plan).map_err(|e| {
            refused(&format!(
                "this statement ({})",
                clean_message(&e.to_string())
            ))
        })?;
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| sql_error(sql, &e))
    }

    /// Re-wraps an error from a stream returned by [`stream`](Self::stream).
    pub fn stream_error(sql: &str, e: &DataFusionError) -> AnalyticsError {
        sql_error(sql, e)
    }
}

/// What a read may plan: no DDL, no DML (COPY included), no statements
/// (SET, transactions, PREPARE).
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Checks a logical plan, subqueries and the inputs of EXPLAIN included,
/// against [`read_only_options`].
pub fn verify_read_only(plan: &LogicalPlan) -> datafusion::error::Result<()> {
    read_only_options().verify_plan(plan)
}

fn refused(what: &str) -> AnalyticsError {
    AnalyticsError::Sql {
        message: format!(
            "{what} is not allowed: only queries are allowed here (SELECT, WITH, VALUES, EXPLAIN, \
             SHOW, DESCRIBE); the lake is changed only by fnwatch commands"
        ),
        context: String::new(),
    }
}

/// The syntax-tree allow-list for one statement: a query, or EXPLAIN / SHOW /
/// DESCRIBE of one; every nested statement and query is walked by the
/// server's guard too (`WITH x AS (DELETE ...)`, `SELECT ... INTO`).
/// The error names what was refused.
pub fn read_only(stmt: &Statement) -> std::result::Result<(), String> {
    use datafusion::sql::sqlparser::ast::Statement as S;
    match stmt {
        Statement::Statement(s) => {
            crate::server::guard::check(s).map_err(|r| match r {
                crate::server::guard::Refusal::ReadOnly { what } => what,
                crate::server::guard::Refusal::SharedSetting { name } => format!("SET {name}"),
                crate::server::guard::Refusal::TooLarge { call, .. } => call,
            })?;
            match s.as_ref() {
                S::Query(_)
                | S::ExplainTable { .. }
                | S::ShowTables { .. }
                | S::ShowColumns { .. }
                | S::ShowVariable { .. }
                | S::ShowFunctions { .. } => Ok(()),
                S::Explain { statement, .. } => read_only(&Statement::Statement(statement.clone())),
                other => Err(crate::server::guard::verb(&other.to_string())),
            }
        }
        Statement::Explain(e) => read_only(&e.statement),
        Statement::CopyTo(_) => Err("COPY".into()),
        Statement::CreateExternalTable(_) => Err("CREATE EXTERNAL TABLE".into()),
        Statement::Reset(_) => Err("RESET".into()),
    }
}

/// The query planner of every lake session: DataFusion's, after checking
/// the plan with [`verify_read_only`]. Whatever path a statement took to a
/// plan (`fnwatch sql`, a saved query, the SQL server and its hooks), a
/// write is refused before it can run. (DDL never reaches a physical
/// planner; the syntax checks refuse it.)
#[derive(Debug)]
struct ReadOnlyPlanner;

#[async_trait]
impl QueryPlanner for ReadOnlyPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        verify_read_only(logical_plan)?;
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

/// DataFusion's message without its internal category prefixes.
pub fn clean_message(msg: &str) -> String {
    let mut m = msg.trim();
    for prefix in [
        "SQL error: ",
        "Error during planning: ",
        "Schema error: ",
        "ParserError(\"",
        "TokenizerError(\"",
        "Optimizer rule",
        "External error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    let m = m.trim_end_matches("\")");
    m.replace("\\\"", "\"")
}

/// A user's SQL error: the cleaned message, and the query line with a caret
/// under the position when DataFusion reports one.
fn sql_error(sql: &str, e: &DataFusionError) -> AnalyticsError {
    let raw = e.to_string();
    let message = clean_message(&raw);
    let mut context = String::new();
    if let Some((line, col)) = find_position(&raw)
        && let Some(text) = sql.lines().nth(line.saturating_sub(1))
    {
        let pad: String = text
            .chars()
            .take(col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        context = format!("\n  | {text}\n  | {pad}^");
    }
    let is_user = matches!(
        e.find_root(),
        DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
    );
    if is_user {
        AnalyticsError::Sql { message, context }
    } else {
        AnalyticsError::Execution(message)
    }
}

/// Finds `Line: N, Column: M` (sqlparser's position format) in a message.
fn find_position(msg: &str) -> Option<(usize, usize)> {
    let i = msg.find("Line: ")?;
    let rest = &msg[i + 6..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let col: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_found() {
        assert_eq!(
            find_position(
                "sql parser error: Expected: end of statement, found: x at Line: 2, Column: 7"
            ),
            Some((2, 7))
        );
        assert_eq!(find_position("nothing"), None);
    }

    #[test]
    fn messages_lose_internal_prefixes() {
        assert_eq!(
            clean_message("Error during planning: table 'x' not found"),
            "table 'x' not found"
        );
    }

    /// A context that plans with [`ReadOnlyPlanner`], as lake sessions do.
    fn read_only_context() -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_query_planner(Arc::new(ReadOnlyPlanner))
            .build();
        SessionContext::new_with_state(state)
    }

    /// The plan check alone (without the syntax allow-list) refuses writes,
    /// also when they hide inside EXPLAIN ANALYZE, and lets reads through.
    #[tokio::test]
    async fn plan_check_refuses_writes_inside_explain() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1)")
            .await
            .expect("create")
            .collect()
            .await
            .expect("create runs");
        for sql in [
            "EXPLAIN ANALYZE INSERT INTO t VALUES (2)",
            "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
            "INSERT INTO t VALUES (2)",
            "CREATE VIEW v AS SELECT 1",
            "DROP TABLE t",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let plan = ctx.state().create_logical_plan(sql).await.expect("plans");
            assert!(verify_read_only(&plan).is_err(), "{sql} passed");
        }
        for sql in ["SELECT * FROM t", "EXPLAIN ANALYZE SELECT count(*) FROM t"] {
            let plan = ctx.state().create_logical_plan(sql).await.expect("plans");
            verify_read_only(&plan).expect(sql);
        }
    }

    /// The session's planner refuses a write even when the caller skipped
    /// every other check (`SessionContext::sql` allows DML): no file is
    /// written.
    #[tokio::test]
    async fn planner_refuses_writes_whoever_planned_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("x.csv");
        let ctx = read_only_context();
        let sql = format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{}'", out.display());
        let df = ctx.sql(&sql).await.expect("plans with the default options");
        let err = df.collect().await.expect_err("must be refused");
        assert!(err.to_string().contains("not supported"), "{err}");
        let df = ctx
            .sql(&format!("COPY (SELECT 1) TO '{}'", out.display()))
            .await
            .expect("plans");
        assert!(df.collect().await.is_err());
        assert!(!out.exists(), "a refused COPY wrote its file");
        let df = ctx.sql("SELECT 41 + 1").await.expect("plans");
        let batches = df.collect().await.expect("a read runs");
        assert_eq!(batches[0].num_rows(), 1);
    }
}
