//! The query handlers: datafusion-postgres's `DfSessionService` (which plans,
//! runs and encodes), wrapped so every statement runs under the time-out and
//! the row limit.
//!
//! Each result is pulled to its end (or to `max_rows + 1` rows) inside the
//! handler, under the deadline, before pgwire sends it: so a query that runs
//! too long is cancelled (dropping the DataFusion stream stops its work)
//! and answered with PostgreSQL's `57014` error, and a result that is cut is
//! announced by a NOTICE *before* its rows, where psql and JDBC show it. At
//! most `max_rows` encoded rows are held per statement.
//!
//! The time-out takes effect when DataFusion yields to the scheduler, which
//! it does at least once per batch read or spilled. A plan that computes
//! long from memory alone (a cross join of cross joins) can overrun it until
//! the server's memory pool makes it spill or fail; that is why the server
//! runs with a memory limit.
//! Catalogue queries (psql's `\d`, JDBC metadata) may return up to
//! [`CATALOGUE_ROWS`] rows even under a smaller `max_rows`, so `\d` stays
//! whole; they are bounded like every other statement otherwise (they used
//! to be exempt, which let `SELECT ... FROM pg_class` return without limit).
//!
//! Besides rows, the encoded result held per statement is bounded in bytes
//! (`max_result_bytes`: cut with a NOTICE) and so is one row
//! (`max_row_bytes`: the statement fails with SQLSTATE 54000), so a few
//! very wide rows cannot take the memory the row limit was meant to bound.

use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{Statement, visit_relations};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::{DfSessionService, Parser, pgwire};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::NoticeResponse;
use tracing::{debug, info, warn};

use super::auth::Authenticated;

use crate::session::clean_message;

/// The client's own `SET statement_timeout`, as datafusion-postgres's SET
/// hook stores it in the connection's metadata (milliseconds).
const CLIENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// The rows a catalogue query may return whatever `max_rows` is.
pub(crate) const CATALOGUE_ROWS: usize = 10_000;

/// The size limits of one statement's result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultLimits {
    pub(crate) max_rows: usize,
    pub(crate) max_result_bytes: usize,
    pub(crate) max_row_bytes: usize,
}

/// Runs statements through datafusion-postgres under the server's limits.
pub(crate) struct LimitedQueries {
    inner: Arc<DfSessionService>,
    parser: Arc<GatedParser>,
    timeout: Option<Duration>,
    max_rows: usize,
    max_result_bytes: usize,
    max_row_bytes: usize,
}

impl LimitedQueries {
    pub(crate) fn new(
        inner: Arc<DfSessionService>,
        timeout: Option<Duration>,
        limits: ResultLimits,
    ) -> LimitedQueries {
        let parser = Arc::new(GatedParser(ExtendedQueryHandler::query_parser(&*inner)));
        LimitedQueries {
            inner,
            parser,
            timeout,
            max_rows: limits.max_rows.max(1),
            max_result_bytes: limits.max_result_bytes.max(1),
            max_row_bytes: limits.max_row_bytes.max(1),
        }
    }

