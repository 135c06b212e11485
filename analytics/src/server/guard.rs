//! The read-only guard: every statement a client sends is checked on its
//! syntax tree before DataFusion plans it. Only reads pass (SELECT, WITH,
//! VALUES, EXPLAIN, SHOW, DESCRIBE, cursors over queries), plus the session
//! chatter clients send (BEGIN/COMMIT/ROLLBACK, SET of session settings).
//!
//! It is an allow-list, so a statement DataFusion learns to run tomorrow is
//! refused until it is listed here; and it walks nested statements, so
//! `EXPLAIN ANALYZE INSERT ...`, `WITH x AS (DELETE ...) SELECT ...` and
//! `SELECT ... INTO t` are refused too. `SET` of DataFusion settings is
//! refused because the server's DataFusion context is shared by every
//! connection.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{ObjectName, Query, Set, SetExpr, Statement, Visit, Visitor};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Why statements that would change something are refused.
pub const READ_ONLY: &str =
    "the lake is read-only over SQL; it is changed only by fnwatch commands";

/// A refused statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// DDL, DML, COPY and anything else that is not a read.
    ReadOnly { what: String },
    /// `SET` of a setting shared by every connection.
    SharedSetting { name: String },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::ReadOnly { what } => format!("{what} is not allowed: {READ_ONLY}"),
            Refusal::SharedSetting { name } => format!(
                "SET {name} is not allowed: the server's DataFusion settings are shared by all \
                 connections and cannot be changed over SQL"
            ),
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            Refusal::ReadOnly { .. } => {
                "run SELECT, WITH, EXPLAIN or SHOW; `fnwatch ingest`, `detect` and `compact` \
                 change the lake"
            }
            Refusal::SharedSetting { .. } => {
                "session settings such as statement_timeout, TimeZone, DateStyle, search_path \
                 and application_name can be set"
            }
        }
    }

    /// The error sent to the client: SQLSTATE 25006 (read_only_sql_transaction,
    /// what PostgreSQL answers in a read-only transaction) or 42501
    /// (insufficient_privilege) for settings.
    pub fn into_error(self) -> PgWireError {
        let code = match self {
            Refusal::ReadOnly { .. } => "25006",
            Refusal::SharedSetting { .. } => "42501",
        };
        let mut info = ErrorInfo::new("ERROR".into(), code.into(), self.message());
        info.hint = Some(self.hint().into());
        PgWireError::UserError(Box::new(info))
    }
}

