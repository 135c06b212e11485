//! `fnwatch server`: the lake over the PostgreSQL wire protocol, so psql,
//! JDBC tools (DBeaver, Metabase), Grafana and any PostgreSQL driver can
//! query it.
//!
//! Built from the pieces of [`datafusion_postgres`] rather than its `serve`
//! (which has no password authentication and goes on without TLS when the
//! TLS files are wrong):
//!
//! - its `DfSessionService` plans and runs statements on the lake's
//!   DataFusion context, with its PostgreSQL-compatibility rewrites and the
//!   `pg_catalog` of `datafusion-pg-catalog` (what `\d`, `\dt` and JDBC's
//!   metadata calls read), and its hooks for `SET`/`SHOW`, transactions and
//!   cursors;
//! - [`guard`] refuses everything but reads, before planning;
//! - `limits` runs each statement under the time-out and the row limit
//!   (and all of them share a memory pool of `max_memory`);
//! - [`auth`] does SCRAM-SHA-256 (or, on loopback only, no authentication);
//! - `tls` serves TLS from PEM files when asked.
//!
//! The lake is re-read every `refresh` interval when new commits landed, so
//! a long-running server sees new ingests and alerts.
//!
//! ```no_run
//! # async fn demo() -> fnwatch_analytics::Result<()> {
//! use fnwatch_analytics::server::{Access, Server, ServerConfig, Users};
//! let session = fnwatch_analytics::session::LakeSession::open("./lake").await?;
//! let config = ServerConfig {
//!     listen: "127.0.0.1:5433".parse().expect("an address"),
//!     access: Access::Passwords(Users::default().with("analyst", "s3cret")),
//!     tls: None,
//!     allow_plaintext: false,
//!     query_timeout: Some(std::time::Duration::from_secs(60)),
//!     max_rows: 100_000,
//!     max_memory: Some(4 << 30),
//!     refresh: None,
//!     limits: Default::default(),
//! };
//! let server = Server::bind("./lake", session, config).await?;
//! server.run(std::future::pending()).await
//! # }
//! ```

pub mod auth;
pub mod config;
pub mod guard;
mod limits;
mod tls;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, QueryHook};
use fnwatch_ingest::lake::Lake;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::api::{auth::StartupHandler, cancel::CancelHandler};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

pub use config::{Access, Limits, ServerConfig, TlsFiles, Users};

use crate::error::{AnalyticsError, Result};
use crate::session::{LakeSession, VIEWS_SQL};
use auth::{AuthShared, Startup};
use limits::{Errors, LimitedQueries, ResultLimits};

/// A bound, not yet serving, endpoint.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
    ctx: SessionContext,
    lake: String,
    refresh: Option<Duration>,
    max_connections: usize,
}

/// The warning for a server that takes passwords on a network address
/// without TLS: they cross the network where others can read them (SCRAM
/// hides the password itself, not the queries and results, and a
/// man-in-the-middle can relay the exchange).
pub fn plaintext_password_warning(config: &ServerConfig) -> Option<String> {
    let passwords = matches!(config.access, Access::Passwords(_));
    let plain = config.tls.is_none() || config.allow_plaintext;
    if passwords && plain && !config.listen.ip().is_loopback() {
        Some(format!(
            "password logins on {} without TLS: queries, results and the login exchange cross \
             the network unencrypted; give --tls-cert and --tls-key{}",
            config.listen,
            if config.tls.is_some() {
                " without --allow-plaintext"
            } else {
                ""
            }
        ))
    } else {
        None
    }
}

impl Server {
    /// Prepares the context (adds `pg_catalog`), the authenticator and TLS,
    /// and binds the address. `lake` is the lake's spec, for refreshes.
    pub async fn bind(lake: &str, session: LakeSession, config: ServerConfig) -> Result<Server> {
        if let Some(warning) = plaintext_password_warning(&config) {
            warn!("{warning}");
        }
        let ctx = with_runtime_limits(session.context(), config.max_memory, &config.limits)?;
        let catalog = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            &catalog,
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| AnalyticsError::Execution(format!("adding pg_catalog: {e}")))?;