    /// The server's time-out, or the client's if it asked for a shorter one.
    fn deadline<C: ClientInfo>(&self, client: &C) -> Option<(Duration, bool)> {
        let own = client
            .metadata()
            .get(CLIENT_TIMEOUT_KEY)
            .and_then(|ms| ms.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        match (self.timeout, own) {
            (Some(server), Some(client)) if client < server => Some((client, false)),
            (Some(server), _) => Some((server, true)),
            (None, Some(client)) => Some((client, false)),
            (None, None) => None,
        }
    }

    /// Pulls a result's rows (at most `max_rows`, or [`CATALOGUE_ROWS`] for a
    /// catalogue query, and at most `max_result_bytes`), sending a NOTICE
    /// first when there were more; a row wider than `max_row_bytes` fails
    /// the statement.
    async fn bound<C>(
        &self,
        client: &mut C,
        response: Response,
        catalogue: bool,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Response::Query(mut result) = response else {
            return Ok(response);
        };
        let limit = if catalogue {
            self.max_rows.max(CATALOGUE_ROWS)
        } else {
            self.max_rows
        };
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut cut = None;
        while let Some(row) = result.data_rows().next().await {
            let row = row?;
            if rows.len() == limit {
                cut = Some(Cut::Rows(limit));
                break;
            }
            let size = row.data.len();
            if size > self.max_row_bytes {
                info!(
                    user = client.metadata().get(METADATA_USER).map(String::as_str).unwrap_or(""),
                    peer = %client.socket_addr(),
                    row_bytes = size,
                    max_row_bytes = self.max_row_bytes,
                    "row wider than the limit refused"
                );
                return Err(row_too_wide(size, self.max_row_bytes));
            }
            if bytes + size > self.max_result_bytes {
                cut = Some(Cut::Bytes(self.max_result_bytes));
                break;
            }
            bytes += size;
            rows.push(row);
        }
        if let Some(cut) = cut {
            info!(
                user = client.metadata().get(METADATA_USER).map(String::as_str).unwrap_or(""),
                peer = %client.socket_addr(),
                rows = rows.len(),
                bytes,
                limit = ?cut,
                "result cut at a limit"
            );
            client
                .send(PgWireBackendMessage::NoticeResponse(cut_notice(cut)))
                .await?;
        }
        let mut bounded = QueryResponse::new(
            result.row_schema(),
            futures::stream::iter(rows.into_iter().map(Ok)),
        );
        bounded.set_command_tag(result.command_tag());
        Ok(Response::Query(bounded))
    }
}

/// Whether a statement reads only the catalogue (`pg_catalog`,
/// `information_schema`): what psql's `\d` and JDBC's metadata calls send.
/// Those are exempt from the row limit, or a small `--max-rows` would cut
/// `\d events` short. A statement without any table is not exempt.
pub(crate) fn reads_only_catalogue(stmt: &Statement) -> bool {
    let mut tables = 0;
    let all = visit_relations(stmt, |name| {
        tables += 1;
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| {
                p.as_ident()
                    .map(|i| i.value.to_ascii_lowercase())
                    .unwrap_or_default()
            })
            .collect();
        let catalogue = match parts.as_slice() {
            [table] => table.starts_with("pg_"),
            [.., schema, _table] => schema == "pg_catalog" || schema == "information_schema",
            [] => false,
        };
        if catalogue {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    });
    all.is_continue() && tables > 0
}

/// For each statement of a simple query, whether it reads only the catalogue.
fn catalogue_statements(query: &str) -> Vec<bool> {
    PostgresCompatibilityParser::new()
        .parse(query)
        .map(|stmts| stmts.iter().map(reads_only_catalogue).collect())
        .unwrap_or_default()
}

/// Which limit cut a result.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Rows(usize),
    Bytes(usize),
}

fn cut_notice(cut: Cut) -> NoticeResponse {
    let message = match cut {
        Cut::Rows(n) => {
            format!("result cut to its first {n} rows: the server's row limit (--max-rows)")
        }
        Cut::Bytes(n) => {
            format!("result cut at {n} bytes: the server's result size limit (--max-result-bytes)")
        }
    };
    let mut info = ErrorInfo::new("NOTICE".into(), "01000".into(), message);
    info.hint =
        Some("add a LIMIT, aggregate, or narrow the time range to see every row you need".into());
    info.into()
}

fn row_too_wide(size: usize, limit: usize) -> PgWireError {
    let mut info = ErrorInfo::new(
        "ERROR".into(),
        // program_limit_exceeded
        "54000".into(),
        format!(
            "a result row of {size} bytes is wider than the server's limit of {limit} bytes \
             (--max-row-bytes)"
        ),
    );
    info.hint = Some("select fewer or shorter columns (substr, left) for wide values".into());
    PgWireError::UserError(Box::new(info))
}

fn timeout_error(limit: Duration, server_limit: bool) -> PgWireError {
    let whose = if server_limit {
        "the server's --query-timeout"
    } else {
        "this session's statement_timeout"
    };
    let mut info = ErrorInfo::new(
        "ERROR".into(),
        // query_canceled, as PostgreSQL answers a statement_timeout
        "57014".into(),
        format!(
            "canceling statement due to statement timeout: it ran longer than {} ({whose})",
            humantime::format_duration(limit)
        ),
    );
    info.hint = Some(
        "filter on `date` or `time` and `function` so less of the lake is read, or aggregate"
            .into(),
    );
    PgWireError::UserError(Box::new(info))
}

/// Refuses a statement on a connection whose start-up did not succeed. After
/// a refused start-up (wrong password, no TLS) pgwire answers FATAL and shuts
/// its side of the socket, but keeps reading it: without this, a client could
/// run statements, blind, without ever authenticating.
fn ensure_authenticated<C: ClientInfo>(client: &C) -> PgWireResult<()> {
    if client.session_extensions().get::<Authenticated>().is_some() {
        return Ok(());
    }
    warn!(
        peer = %client.socket_addr(),
        "statement on a connection that has not authenticated refused"
    );
    Err(PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        "28000".into(),
        "not authenticated".into(),
    ))))
}

