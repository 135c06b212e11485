//! Output configuration: the `[[outputs]]` tables of `fnwatch.toml`.
//!
//! Each output has a name, what it lets through (minimum severity, kinds,
//! functions), optional rate limiting, delivery knobs, and the settings of its
//! `type` (`syslog`, `splunk-hec`, `webhook`, `file`). Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fnwatch_ingest::alerts::{Kind, Severity};
use serde::Deserialize;

use super::render::Format;
use crate::error::{AnalyticsError, Result};

/// One `[[outputs]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputConfig {
    /// Names the output in messages, in `--output NAME` and in its delivery
    /// state (`LAKE/_outputs/NAME/`): letters, digits, `-` and `_`.
    pub name: String,
    /// The lowest severity delivered. Default: `medium` (low alerts are for
    /// reports, not for paging).
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Deliver only these kinds (default: every kind).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deliver only alerts of these functions (default: every function).
    #[serde(default)]
    pub functions: Vec<String>,
    /// At most `max` alerts per (function, kind) in each `window` (by alert
    /// time); the rest are delivered as one summary alert per window.
    /// Off unless set.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Alerts per send (default: 1000 for syslog and files, 100 for HEC, 1 for
    /// webhooks). The delivery state is saved after each acknowledged batch.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Time-out of one connection attempt or request (default "10s").
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long to keep retrying a failing output before giving up for this
    /// run (alerts stay queued for the next one). Default "2m".
    #[serde(default = "default_retry_for", with = "humantime_serde")]
    pub retry_for: Duration,
    /// Longest pause between retries (they start at 250 ms and double, with
    /// jitter). Default "30s".
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// The settings of the output's `type`.
    #[serde(flatten)]
    pub sink: SinkConfig,
}

/// Per (function, kind) rate limiting with aggregation.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Alerts delivered one by one per (function, kind) and window.
    pub max: u32,
    /// The window, by alert time (e.g. "5m").
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// The closed set of output types.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SinkConfig {
    /// RFC 5424 syslog messages over UDP, TCP or TLS.
    Syslog(super::syslog::SyslogConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(super::splunk_hec::HecConfig),
    /// A JSON POST per alert (generic, Slack- and Teams-compatible payloads).
    Webhook(super::webhook::WebhookConfig),
    /// JSON Lines in a local file, rotated by size.
    File(super::file::FileConfig),
}

impl SinkConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::SplunkHec(_) => "splunk-hec",
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::File(_) => "file",
        }
    }
}

fn default_min_severity() -> Severity {
    Severity::Medium
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_for() -> Duration {
    Duration::from_secs(120)
}
fn default_backoff() -> Duration {
    Duration::from_secs(30)
}

impl OutputConfig {
    /// Checks what serde cannot: names, kinds, sizes, per-type settings.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| AnalyticsError::Config(format!("output `{}`: {m}", self.name));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AnalyticsError::Config(format!(
                "output name `{}` is not valid: use 1-64 letters, digits, `-` or `_`",
                self.name
            )));
        }
        for k in &self.kinds {
            if Kind::parse(k).is_none() {
                let valid: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(err(format!(
                    "unknown kind `{k}` in `kinds` (valid: {})",
                    valid.join(", ")
                )));
            }
        }
        if let Some(r) = &self.rate_limit
            && (r.max == 0 || r.window.is_zero())
        {
            return Err(err(
                "`rate_limit` needs max >= 1 and a window > 0 (e.g. { max = 10, window = \"5m\" })"
                    .into(),
            ));
        }
        if self.batch_size == Some(0) {
            return Err(err("`batch_size` must be at least 1".into()));
        }
        match &self.sink {
            SinkConfig::Syslog(c) => c.validate().map_err(err),
            SinkConfig::SplunkHec(c) => c.validate().map_err(err),
            SinkConfig::Webhook(c) => c.validate().map_err(err),
            SinkConfig::File(c) => c.validate().map_err(err),
        }
    }

    /// Alerts per send.
    pub fn batch_size(&self) -> usize {
        self.batch_size.unwrap_or(match self.sink {
            SinkConfig::Syslog(_) | SinkConfig::File(_) => 1000,
            SinkConfig::SplunkHec(_) => 100,
            SinkConfig::Webhook(_) => 1,
        })
    }

    /// Whether an alert passes this output's filters.
    pub fn admits(&self, a: &super::alert::AlertRecord) -> bool {
        a.severity >= self.min_severity
            && (self.kinds.is_empty() || self.kinds.contains(&a.kind))
            && (self.functions.is_empty() || self.functions.contains(&a.function))
    }
}

/// The outputs of a configuration, checked: valid each, names unique.
pub fn validate_outputs(outputs: &[OutputConfig]) -> Result<()> {
    let mut seen = BTreeMap::new();
    for o in outputs {
        o.validate()?;
        if seen.insert(o.name.as_str(), ()).is_some() {
            return Err(AnalyticsError::Config(format!(
                "two outputs are named `{}`; names must be unique",
                o.name
            )));
        }
    }
    Ok(())
}

/// A secret (token) read from the environment or a file, never from the
/// configuration itself; shown as `***`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret named by `env` or stored in `file` (first line).
    pub fn load(env: Option<&str>, file: Option<&PathBuf>, what: &str) -> Result<Option<Secret>> {
        if let Some(var) = env {
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                _ => Err(AnalyticsError::Config(format!(
                    "{what}: environment variable {var} (token_env) is not set"
                ))),
            };
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AnalyticsError::Config(format!(
                    "{what}: cannot read token_file {}: {e}",
                    path.display()
                ))
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                return Err(AnalyticsError::Config(format!(
                    "{what}: token_file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(Secret(line)));
        }
        Ok(None)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Checks a rendering format against those an output type supports.
pub fn check_format(
    format: Format,
    allowed: &[Format],
    what: &str,
) -> std::result::Result<(), String> {
    if allowed.contains(&format) {
        Ok(())
    } else {
        let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
        Err(format!(
            "{what} cannot use format `{}` (valid: {})",
            format.as_str(),
            names.join(", ")
        ))
    }
}
