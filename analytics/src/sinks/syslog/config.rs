//! Settings of a syslog output.

use std::path::PathBuf;

use serde::Deserialize;

use crate::sinks::config::check_format;
use crate::sinks::render::Format;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// One message per datagram (RFC 5426); nothing confirms receipt.
    Udp,
    /// Octet-counted framing (RFC 6587).
    Tcp,
    /// TCP with TLS (RFC 5425), verified against `ca_file` or the system's roots.
    Tls,
}

/// `type = "syslog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `udp`, `tcp` or `tls` (default `tcp`).
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The receiver, `host:port`.
    pub address: String,
    /// `cef` (default), `ocsf-json` or `json`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Syslog facility name: `kern`, `user`, ..., `local0` to `local7`
    /// (default `local0`).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// APP-NAME of the messages (default `fnwatch`).
    #[serde(default = "default_app")]
    pub app_name: String,
    /// HOSTNAME of the messages (default: this host's name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Longest message in bytes; longer alerts have their evidence cut
    /// (default 8192, rsyslog's default limit).
    #[serde(default = "default_max")]
    pub max_message_bytes: usize,
    /// PEM file of the CA(s) that signed the receiver's certificate (TLS;
    /// default: the system's trusted roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to verify in the receiver's certificate (TLS; default: the host
    /// part of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}
fn default_format() -> Format {
    Format::Cef
}
fn default_facility() -> String {
    "local0".into()
}
fn default_app() -> String {
    "fnwatch".into()
}
fn default_max() -> usize {
    8192
}

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl SyslogConfig {
    /// The facility's code (0-23).
    pub fn facility_code(&self) -> Option<u8> {
        FACILITIES
            .iter()
            .position(|f| *f == self.facility)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub fn validate(&self) -> Result<(), String> {
        check_format(
            self.format,
            &[Format::Cef, Format::OcsfJson, Format::Json],
            "a syslog output",
        )?;
        if self.facility_code().is_none() {
            return Err(format!(
                "unknown syslog facility `{}` (valid: {})",
                self.facility,
                FACILITIES.join(", ")
            ));
        }
        split_host_port(&self.address)?;
        if !(480..=65_000).contains(&self.max_message_bytes) {
            return Err("`max_message_bytes` must be between 480 and 65000".into());
        }
        if self.protocol != Protocol::Tls && (self.ca_file.is_some() || self.server_name.is_some())
        {
            return Err("`ca_file` and `server_name` apply to protocol = \"tls\" only".into());
        }
        Ok(())
    }
}

/// `host:port` (IPv6 as `[::1]:514`) split into its parts.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let bad = || format!("`address` must be host:port, got `{address}`");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}