/// datafusion-postgres's parser, behind the same check: an extended-protocol
/// `Parse` plans its statement, so a connection that has not authenticated
/// gets no planning (and so nothing to `Bind`, `Describe` or `Execute`).
pub(crate) struct GatedParser(Arc<Parser>);

#[async_trait]
impl QueryParser for GatedParser {
    type Statement = <Parser as QueryParser>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        ensure_authenticated(client)?;
        self.0.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.0.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.0.get_result_schema(stmt, column_format)
    }
}

fn user_of<C: ClientInfo>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

#[async_trait]
impl SimpleQueryHandler for LimitedQueries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ensure_authenticated(client)?;
        let user = user_of(client);
        let peer = client.socket_addr();
        debug!(user = %user, peer = %peer, query, "query");
        let started = Instant::now();
        let deadline = self.deadline(client);
        let work = async {
            let responses = SimpleQueryHandler::do_query(&*self.inner, client, query).await?;
            // One response per statement, in order.
            let catalogue = catalogue_statements(query);
            let mut out = Vec::with_capacity(responses.len());
            for (i, r) in responses.into_iter().enumerate() {
                let exempt = catalogue.get(i).copied().unwrap_or(false);
                out.push(self.bound(client, r, exempt).await?);
            }
            Ok(out)
        };
        let result = match deadline {
            Some((limit, server)) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(timeout_error(limit, server))),
            None => work.await,
        };
        log_outcome(&user, peer, started, &result);
        result
    }
}

#[async_trait]
impl ExtendedQueryHandler for LimitedQueries {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = GatedParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ensure_authenticated(client)?;
        let user = user_of(client);
        let peer = client.socket_addr();
        debug!(user = %user, peer = %peer, query = %portal.statement.statement.0, "query (extended protocol)");
        let started = Instant::now();
        let deadline = self.deadline(client);
        let work = async {
            let response =
                ExtendedQueryHandler::do_query(&*self.inner, client, portal, max_rows).await?;
            let catalogue = portal
                .statement
                .statement
                .1
                .as_ref()
                .is_some_and(|(stmt, _)| reads_only_catalogue(stmt));
            self.bound(client, response, catalogue).await
        };
        let result = match deadline {
            Some((limit, server)) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(timeout_error(limit, server))),
            None => work.await,
        };
        log_outcome(&user, peer, started, &result);
        result
    }
}

fn log_outcome<T>(
    user: &str,
    peer: std::net::SocketAddr,
    started: Instant,
    result: &PgWireResult<T>,
) {
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(_) => debug!(user, peer = %peer, elapsed_ms = ms, "query done"),
        Err(e) => debug!(user, peer = %peer, elapsed_ms = ms, error = %e, "query failed"),
    }
}

/// Turns DataFusion's errors into PostgreSQL errors with a SQLSTATE and
/// without DataFusion's internal prefixes, and logs every error sent.
pub(crate) struct Errors;

impl ErrorHandler for Errors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(e) = error
            && let Some(df) = e.downcast_ref::<DataFusionError>()
        {
            *error = PgWireError::UserError(Box::new(datafusion_error(df)));
        }
        debug!(
            user = client.metadata().get(METADATA_USER).map(String::as_str).unwrap_or(""),
            peer = %client.socket_addr(),
            error = %error,
            "error sent to client"
        );
    }
}

/// A DataFusion error as the client sees it.
pub(crate) fn datafusion_error(e: &DataFusionError) -> ErrorInfo {
    let message = clean_message(&e.to_string());
    let code = match e.find_root() {
        DataFusionError::SQL(..) => "42601",         // syntax_error
        DataFusionError::SchemaError(..) => "42703", // undefined_column
        DataFusionError::Plan(m) if m.contains("not found") && m.contains("able") => "42P01", // undefined_table
        DataFusionError::Plan(_) => "42000", // syntax_error_or_access_rule_violation
        DataFusionError::NotImplemented(_) => "0A000", // feature_not_supported
        DataFusionError::ResourcesExhausted(_) => "53200", // out_of_memory
        _ => "XX000",                        // internal_error
    };
    ErrorInfo::new("ERROR".into(), code.into(), message)
}
