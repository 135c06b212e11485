//! The read-only guard: every statement a client sends is checked on its
//! syntax tree before DataFusion plans it. Only reads pass (SELECT, WITH,
//! VALUES, EXPLAIN, SHOW, DESCRIBE, cursors over queries), plus the session
//! chatter clients send (BEGIN/COMMIT/ROLLBACK, SET of session settings).
//!
//! It is an allow-list, so a statement DataFusion learns to run tomorrow is
//! refused until it is listed here; and it walks nested statements, so
//! `EXPLAIN ANALYZE INSERT ...`, `WITH x AS (DELETE ...) SELECT ...` and
//! `SELECT ... INTO t` are refused too. `SET` of DataFusion settings
//! (including `SET timezone = ...`, DataFusion's alias of
//! `datafusion.execution.time_zone`) is refused because the server's
//! DataFusion context is shared by every connection.
//!
//! On the server, [`check_server`] also refuses calls of functions that build
//! their whole result in memory from a size argument (`range`,
//! `generate_series` as a scalar, `repeat`, `lpad`, ...) when that size is
//! not a number within [`MAX_GENERATED`]: DataFusion evaluates them outside
//! the memory pool (even while planning, when the arguments are constants),
//! so `SELECT unnest(range(1, 2000000000)) FROM pg_class` would take 16 GB
//! before any row limit could act. `generate_series` in FROM streams its rows
//! and stays allowed.

use std::ops::ControlFlow;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, Query, Set, SetExpr,
    Statement, UnaryOperator, Value, Visit, Visitor,
};
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
    /// A function call that would build a result too large, or of a size
    /// not known before it runs.
    TooLarge { call: String, why: String },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::ReadOnly { what } => format!("{what} is not allowed: {READ_ONLY}"),
            Refusal::SharedSetting { name } => format!(
                "SET {name} is not allowed: the server's DataFusion settings are shared by all \
                 connections and cannot be changed over SQL"
            ),
            Refusal::TooLarge { call, why } => format!("{call} is not allowed here: {why}"),
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            Refusal::ReadOnly { .. } => {
                "run SELECT, WITH, EXPLAIN or SHOW; `fnwatch ingest`, `detect` and `compact` \
                 change the lake"
            }
            Refusal::SharedSetting { .. } => {
                "session settings such as statement_timeout, DateStyle, search_path, \
                 extra_float_digits and application_name can be set"
            }
            Refusal::TooLarge { .. } => {
                "give the sizes as numbers within the limit, or use generate_series(...) in FROM, \
                 which streams its rows"
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
            // program_limit_exceeded
            Refusal::TooLarge { .. } => "54000",
        };
        let mut info = ErrorInfo::new("ERROR".into(), code.into(), self.message());
        info.hint = Some(self.hint().into());
        PgWireError::UserError(Box::new(info))
    }
}

/// Checks one parsed statement against the allow-list.
pub fn check(stmt: &Statement) -> Result<(), Refusal> {
    let mut walker = Walker { sizes: false };
    match stmt.visit(&mut walker) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// [`check`], and the sizes of functions that build their result in memory
/// (what the SQL server runs).
pub fn check_server(stmt: &Statement) -> Result<(), Refusal> {
    let mut walker = Walker { sizes: true };
    match stmt.visit(&mut walker) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The most elements (list items, or characters) one call of a
/// result-building function may produce on the server.
pub const MAX_GENERATED: i128 = 1 << 20;

/// Visits the statement and every statement, query and expression nested in
/// it.
struct Walker {
    /// Also check the sizes of result-building function calls.
    sizes: bool,
}

impl Visitor for Walker {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, stmt: &Statement) -> ControlFlow<Refusal> {
        match allowed(stmt) {
            Ok(()) => ControlFlow::Continue(()),
            Err(r) => ControlFlow::Break(r),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        if !self.sizes {
            return ControlFlow::Continue(());
        }
        match generated_size(expr) {
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
    // `timezone` is DataFusion's alias of `datafusion.execution.time_zone`.
    if plain.contains('.') || plain.starts_with("datafusion") || plain == "timezone" {
        return Err(Refusal::SharedSetting { name: text });
    }
    Ok(())
}

/// Functions whose result is built whole in memory from a size argument,
/// and which arguments give the size.
fn size_rule(name: &str) -> Option<SizeRule> {
    match name {
        "range" | "generate_series" | "gen_series" => Some(SizeRule::Series),
        "repeat" | "array_repeat" | "lpad" | "rpad" | "array_resize" => Some(SizeRule::Count(1)),
        _ => None,
    }
}

enum SizeRule {
    /// (stop) or (start, stop[, step]): the number of elements.
    Series,
    /// The argument at this position is the count.
    Count(usize),
}

/// Refuses a call of a result-building function whose size is not an
/// integer literal within [`MAX_GENERATED`].
fn generated_size(expr: &Expr) -> Result<(), Refusal> {
    let Expr::Function(f) = expr else {
        return Ok(());
    };
    let name = f
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default();
    let Some(rule) = size_rule(&name) else {
        return Ok(());
    };
    let args: Vec<&Expr> = match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                FunctionArg::Named {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                }
                | FunctionArg::ExprNamed {
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let call = format!("{name}(...)");
    let unknown = || Refusal::TooLarge {
        call: call.clone(),
        why: format!(
            "on this server its size must be an integer literal (at most {MAX_GENERATED} \
             elements), as it is built whole in memory"
        ),
    };
    let size: i128 = match rule {
        SizeRule::Series => {
            let n: Vec<i128> = args
                .iter()
                .map(|e| integer(e))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(unknown)?;
            let (start, stop, step) = match n.as_slice() {
                [stop] => (0, *stop, 1),
                [start, stop] => (*start, *stop, 1),
                [start, stop, step] => (*start, *stop, *step),
                _ => return Err(unknown()),
            };
            if step == 0 {
                0
            } else {
                ((stop - start) / step).max(0) + 1
            }
        }
        SizeRule::Count(i) => args.get(i).and_then(|e| integer(e)).ok_or_else(unknown)?,
    };
    if size > MAX_GENERATED {
        return Err(Refusal::TooLarge {
            call,
            why: format!(
                "it would build {size} elements in memory; this server allows at most \
                 {MAX_GENERATED} per call"
            ),
        });
    }
    Ok(())
}

/// An integer literal, possibly signed or in parentheses.
fn integer(e: &Expr) -> Option<i128> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<i128>().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => integer(expr).map(|n| -n),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        }
        | Expr::Nested(expr) => integer(expr),
        _ => None,
    }
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
    let refusal = check_server(statement).err()?;
    tracing::info!(
        user = client.metadata().get("user").map(String::as_str).unwrap_or(""),
        peer = %client.socket_addr(),
        refused = %refusal.message(),
        "statement refused"
    );
    Some(refusal.into_error())
}
