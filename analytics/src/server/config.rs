//! What the SQL endpoint is started with: address, who may log in, TLS files
//! and the limits every query runs under.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{AnalyticsError, Result};

/// The user whose password `FNWATCH_SQL_PASSWORD` sets.
pub const DEFAULT_USER: &str = "analyst";

/// The environment variable holding the default user's password.
pub const PASSWORD_ENV: &str = "FNWATCH_SQL_PASSWORD";

/// How the endpoint runs.
#[derive(Debug)]
pub struct ServerConfig {
    /// The address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Who may connect.
    pub access: Access,
    /// Serve TLS with these PEM files. A client that does not ask for TLS
    /// is then refused, unless `allow_plaintext` is set.
    pub tls: Option<TlsFiles>,
    /// With `tls`: also accept connections without TLS (queries and results
    /// then cross the network in the clear). Ignored without `tls`.
    pub allow_plaintext: bool,
    /// A statement running longer is cancelled (`None`: no limit).
    pub query_timeout: Option<Duration>,
    /// Results are cut after this many rows, with a NOTICE saying so.
    pub max_rows: usize,
    /// Memory all running queries may hold together (sorts and
    /// aggregations spill to disk beyond it); `None`: no limit.
    pub max_memory: Option<usize>,
    /// How often to look for new lake commits (`None`: serve the snapshot
    /// read at start).
    pub refresh: Option<Duration>,
    /// The other limits (connections, logins, result bytes, spills).
    pub limits: Limits,
}

/// Limits against one client (or one address) taking the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Failed logins from one address before it must wait; each further
    /// failure doubles the wait (from 1 s up to 15 min).
    pub max_failed_logins: u32,
    /// Encoded bytes of one statement's result held at most (cut with a
    /// NOTICE beyond).
    pub max_result_bytes: usize,
    /// Encoded bytes of one result row at most (the statement fails beyond).
    pub max_row_bytes: usize,
    /// Where sorts, joins and aggregations spill (`None`: the system's temp
    /// folder).
    pub spill_dir: Option<PathBuf>,
    /// Bytes all spill files may take together.
    pub max_spill: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            max_failed_logins: 5,
            max_result_bytes: 256 << 20,
            max_row_bytes: 16 << 20,
            spill_dir: None,
            max_spill: 10 << 30,
        }
    }
}

/// The certificate chain and private key of the TLS endpoint.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Who may connect.
#[derive(Debug)]
pub enum Access {
    /// SCRAM-SHA-256 password authentication of these users.
    Passwords(Users),
    /// Anyone, without a password (loopback addresses only).
    Open,
}

impl Access {
    /// Decides the access rule from the password sources and `--no-auth`,
    /// refusing what would be unsafe or unusable.
    ///
    /// - `--no-auth` only on a loopback address;
    /// - otherwise at least one password source: a users file or the
    ///   default user's password from the environment.
    pub fn resolve(
        users_file: Option<&Path>,
        env_password: Option<String>,
        no_auth: bool,
        listen: SocketAddr,
    ) -> Result<Access> {
        if no_auth {
            if !listen.ip().is_loopback() {
                return Err(AnalyticsError::Server(format!(
                    "--no-auth is refused on {listen}: without passwords the endpoint may listen \
                     only on a loopback address (127.0.0.1 or [::1]); set {PASSWORD_ENV} (the \
                     password of user `{DEFAULT_USER}`) or give --users-file PATH instead"
                )));
            }
            if users_file.is_some() {
                return Err(AnalyticsError::Server(
                    "--no-auth and --users-file contradict each other: choose one".into(),
                ));
            }
            if env_password.is_some() {
                tracing::warn!(
                    "{PASSWORD_ENV} is set but --no-auth turns authentication off; it is ignored"
                );
            }
            return Ok(Access::Open);
        }
        let mut users = match users_file {
            Some(path) => Users::from_file(path)?,
            None => Users::default(),
        };
        if let Some(password) = env_password {
            users.add_default(password, users_file)?;
        }
        if users.is_empty() {
            return Err(AnalyticsError::Server(match users_file {
                Some(path) => format!("the users file {} names no user", path.display()),
                None => format!(
                    "no SQL users: set {PASSWORD_ENV} to the password of user `{DEFAULT_USER}`, \
                     or give --users-file PATH (lines of user:password); on a loopback address \
                     --no-auth serves without passwords"
                ),
            }));
        }
        Ok(Access::Passwords(users))
    }
}

