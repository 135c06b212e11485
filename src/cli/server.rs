//! `fnwatch server`: the lake over the PostgreSQL wire protocol.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fnwatch_analytics::server::config::{
    DEFAULT_USER, PASSWORD_ENV, parse_bytes, parse_duration, parse_memory, show_duration,
};
use fnwatch_analytics::server::{Access, Limits, Server, ServerConfig, TlsFiles};
use fnwatch_analytics::session::LakeSession;

use super::{human_bytes, thousands};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  FNWATCH_SQL_PASSWORD=... fnwatch server --lake ./lake       # user `analyst`, on 127.0.0.1:5433
  psql \"host=127.0.0.1 port=5433 user=analyst\" -c \"select * from alerts order by time desc limit 20\"

  fnwatch server --lake ./lake --listen 0.0.0.0:5433 --users-file /etc/fnwatch/sql-users \\
                 --tls-cert server.crt --tls-key server.key --query-timeout 5m --max-rows 1000000
  fnwatch server --lake ./lake --no-auth                      # loopback only, no passwords

Users: FNWATCH_SQL_PASSWORD is the password of user `analyst`; a users file
holds one `user:password` per line (# starts a comment; chmod 600 it). Clients
log in with SCRAM-SHA-256 (psql, libpq and JDBC drivers from 2018 on); any
database name is accepted. Passwords are never taken on the command line.

Only reads run: SELECT, WITH, EXPLAIN, SHOW, cursors. CREATE, INSERT, UPDATE,
DELETE, DROP, COPY and SET of DataFusion settings (timezone included: it is
shared by every connection) are refused: the lake is changed only by fnwatch
commands. range(), repeat(), lpad() and the like need a literal size of at
most 1,048,576. Password logins on a non-loopback address without TLS are
served with a warning. Tables: events, dead_letters, alerts; the
per-type views of queries/views.sql; pg_catalog and information_schema for
clients (psql \\d, \\dt, \\dv; DBeaver, Metabase, Grafana).")]
pub struct ServerArgs {
    /// The lake folder.
    #[arg(long, value_name = "PATH")]
    pub lake: String,
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:5433", value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// File of `user:password` lines (in addition to FNWATCH_SQL_PASSWORD).
    #[arg(long, value_name = "PATH")]
    pub users_file: Option<PathBuf>,
    /// Accept connections without a password (refused unless --listen is a
    /// loopback address).
    #[arg(long, conflicts_with = "users_file")]
    pub no_auth: bool,
    /// TLS certificate chain (PEM). Clients must then connect with TLS
    /// (sslmode=require or stricter); others are refused.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --tls-cert: also accept clients that do not use TLS (their
    /// queries and results cross the network in the clear).
    #[arg(long, requires = "tls_cert")]
    pub allow_plaintext: bool,
    /// Cancel a statement running longer than this (e.g. 30s, 5m; off for no limit).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_limit)]
    pub query_timeout: Limit,
    /// Cut results after this many rows (a NOTICE tells the client).
    #[arg(long, default_value_t = 100_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows: u64,
    /// Memory all running queries may use together (e.g. 8GB, 50% of this
    /// machine, off); sorts and aggregations spill to disk beyond it.
    #[arg(long, default_value = "50%", value_name = "SIZE", value_parser = parse_memory_limit)]
    pub max_memory: MemoryLimit,
    /// Look for new lake commits this often (off: serve the snapshot read at start).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_limit)]
    pub refresh: Limit,
    /// Connections open at once; more are refused ("too many clients").
    #[arg(long, default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Failed logins from one address before it must wait (1 s, doubling
    /// with each further failure, up to 15 min).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failed_logins: u32,
    /// Cut a result once it holds this many bytes (a NOTICE tells the client).
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = parse_bytes)]
    pub max_result_bytes: usize,
    /// Fail a statement whose result has a row wider than this.
    #[arg(long, default_value = "16MiB", value_name = "SIZE", value_parser = parse_bytes)]
    pub max_row_bytes: usize,
    /// Folder for the spill files of large sorts and joins (default: the
    /// system's temp folder).
    #[arg(long, value_name = "PATH")]
    pub spill_dir: Option<PathBuf>,
    /// Disk all spill files may take together; a query needing more fails.
    #[arg(long, default_value = "10GiB", value_name = "SIZE", value_parser = parse_bytes)]
    pub max_spill: usize,
}

/// A duration or none (`off`); a newtype so clap does not take the `Option`
/// for "flag may be absent".
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<Duration>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    parse_duration(s).map(Limit)
}

/// Bytes or none (`off`), as [`Limit`] is for durations.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimit(pub Option<usize>);

fn parse_memory_limit(s: &str) -> Result<MemoryLimit, String> {
    parse_memory(s).map(MemoryLimit)
}

pub async fn run(a: ServerArgs) -> anyhow::Result<()> {
    // The password comes from the environment only, never argv.
    let env_password = match std::env::var(PASSWORD_ENV) {
        Ok(p) => Some(p),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => bail!("{PASSWORD_ENV} is not valid UTF-8"),
    };
    let access = Access::resolve(a.users_file.as_deref(), env_password, a.no_auth, a.listen)?;
    let (who, hint_user) = match &access {
        Access::Passwords(users) => {
            let names: Vec<&str> = users.names().collect();
            let hint = if names.contains(&DEFAULT_USER) {
                DEFAULT_USER
            } else {
                names.first().copied().unwrap_or(DEFAULT_USER)
            };
            (names.join(", "), hint.to_string())
        }
        Access::Open => (
            "anyone (no authentication)".into(),
            DEFAULT_USER.to_string(),
        ),
    };
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let session = LakeSession::open(&a.lake)
        .await
        .with_context(|| format!("opening lake {}", a.lake))?;
    let max_rows = usize::try_from(a.max_rows).unwrap_or(usize::MAX);
    let config = ServerConfig {
        listen: a.listen,
        access,
        tls,
        allow_plaintext: a.allow_plaintext,
        query_timeout: a.query_timeout.0,
        max_rows,
        max_memory: a.max_memory.0,
        refresh: a.refresh.0,
        limits: Limits {
            max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
            max_failed_logins: a.max_failed_logins,
            max_result_bytes: a.max_result_bytes,
            max_row_bytes: a.max_row_bytes,
            spill_dir: a.spill_dir.clone(),
            max_spill: a.max_spill as u64,
        },
    };
    let has_tls = config.tls.is_some();
    let server = Server::bind(&a.lake, session, config)
        .await
        .context("starting the SQL endpoint")?;
    let addr = server.local_addr();
    // Listening for a stop before the banner, which tells clients (and
    // supervisors) that the server is up.
    let stop = shutdown_signal();
    eprintln!(
        "fnwatch server: lake {} on {addr} ({}; users: {who}; TLS {}; time-out {}; at most {} rows; memory {}; refresh {})",
        a.lake,
        server.auth_method(),
        match (has_tls, a.allow_plaintext) {
            (true, false) => "required",
            (true, true) => "on, plaintext also accepted",
            _ => "off",
        },
        show_duration(a.query_timeout.0),
        thousands(a.max_rows),
        a.max_memory
            .0
            .map_or_else(|| "unlimited".to_string(), |b| human_bytes(b as u64)),
        show_duration(a.refresh.0),
    );
    eprintln!(
        "  psql \"host={} port={} user={hint_user}{}\"",
        addr.ip(),
        addr.port(),
        if has_tls { " sslmode=require" } else { "" }
    );
    server.run(stop).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM. SIGTERM is listened for from this call on, not only
/// once the future is first polled.
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
