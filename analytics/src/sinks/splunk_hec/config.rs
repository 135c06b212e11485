//! Settings of a Splunk HEC output.

use std::path::PathBuf;

use serde::Deserialize;

use crate::sinks::config::check_format;
use crate::sinks::http::parse_url;
use crate::sinks::render::Format;

/// `type = "splunk-hec"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecConfig {
    /// The event endpoint, e.g. `https://splunk:8088/services/collector/event`.
    pub url: String,
    /// Environment variable holding the HEC token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the HEC token (first line), if not from the environment.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The `event` payload: `json` (the alert contract, default) or `ocsf-json`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// HEC `source` (default `fnwatch`).
    #[serde(default = "default_source")]
    pub source: String,
    /// HEC `sourcetype` (default `fnwatch:alert`).
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// HEC `index` (default: the token's default index).
    #[serde(default)]
    pub index: Option<String>,
    /// PEM file of a private CA that signed the endpoint's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_format() -> Format {
    Format::Json
}
fn default_source() -> String {
    "fnwatch".into()
}
fn default_sourcetype() -> String {
    "fnwatch:alert".into()
}

impl HecConfig {
    pub fn validate(&self) -> Result<(), String> {
        parse_url(&self.url)?;
        check_format(
            self.format,
            &[Format::Json, Format::OcsfJson],
            "a splunk-hec output",
        )?;
        if self.token_env.is_none() && self.token_file.is_none() {
            return Err("set `token_env` (or `token_file`) to the HEC token; tokens are never written in the configuration".into());
        }
        Ok(())
    }
}