/// User names and their passwords, in memory only while the server starts
/// (the authenticator keeps salted hashes).
#[derive(Default, Clone)]
pub struct Users {
    entries: BTreeMap<String, String>,
}

impl fmt::Debug for Users {
    // Never prints a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Users {
    /// Reads a users file: one `user:password` per line; blank lines and
    /// lines starting with `#` are skipped; the password is everything after
    /// the first `:`, kept as written (spaces included).
    pub fn from_file(path: &Path) -> Result<Users> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AnalyticsError::Server(format!("cannot read users file {}: {e}", path.display()))
        })?;
        warn_if_shared(path);
        Users::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a users file; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Users> {
        let mut users = Users::default();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            // The error never repeats the line: it holds a password.
            let Some((name, password)) = line.split_once(':') else {
                return Err(AnalyticsError::Server(format!(
                    "{source}:{line_no}: expected `user:password`"
                )));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(AnalyticsError::Server(format!(
                    "{source}:{line_no}: the user name is empty"
                )));
            }
            if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
                return Err(AnalyticsError::Server(format!(
                    "{source}:{line_no}: the user name contains {c:?}"
                )));
            }
            if password.is_empty() {
                return Err(AnalyticsError::Server(format!(
                    "{source}:{line_no}: user `{name}` has an empty password"
                )));
            }
            if users
                .entries
                .insert(name.to_string(), password.to_string())
                .is_some()
            {
                return Err(AnalyticsError::Server(format!(
                    "{source}:{line_no}: user `{name}` is listed twice"
                )));
            }
        }
        Ok(users)
    }

    /// Adds the default user with the password from the environment.
    fn add_default(&mut self, password: String, users_file: Option<&Path>) -> Result<()> {
        if password.is_empty() {
            return Err(AnalyticsError::Server(format!(
                "{PASSWORD_ENV} is set but empty; give the password of user `{DEFAULT_USER}` or unset it"
            )));
        }
        if self.entries.contains_key(DEFAULT_USER) {
            let file = users_file
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(AnalyticsError::Server(format!(
                "user `{DEFAULT_USER}` has a password both in {file} and in {PASSWORD_ENV}: keep one"
            )));
        }
        self.entries.insert(DEFAULT_USER.to_string(), password);
        Ok(())
    }

    /// Adds a user (for embedding and tests).
    pub fn with(mut self, name: &str, password: &str) -> Users {
        self.entries.insert(name.to_string(), password.to_string());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A users file others can read is a leaked secret waiting to happen (libpq
/// ignores such a `.pgpass`); say so, but start.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the users file is readable by other users of this machine; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Parses a duration for the server's flags: `60s`, `2m`, `1h30m`, or `0` /
/// `off` for none.
pub fn parse_duration(s: &str) -> std::result::Result<Option<Duration>, String> {
    let t = s.trim();
    if t == "0" || t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    humantime::parse_duration(t)
        .map(|d| if d.is_zero() { None } else { Some(d) })
        .map_err(|e| format!("`{s}` is not a duration such as 60s, 5m or off: {e}"))
}

/// A duration for people: `60s`, `5m`, `off`.
pub fn show_duration(d: Option<Duration>) -> String {
    match d {
        Some(d) => humantime::format_duration(d).to_string(),
        None => "off".to_string(),
    }
}

/// Parses a memory size for `--max-memory`: `4GB`, `512MiB`, `50%` (of this
/// machine's memory), or `off`.
pub fn parse_memory(s: &str) -> std::result::Result<Option<usize>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || format!("`{s}` is not a memory size such as 4GB, 512MiB, 50% or off");
    if let Some(pct) = t.strip_suffix('%') {
        let pct: f64 = pct.trim().parse().map_err(|_| bad())?;
        if !(pct > 0.0 && pct <= 100.0) {
            return Err(bad());
        }
        let total = total_memory().ok_or_else(|| {
            format!("cannot read this machine's memory size for `{s}`; give a size such as 4GB")
        })?;
        return Ok(Some((total as f64 * pct / 100.0) as usize));
    }
    let bytes = parse_bytes(t).map_err(|_| bad())?;
    if bytes < 1_000_000 {
        return Err(format!(
            "`{s}` is too little memory to run queries (at least 1MB)"
        ));
    }
    Ok(Some(bytes))
}

/// Parses a size in bytes: `1000`, `64KiB`, `256MB`, `10GB`.
pub fn parse_bytes(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a size such as 64KiB, 256MB or 10GB");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = num * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as usize)
}

/// This machine's memory (Linux: MemTotal of /proc/meminfo).
fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
