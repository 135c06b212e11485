//! Alert outputs ("sinks"): stored alerts delivered to SIEMs and chat.
//!
//! Start at [`config::OutputConfig`] (one `[[outputs]]` table of
//! `fnwatch.toml`), which [`Sink::build`] turns into a running output, and at
//! [`deliver::plan`] / [`deliver::deliver`], which work out what an output
//! still owes (filters, its [`ledger::Ledger`], rate limiting) and send it in
//! order, at least once. Renderings are in [`render`].
//!
//! The set of outputs is closed: `syslog`, `splunk-hec`, `webhook`, `file`.

pub mod alert;
pub mod config;
pub mod deliver;
pub mod file;
mod http;
pub mod ledger;
pub mod render;
pub mod splunk_hec;
pub mod syslog;
pub mod webhook;

use std::time::Duration;

use config::{OutputConfig, SinkConfig};
use render::Origin;

use crate::error::Result;

/// A failed send: whether trying again can help, and when to.
#[derive(Debug, Clone)]
pub struct SendError {
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    pub message: String,
    /// The receiver refused this batch's content (too large, or an event it
    /// cannot take: HTTP 400, 413, 422), not the output as a whole: smaller
    /// batches may pass, and a single alert it refuses is parked.
    pub refused_content: bool,
}

/// A running output.
pub enum Sink {
    Syslog(Box<syslog::SyslogSink>),
    SplunkHec(Box<splunk_hec::HecSink>),
    Webhook(Box<webhook::WebhookSink>),
    File(Box<file::FileSink>),
}

impl Sink {
    /// Builds the output `cfg` describes (reads its secrets; does not connect).
    pub fn build(cfg: &OutputConfig, origin: Origin) -> Result<Sink> {
        let ctx = |e: crate::AnalyticsError| {
            crate::AnalyticsError::Config(format!("output `{}`: {e}", cfg.name))
        };
        Ok(match &cfg.sink {
            SinkConfig::Syslog(c) => Sink::Syslog(Box::new(
                syslog::SyslogSink::build(c, cfg.timeout, origin).map_err(ctx)?,
            )),
            SinkConfig::SplunkHec(c) => Sink::SplunkHec(Box::new(
                splunk_hec::HecSink::build(c, cfg.timeout, origin).map_err(ctx)?,
            )),
            SinkConfig::Webhook(c) => Sink::Webhook(Box::new(
                webhook::WebhookSink::build(c, cfg.timeout, origin).map_err(ctx)?,
            )),
            SinkConfig::File(c) => Sink::File(Box::new(file::FileSink::build(c, origin))),
        })
    }

    /// Where it sends, for messages (secrets left out).
    pub fn target(&self) -> String {
        match self {
            Sink::Syslog(s) => s.target(),
            Sink::SplunkHec(s) => s.target(),
            Sink::Webhook(s) => s.target(),
            Sink::File(s) => s.target(),
        }
    }

    /// Sends a batch, in order; `Ok` once the receiver has it (as far as
    /// its protocol can tell).
    pub async fn send(
        &mut self,
        batch: &[&alert::AlertRecord],
    ) -> std::result::Result<(), SendError> {
        match self {
            Sink::Syslog(s) => s.send(batch).await,
            Sink::SplunkHec(s) => s.send(batch).await,
            Sink::Webhook(s) => s.send(batch).await,
            Sink::File(s) => s.send(batch).await,
        }
    }

    /// Ends the run in an orderly way (stream outputs wait for the receiver
    /// to close its side).
    pub async fn close(&mut self) -> std::result::Result<(), SendError> {
        match self {
            Sink::Syslog(s) => s.close().await,
            _ => Ok(()),
        }
    }
}