        let (tls, cert_pem) = match &config.tls {
            Some(files) => {
                let (acceptor, pem) = tls::acceptor(files)?;
                (Some(acceptor), Some(pem))
            }
            None => (None, None),
        };
        let connections = Arc::new(ConnectionManager::new());
        let auth = match &config.access {
            Access::Passwords(users) => AuthShared::scram(users, cert_pem, connections.clone())?,
            Access::Open => AuthShared::open(connections.clone()),
        }
        .requiring_tls(tls.is_some() && !config.allow_plaintext)
        .limiting_failures(config.limits.max_failed_logins);

        // The guard first: a refused statement never reaches another hook.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(guard::ReadOnlyGuard),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let service = Arc::new(DfSessionService::new_with_hooks(
            Arc::new(ctx.clone()),
            hooks,
        ));
        let handlers = Arc::new(Handlers {
            queries: Arc::new(LimitedQueries::new(
                service,
                config.query_timeout,
                ResultLimits {
                    max_rows: config.max_rows,
                    max_result_bytes: config.limits.max_result_bytes,
                    max_row_bytes: config.limits.max_row_bytes,
                },
            )),
            auth: Arc::new(auth),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        });

        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            AnalyticsError::Server(format!("cannot listen on {}: {e}", config.listen))
        })?;
        let local_addr = listener.local_addr().map_err(|e| {
            AnalyticsError::Server(format!("cannot listen on {}: {e}", config.listen))
        })?;
        Ok(Server {
            listener,
            local_addr,
            tls,
            handlers,
            ctx,
            lake: lake.to_string(),
            refresh: config.refresh,
            max_connections: config.limits.max_connections.max(1),
        })
    }

    /// The address actually bound (the port, when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The authentication method, for the start-up banner.
    pub fn auth_method(&self) -> &'static str {
        self.handlers.auth.method()
    }

    /// Serves connections until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        info!(
            listen = %self.local_addr,
            tls = self.tls.is_some(),
            auth = self.handlers.auth.method(),
            "serving SQL"
        );
        let refresher = self
            .refresh
            .map(|every| tokio::spawn(refresh_loop(self.ctx.clone(), self.lake.clone(), every)));
        tokio::pin!(shutdown);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: wait, go on.
                            warn!(error = %e, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let slot = Slot::take(&open);
                    let over = slot.count > self.max_connections;
                    if over {
                        warn!(peer = %peer, open = slot.count - 1, max_connections = self.max_connections, "too many connections; refusing one");
                    } else {
                        debug!(peer = %peer, "connection opened");
                    }
                    let refused = Arc::new(Notify::new());
                    let handlers = Arc::new(Connection {
                        shared: self.handlers.clone(),
                        refused: refused.clone(),
                        over_limit: over.then_some(self.max_connections),
                    });
                    let tls = self.tls.clone();
                    tokio::spawn(async move {
                        let serve = pgwire::tokio::process_socket(socket, tls, handlers);
                        // After a refused start-up pgwire sends the FATAL error
                        // and stops writing, but goes on reading: close the
                        // connection, as PostgreSQL does, once the error is out.
                        let close = async {
                            refused.notified().await;
                            tokio::time::sleep(REFUSED_LINGER).await;
                        };
                        tokio::select! {
                            served = serve => {
                                if let Err(e) = served {
                                    debug!(peer = %peer, error = %e, "connection ended with an error");
                                }
                            }
                            () = close => debug!(peer = %peer, "refused connection closed"),
                        }
                        debug!(peer = %peer, "connection closed");
                        drop(slot);
                    });
                }
            }
        }
        if let Some(task) = refresher {
            task.abort();
        }
        info!("stopped serving SQL");
        Ok(())
    }
}

/// One open connection, counted until dropped.
struct Slot {
    open: Arc<std::sync::atomic::AtomicUsize>,
    /// Open connections with this one.
    count: usize,
}

