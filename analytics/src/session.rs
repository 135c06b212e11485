//! A DataFusion session over a lake: `events`, `dead_letters` and the views of
//! `queries/views.sql`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
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
        let ctx = SessionContext::new_with_config(config);
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
        let statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| sql_error(sql, &e))?;
        let mut statements: Vec<Statement> = statements.into_iter().collect();
        if statements.len() != 1 {
            return Err(AnalyticsError::Sql {
                message: format!(
                    "expected exactly one SQL statement, found {}",
                    statements.len()
                ),
                context: String::new(),
            });
        }
        let stmt = statements.remove(0);
        if !is_read_only(&stmt) {
            return Err(AnalyticsError::Sql {
                message: "only queries are allowed here (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); the lake is changed only by fnwatch commands".into(),
                context: String::new(),
            });
        }
        let df = self.ctx.sql(sql).await.map_err(|e| sql_error(sql, &e))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| sql_error(sql, &e))?;
        Ok(QueryResult { schema, batches })
    }

    /// Runs a query the caller wrote and streams its batches (for reads too
    /// large to collect, such as the models' pass over a window).
    pub async fn stream(
        &self,
        sql: &str,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        let df = self.ctx.sql(sql).await.map_err(|e| sql_error(sql, &e))?;
        df.execute_stream().await.map_err(|e| sql_error(sql, &e))
    }

    /// Re-wraps an error from a stream returned by [`stream`](Self::stream).
    pub fn stream_error(sql: &str, e: &DataFusionError) -> AnalyticsError {
        sql_error(sql, e)
    }
}

fn is_read_only(stmt: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast::Statement as S;
    match stmt {
        Statement::Statement(s) => matches!(
            s.as_ref(),
            S::Query(_)
                | S::Explain { .. }
                | S::ExplainTable { .. }
                | S::ShowTables { .. }
                | S::ShowColumns { .. }
                | S::ShowVariable { .. }
        ),
        Statement::Explain(_) => true,
        _ => false,
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
}
