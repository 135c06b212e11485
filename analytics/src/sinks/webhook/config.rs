//! Settings of a webhook output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::sinks::http::parse_url;

/// What each POST carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// The alert contract's JSON object.
    Json,
    /// The OCSF Detection Finding.
    OcsfJson,
    /// `{"text": "[HIGH] kind in function: summary ..."}` for chat.
    Slack,
}

/// `type = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint. Webhook URLs often embed a secret: prefer `url_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the endpoint URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// `json` (default), `ocsf-json` or `slack`.
    #[serde(default = "default_payload", alias = "format")]
    pub payload: Payload,
    /// Environment variable holding a bearer token (`Authorization: Bearer`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the bearer token, if not from the environment.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Extra request headers (not for secrets: use `token_env`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// PEM file of a private CA that signed the endpoint's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_payload() -> Payload {
    Payload::Json
}

impl WebhookConfig {
    /// The endpoint, from `url` or `url_env`.
    pub fn url(&self) -> Result<reqwest::Url, String> {
        match (&self.url, &self.url_env) {
            (Some(u), None) => parse_url(u),
            (None, Some(var)) => match std::env::var(var) {
                Ok(u) => parse_url(u.trim()),
                Err(_) => Err(format!("environment variable {var} (url_env) is not set")),
            },
            _ => Err("set exactly one of `url` and `url_env`".into()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match (&self.url, &self.url_env) {
            (Some(u), None) => parse_url(u).map(|_| ()),
            (None, Some(_)) => Ok(()),
            _ => Err("set exactly one of `url` and `url_env`".into()),
        }
    }
}
