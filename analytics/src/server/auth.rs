//! Who may connect: SCRAM-SHA-256 password authentication (pgwire's SASL
//! handler over our users), or no authentication on loopback when asked.
//!
//! Passwords are salted and hashed once at start (PBKDF2, 4096 rounds, a
//! random salt per user); the clear text is not kept. An unknown user gets a
//! made-up but stable salt, so the exchange looks the same as for a known
//! user with a wrong password and user names cannot be probed. Failures are
//! logged at WARN with the user name and the peer, never the password.
//!
//! After `max_failed_logins` failures from one address, that address must
//! wait before its next login is even looked at: 1 s, doubling with each
//! further failure up to 15 min; a successful login clears the count. The
//! table of addresses is bounded (expired entries are dropped first).

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{
    SCRAM_ITERATIONS, ScramAuth, gen_salted_password, random_nonce,
};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{
    ClientInfo, ConnectionManager, METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER,
    PgWireConnectionState,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::config::Users;
use crate::error::{AnalyticsError, Result};

/// The users' salted passwords, as SCRAM wants them.
pub(crate) struct ScramUsers {
    salted: HashMap<String, Password>,
    /// Key for the stable made-up salts of unknown users.
    mock_key: [u8; 32],
}

impl Debug for ScramUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUsers")
            .field("users", &self.salted.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ScramUsers {
    pub(crate) fn new(users: &Users) -> ScramUsers {
        let salted = users
            .iter()
            .map(|(name, password)| {
                let salt = random_nonce().into_bytes();
                let hash = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
                (name.to_string(), Password::new(Some(salt), hash))
            })
            .collect();
        let mock_key =
            *blake3::hash(format!("{}{}", random_nonce(), random_nonce()).as_bytes()).as_bytes();
        ScramUsers { salted, mock_key }
    }

    pub(crate) fn knows(&self, user: &str) -> bool {
        self.salted.contains_key(user)
    }

    fn lookup(&self, user: &str) -> Password {
        if let Some(p) = self.salted.get(user) {
            return Password::new(p.salt().map(<[u8]>::to_vec), p.password().to_vec());
        }
        // No client can know this "salted password": the proof fails as for
        // a wrong password, with the same salt on every attempt.
        let mut hasher = blake3::Hasher::new_keyed(&self.mock_key);
        hasher.update(user.as_bytes());
        let mut out = [0u8; 48];
        hasher.finalize_xof().fill(&mut out);
        Password::new(Some(out[..16].to_vec()), out[16..].to_vec())
    }
}

#[async_trait]
impl AuthSource for ScramUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().ok_or(PgWireError::UserNameRequired)?;
        Ok(self.lookup(user))
    }
}

/// Put in a connection's session extensions once its start-up
/// (authentication included) has succeeded; statements run only on such
/// connections. A type, not a metadata key: pgwire copies every start-up
/// parameter into the metadata, so a client could forge a key there.
pub(crate) struct Authenticated;

/// Failed logins per address, with the back-off they earned.
pub(crate) struct Failures {
    /// Failures allowed before an address must wait.
    free: u32,
    by_addr: Mutex<HashMap<IpAddr, Failed>>,
}

#[derive(Debug, Clone, Copy)]
struct Failed {
    count: u32,
    /// No login from the address is looked at before this.
    until: Option<Instant>,
}

/// Addresses remembered at most (then the oldest back-offs are forgotten).
const FAILURE_TABLE: usize = 10_000;
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);

impl Failures {
    pub(crate) fn new(free: u32) -> Failures {
        Failures {
            free: free.max(1),
            by_addr: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must still wait, if it must.
    pub(crate) fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        let until = table.get(&ip)?.until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the wait it earned, if any.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut table = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= FAILURE_TABLE && !table.contains_key(&ip) {
            table.retain(|_, f| f.until.is_some_and(|u| u > now));
            if table.len() >= FAILURE_TABLE {
                // Still full of live back-offs: forget the one ending first.
                if let Some(oldest) = table.iter().min_by_key(|(_, f)| f.until).map(|(ip, _)| *ip) {
                    table.remove(&oldest);
                }
            }
        }
        let f = table.entry(ip).or_insert(Failed {
            count: 0,
            until: None,
        });
        f.count = f.count.saturating_add(1);
        if f.count < self.free {
            return None;
        }
        let doublings = (f.count - self.free).min(20);
        let wait = FIRST_WAIT
            .saturating_mul(1u32 << doublings)
            .min(LONGEST_WAIT);
        f.until = Some(now + wait);
        Some(wait)
    }

    /// A successful login clears the address's count.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        let mut table = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&ip);
    }
}

