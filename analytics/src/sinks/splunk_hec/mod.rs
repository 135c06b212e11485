//! Splunk HTTP Event Collector output: batches of HEC event objects POSTed
//! to `/services/collector/event` with `Authorization: Splunk <token>`.

mod config;

pub use config::HecConfig;

use std::time::Duration;

use super::SendError;
use super::alert::AlertRecord;
use super::config::Secret;
use super::http::{client, parse_url, post, redact, warn_if_plaintext_token};
use super::render::{HecMeta, Origin, hec_event};
use crate::error::{AnalyticsError, Result};

/// A HEC output ready to send.
pub struct HecSink {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Secret,
    meta: HecMeta,
    format: super::render::Format,
    origin: Origin,
}

impl HecSink {
    pub fn build(c: &HecConfig, timeout: Duration, origin: Origin) -> Result<HecSink> {
        let url = parse_url(&c.url).map_err(AnalyticsError::Config)?;
        let token = Secret::load(
            c.token_env.as_deref(),
            c.token_file.as_ref(),
            "splunk-hec token",
        )?
        .ok_or_else(|| {
            AnalyticsError::Config(
                "a splunk-hec output needs `token_env` or `token_file` (the HEC token)".into(),
            )
        })?;
        warn_if_plaintext_token(&url, true);
        Ok(HecSink {
            client: client(timeout, c.ca_file.as_deref())?,
            url,
            token,
            meta: HecMeta {
                source: c.source.clone(),
                sourcetype: c.sourcetype.clone(),
                index: c.index.clone(),
            },
            format: c.format,
            origin,
        })
    }

    pub fn target(&self) -> String {
        format!("splunk-hec {}", redact(&self.url))
    }

    /// One POST with the batch's events, one per line.
    pub async fn send(&mut self, batch: &[&AlertRecord]) -> std::result::Result<(), SendError> {
        let mut body = String::new();
        for a in batch {
            hec_event(a, self.format, &self.meta, &self.origin, &mut body);
            body.push('\n');
        }
        post(
            &self.client,
            &self.url,
            Some(format!("Splunk {}", self.token.expose())),
            &[],
            "application/json",
            body.into_bytes(),
        )
        .await
    }
}