/// Checks one parsed statement.
pub fn check(stmt: &Statement) -> Result<(), Refusal> {
    let mut walker = Walker;
    match stmt.visit(&mut walker) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Visits the statement and every statement and query nested in it.
struct Walker;

impl Visitor for Walker {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<Refusal> {
        match allowed(stmt) {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => ControlFlow::Break(r),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if selects_into(&query.body) {
            return ControlFlow::Break(Refusal::ReadOnly {
                what: "SELECT ... INTO".into(),
            });
        }
        ControlFlow::Continue(())
    }
}

/// The allow-list, for one statement (nested ones are visited separately).
fn allowed(stmt: &Statement) -> Result<(), Refusal> {
    use Statement as S;
    match stmt {
        S::Query(_)
        | S::Explain { .. }
        | S::ExplainTable { .. }
        | S::ShowFunctions { .. }
        | S::ShowVariable { .. }
        | S::ShowStatus { .. }
        | S::ShowVariables { .. }
        | S::ShowCreate { .. }
        | S::ShowColumns { .. }
        | S::ShowCatalogs { .. }
        | S::ShowDatabases { .. }
        | S::ShowSchemas { .. }
        | S::ShowObjects(_)
        | S::ShowTables { .. }
        | S::ShowViews { .. }
        | S::ShowCollation { .. }
        | S::ShowCharset(_)
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        // Cursors: the query of DECLARE is visited like any other.
        | S::Declare { .. }
        | S::Fetch { .. }
        | S::Close { .. } => Ok(()),
        S::Set(set) => check_set(set),
        other => Err(Refusal::ReadOnly {
            what: verb(&other.to_string()),
        }),
    }
}

fn check_set(set: &Set) -> Result<(), Refusal> {
    match set {
        Set::SingleAssignment { variable, .. } => check_variable(variable),
        Set::ParenthesizedAssignments { variables, .. } => {
            variables.iter().try_for_each(check_variable)
        }
        Set::MultipleAssignments { assignments } => {
            assignments.iter().try_for_each(|a| check_variable(&a.name))
        }
        // TIME ZONE, NAMES, TRANSACTION, ROLE, SESSION AUTHORIZATION: session
        // chatter of clients; answered without touching shared state.
        _ => Ok(()),
    }
}

/// PostgreSQL session settings have plain names; DataFusion's are
/// namespaced (`datafusion.execution.batch_size`) and live in the context
/// every connection shares.
fn check_variable(name: &ObjectName) -> Result<(), Refusal> {
    let text = name.to_string();
    let plain = text.trim_matches('"').to_ascii_lowercase();
    if plain.contains('.') || plain.starts_with("datafusion") {
        return Err(Refusal::SharedSetting { name: text });
    }
    Ok(())
}

/// Whether a query body (through set operations and parentheses) is a
/// `SELECT ... INTO`, which creates a table.
fn selects_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(s) => s.into.is_some(),
        SetExpr::Query(q) => selects_into(&q.body),
        SetExpr::SetOperation { left, right, .. } => selects_into(left) || selects_into(right),
        _ => false,
    }
}

/// The statement's kind as people say it: `INSERT`, `CREATE TABLE`,
/// `DROP VIEW`, `COPY`.
pub fn verb(sql: &str) -> String {
    const OBJECTS: &[&str] = &[
        "TABLE",
        "VIEW",
        "SCHEMA",
        "DATABASE",
        "INDEX",
        "FUNCTION",
        "PROCEDURE",
        "ROLE",
        "USER",
        "EXTENSION",
        "SEQUENCE",
        "TYPE",
        "CATALOG",
        "TRIGGER",
        "POLICY",
        "SECRET",
        "MACRO",
        "DOMAIN",
        "SERVER",
        "STAGE",
    ];
    const FILLERS: &[&str] = &[
        "OR",
        "REPLACE",
        "IF",
        "NOT",
        "EXISTS",
        "TEMP",
        "TEMPORARY",
        "EXTERNAL",
        "UNLOGGED",
        "GLOBAL",
        "LOCAL",
        "UNIQUE",
    ];
    let words: Vec<String> = sql
        .split_whitespace()
        .take(6)
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .to_ascii_uppercase()
        })
        .collect();
    let Some(first) = words.first() else {
        return "this statement".into();
    };
    if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") {
        let mut out = vec![first.clone()];
        for w in &words[1..] {
            if FILLERS.contains(&w.as_str()) {
                continue;
            }
            if w == "MATERIALIZED" {
                out.push(w.clone());
                continue;
            }
            if OBJECTS.contains(&w.as_str()) {
                out.push(w.clone());
            }
            break;
        }
        return out.join(" ");
    }
    first.clone()
}

/// The guard as a datafusion-postgres query hook: it runs first, for the
/// simple and the extended protocol, and answers a refused statement with
/// its error; anything else goes on to the next hook.
#[derive(Debug, Default)]
pub struct ReadOnlyGuard;

#[async_trait]
impl QueryHook for ReadOnlyGuard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refuse(statement, &*client).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refuse(statement, client).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refuse(statement, &*client).map(Err)
    }
}

fn refuse<C: ClientInfo + ?Sized>(statement: &Statement, client: &C) -> Option<PgWireError> {
    let refusal = check(statement).err()?;
    tracing::info!(
        user = client.metadata().get("user").map(String::as_str).unwrap_or(""),
        peer = %client.socket_addr(),
        refused = %refusal.message(),
        "statement refused"
    );
    Some(refusal.into_error())
}