/// What every connection's startup handler shares.
pub(crate) struct AuthShared {
    mode: Mode,
    /// Refuse connections that did not negotiate TLS.
    require_tls: bool,
    connections: Arc<ConnectionManager>,
    parameters: Arc<DefaultServerParameterProvider>,
    failures: Failures,
}

enum Mode {
    Scram {
        users: Arc<ScramUsers>,
        /// The TLS certificate (PEM), for SCRAM-SHA-256-PLUS channel binding
        /// on TLS connections.
        cert_pem: Option<Vec<u8>>,
    },
    Open,
}

impl AuthShared {
    pub(crate) fn scram(
        users: &Users,
        cert_pem: Option<Vec<u8>>,
        connections: Arc<ConnectionManager>,
    ) -> Result<AuthShared> {
        if let Some(pem) = &cert_pem {
            // Fail at start, not at the first TLS login.
            let mut probe = ScramAuth::new(Arc::new(ScramUsers::new(&Users::default())));
            probe.configure_certificate(pem).map_err(|e| {
                AnalyticsError::Server(format!(
                    "the TLS certificate cannot be used for SCRAM channel binding: {e}"
                ))
            })?;
        }
        Ok(AuthShared {
            mode: Mode::Scram {
                users: Arc::new(ScramUsers::new(users)),
                cert_pem,
            },
            require_tls: false,
            connections,
            parameters: Arc::new(parameters()),
            failures: Failures::new(5),
        })
    }

    pub(crate) fn open(connections: Arc<ConnectionManager>) -> AuthShared {
        AuthShared {
            mode: Mode::Open,
            require_tls: false,
            connections,
            parameters: Arc::new(parameters()),
            failures: Failures::new(5),
        }
    }

    /// The same, refusing connections without TLS when `require` is set.
    pub(crate) fn requiring_tls(mut self, require: bool) -> AuthShared {
        self.require_tls = require;
        self
    }

    /// The same, making an address wait after `free` failed logins.
    pub(crate) fn limiting_failures(mut self, free: u32) -> AuthShared {
        self.failures = Failures::new(free);
        self
    }

    /// A name for the method, for logs and the start-up banner.
    pub(crate) fn method(&self) -> &'static str {
        match self.mode {
            Mode::Scram { .. } => "SCRAM-SHA-256",
            Mode::Open => "none",
        }
    }
}

/// The parameters sent at login: what PostgreSQL sends, saying the session
/// is read-only and not a superuser.
fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    p
}

/// One connection's startup handler (pgwire asks for one per connection;
/// the SASL state machine inside is per connection too).
pub(crate) struct Startup {
    shared: Arc<AuthShared>,
    sasl: OnceLock<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
    logged: AtomicBool,
    /// Told when the start-up is refused, so the connection is closed.
    refused: Arc<Notify>,
    /// Set (to the limit) when the connection is one too many.
    over_limit: Option<usize>,
}

impl Startup {
    /// `refused` is notified when this connection's start-up is refused;
    /// `over_limit` refuses it at once (the server's `max_connections`).
    pub(crate) fn new(
        shared: Arc<AuthShared>,
        refused: Arc<Notify>,
        over_limit: Option<usize>,
    ) -> Startup {
        Startup {
            shared,
            sasl: OnceLock::new(),
            logged: AtomicBool::new(false),
            refused,
            over_limit,
        }
    }

