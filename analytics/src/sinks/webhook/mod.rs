//! Webhook output: one JSON POST per alert. Payloads: the alert contract
//! (`json`), OCSF (`ocsf-json`), or `slack` — `{"text": ...}`, which Slack
//! and Teams incoming webhooks (and most chat bridges) accept.

mod config;

pub use config::{Payload, WebhookConfig};

use std::time::Duration;

use fnwatch_ingest::alerts::Severity;

use super::SendError;
use super::alert::AlertRecord;
use super::config::Secret;
use super::http::{client, post, redact};
use super::render::{Origin, contract_line, ocsf};
use crate::error::{AnalyticsError, Result};

/// A webhook output ready to send.
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<Secret>,
    headers: Vec<(String, String)>,
    payload: Payload,
    origin: Origin,
}

impl WebhookSink {
    pub fn build(c: &WebhookConfig, timeout: Duration, origin: Origin) -> Result<WebhookSink> {
        let url = c.url().map_err(AnalyticsError::Config)?;
        let token = Secret::load(
            c.token_env.as_deref(),
            c.token_file.as_ref(),
            "webhook token",
        )?;
        super::http::warn_if_plaintext_token(&url, token.is_some());
        Ok(WebhookSink {
            client: client(timeout, c.ca_file.as_deref())?,
            url,
            token,
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            payload: c.payload,
            origin,
        })
    }

    pub fn target(&self) -> String {
        format!("webhook {}", redact(&self.url))
    }

    /// One POST per alert, in order; stops at the first failure.
    pub async fn send(&mut self, batch: &[&AlertRecord]) -> std::result::Result<(), SendError> {
        for a in batch {
            let body = payload(self.payload, a, &self.origin);
            post(
                &self.client,
                &self.url,
                self.token
                    .as_ref()
                    .map(|t| format!("Bearer {}", t.expose())),
                &self.headers,
                "application/json",
                body.into_bytes(),
            )
            .await?;
        }
        Ok(())
    }
}

/// The body POSTed for one alert.
pub fn payload(kind: Payload, a: &AlertRecord, origin: &Origin) -> String {
    match kind {
        Payload::Json => {
            let mut s = String::new();
            contract_line(a, &mut s);
            s
        }
        Payload::OcsfJson => ocsf(a, origin).to_string(),
        Payload::Slack => {
            let sev = match a.severity {
                Severity::Low => "LOW",
                Severity::Medium => "MEDIUM",
                Severity::High => "HIGH",
                Severity::Critical => "CRITICAL",
            };
            // Slack reads <, > and & as markup: escape them as it asks.
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let text = format!(
                "[{sev}] {} in {}: {} (alert {}, {})",
                esc(&a.kind),
                esc(&a.function),
                esc(&a.summary),
                a.id,
                a.time_text()
            );
            serde_json::json!({ "text": text }).to_string()
        }
    }
}