impl Slot {
    fn take(open: &Arc<std::sync::atomic::AtomicUsize>) -> Slot {
        let count = open.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Slot {
            open: open.clone(),
            count,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The lake's context (same catalogue, settings and object stores) with a
/// memory pool of `limit` bytes shared by all queries, so one query cannot
/// take the machine's memory (sorts, joins and aggregations spill or fail
/// with "Resources exhausted" instead), and spills kept to the limits'
/// folder and size.
pub(crate) fn with_runtime_limits(
    ctx: &SessionContext,
    limit: Option<usize>,
    limits: &Limits,
) -> Result<SessionContext> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    let state = ctx.state();
    let mode = match &limits.spill_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                AnalyticsError::Server(format!(
                    "cannot create the spill folder {}: {e}",
                    dir.display()
                ))
            })?;
            DiskManagerMode::Directories(vec![dir.clone()])
        }
        None => DiskManagerMode::OsTmpDirectory,
    };
    let disk = DiskManagerBuilder::default()
        .with_mode(mode)
        .with_max_temp_directory_size(limits.max_spill);
    let mut builder =
        RuntimeEnvBuilder::from_runtime_env(state.runtime_env()).with_disk_manager_builder(disk);
    if let Some(limit) = limit {
        builder = builder.with_memory_limit(limit, 1.0);
    }
    let runtime = builder
        .build_arc()
        .map_err(|e| AnalyticsError::Execution(format!("setting the memory limit: {e}")))?;
    let state = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// How long a connection whose start-up was refused stays open, so the
/// FATAL error (sent right after the refusal) reaches the client.
const REFUSED_LINGER: Duration = Duration::from_millis(500);

/// The pgwire handlers every connection shares.
struct Handlers {
    queries: Arc<LimitedQueries>,
    auth: Arc<AuthShared>,
    cancel: Arc<DefaultCancelHandler>,
}

/// One connection's handlers: the shared ones, and a signal for a refused
/// start-up.
struct Connection {
    shared: Arc<Handlers>,
    refused: Arc<Notify>,
    /// Set (to the limit) when this connection is over `max_connections`:
    /// its start-up is refused.
    over_limit: Option<usize>,
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.shared.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.shared.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        // Its own: it holds the SASL exchange's state.
        Arc::new(Startup::new(
            self.shared.auth.clone(),
            self.refused.clone(),
            self.over_limit,
        ))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Errors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.shared.cancel.clone()
    }
}

/// The versions of the lake's tables, to notice new commits.
async fn versions(lake: &Lake) -> Result<[Option<u64>; 3]> {
    let alerts = lake.alerts().await?;
    Ok([
        lake.events.version(),
        lake.dead_letters.version(),
        alerts.as_ref().and_then(|t| t.version()),
    ])
}

/// Every `every`, re-opens the lake; when a table has a new version, swaps
/// in a fresh `public` schema (tables and views) in one step, so running
/// queries finish on the snapshot they started with.
async fn refresh_loop(ctx: SessionContext, spec: String, every: Duration) {
    // Unknown at first: the first tick re-reads once, which also covers
    // commits that landed while the server started.
    let mut seen: Option<[Option<u64>; 3]> = None;
    loop {
        tokio::time::sleep(every).await;
        let lake = match Lake::open(&spec).await {
            Ok(l) => l,
            Err(e) => {
                warn!(lake = %spec, error = %e, "cannot re-read the lake; serving the last snapshot");
                continue;
            }
        };
        let now = match versions(&lake).await {
            Ok(v) => v,
            Err(e) => {
                warn!(lake = %spec, error = %e, "cannot re-read the lake; serving the last snapshot");
                continue;
            }
        };
        if seen.as_ref() == Some(&now) {
            continue;
        }
        match swap_in(&ctx, &lake).await {
            Ok(()) => {
                info!(lake = %spec, events_version = ?now[0], "lake refreshed");
                seen = Some(now);
            }
            Err(e) => {
                warn!(lake = %spec, error = %e, "cannot refresh the lake; serving the last snapshot")
            }
        }
    }
}

async fn swap_in(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    let fresh = LakeSession::from_lake(lake, VIEWS_SQL, "queries/views.sql").await?;
    let options = ctx.state().config().options().catalog.clone();
    let missing = || AnalyticsError::Execution("the default catalog or schema is missing".into());
    let schema = fresh
        .context()
        .catalog(&options.default_catalog)
        .and_then(|c| c.schema(&options.default_schema))
        .ok_or_else(missing)?;
    ctx.catalog(&options.default_catalog)
        .ok_or_else(missing)?
        .register_schema(&options.default_schema, schema)
        .map_err(|e| AnalyticsError::Execution(format!("swapping in the new snapshot: {e}")))?;
    Ok(())
}