    fn sasl(
        &self,
        users: &Arc<ScramUsers>,
        cert_pem: Option<&[u8]>,
        secure: bool,
    ) -> &SASLAuthStartupHandler<DefaultServerParameterProvider> {
        self.sasl.get_or_init(|| {
            let mut scram = ScramAuth::new(users.clone());
            // Offer SCRAM-SHA-256-PLUS only on TLS connections: libpq rejects
            // a server offering it over plain TCP.
            if secure && let Some(pem) = cert_pem {
                // Checked at start; a failure here only loses channel binding.
                if let Err(e) = scram.configure_certificate(pem) {
                    warn!(error = %e, "SCRAM channel binding is off");
                }
            }
            SASLAuthStartupHandler::new(self.shared.parameters.clone())
                .with_scram(scram)
                .with_connection_manager(self.shared.connections.clone())
        })
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self.start(client, message).await;
        if result.is_err() {
            self.refused.notify_one();
        }
        result
    }
}

impl Startup {
    /// One start-up message: refuses plain TCP when TLS is required, then
    /// authenticates; marks the connection once it is ready for queries.
    async fn start<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(max) = self.over_limit {
            // PostgreSQL's code and wording for max_connections.
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "53300".into(),
                format!("sorry, too many clients already (this server takes {max} connections)"),
            ))));
        }
        let ip = client.socket_addr().ip();
        if matches!(self.shared.mode, Mode::Scram { .. })
            && matches!(message, PgWireFrontendMessage::Startup(_))
            && let Some(wait) = self.shared.failures.wait(ip, Instant::now())
        {
            warn!(peer = %client.socket_addr(), wait_s = wait.as_secs_f64(), "login refused: too many failed logins from this address");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                format!(
                    "too many failed logins from {ip}; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ))));
        }
        if self.shared.require_tls && !client.is_secure() {
            warn!(peer = %client.socket_addr(), "connection without TLS refused");
            // PostgreSQL's code for a connection its pg_hba.conf rejects.
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "this server requires TLS: connect with sslmode=require \
                 (or start the server with --allow-plaintext)"
                    .into(),
            ))));
        }
        let result = match &self.shared.mode {
            Mode::Scram { users, cert_pem } => {
                let secure = client.is_secure();
                self.sasl(users, cert_pem.as_deref(), secure)
                    .on_startup(client, message)
                    .await
            }
            Mode::Open => {
                let open = OpenStartup {
                    connections: self.shared.connections.clone(),
                };
                open.on_startup(client, message).await
            }
        };
        let meta = client.metadata();
        let user = meta.get(METADATA_USER).cloned().unwrap_or_default();
        let peer = client.socket_addr();
        match result {
            Ok(()) => {
                let ready = matches!(client.state(), PgWireConnectionState::ReadyForQuery);
                if ready {
                    client.session_extensions().insert(Authenticated);
                    self.shared.failures.succeeded(ip);
                }
                if ready && !self.logged.swap(true, Ordering::Relaxed) {
                    let meta = client.metadata();
                    info!(
                        user = %user,
                        database = meta.get(METADATA_DATABASE).map(String::as_str).unwrap_or(""),
                        application = meta.get(METADATA_APPLICATION_NAME).map(String::as_str).unwrap_or(""),
                        peer = %peer,
                        tls = client.is_secure(),
                        auth = self.shared.method(),
                        "connection authenticated"
                    );
                }
                Ok(())
            }
            Err(PgWireError::InvalidPassword(scram_name)) => {
                // libpq leaves the SCRAM user name empty: the startup's counts.
                let name = if user.is_empty() { scram_name } else { user };
                let known = match &self.shared.mode {
                    Mode::Scram { users, .. } => users.knows(&name),
                    Mode::Open => false,
                };
                let wait = self.shared.failures.failed(ip, Instant::now());
                warn!(user = %name, known_user = known, peer = %peer, back_off_s = wait.map(|w| w.as_secs_f64()), "password authentication failed");
                // PostgreSQL's wording, which clients and people look for.
                Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    "28P01".into(),
                    format!("password authentication failed for user \"{name}\""),
                ))))
            }
            Err(e) => {
                warn!(user = %user, peer = %peer, error = %e, "authentication failed");
                Err(e)
            }
        }
    }
}

/// `--no-auth`: pgwire's no-op startup, registered for cancel requests and
/// telling the client the session is read-only.
struct OpenStartup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        for (name, value) in [
            ("is_superuser", "off"),
            ("default_transaction_read_only", "on"),
        ] {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.into(),
                    value.into(),
                )))
                .await?;
        }
        Ok(())
    }
}
