//! HTTPS posting shared by the Splunk HEC and webhook outputs (reqwest with
//! rustls): time-outs, an optional private CA, and the classification of
//! answers into delivered, retry later, or fix the configuration.

use std::path::Path;
use std::time::Duration;

use super::SendError;
use super::deliver::failure;
use crate::error::{AnalyticsError, Result};

/// A client with `timeout` per request, trusting `ca_file` in addition to
/// the system's roots.
pub fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("fnwatch/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            AnalyticsError::Config(format!("cannot read ca_file {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| AnalyticsError::Config(format!("ca_file {}: {e}", path.display())))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| AnalyticsError::Config(format!("HTTP client set-up failed: {e}")))
}

/// `url` without its path and query, which may hold secrets (webhook URLs
/// often do): for messages and logs.
pub fn redact(url: &reqwest::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?"));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    if url.path() != "/" || url.query().is_some() {
        s.push_str("/…");
    }
    s
}

/// POSTs `body`; 2xx is delivered, 408/429/5xx and network failures are
/// retryable (honouring `Retry-After` in seconds), other answers are not.
pub async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    auth: Option<String>,
    headers: &[(String, String)],
    content_type: &str,
    body: Vec<u8>,
) -> std::result::Result<(), SendError> {
    let mut req = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(a) = auth {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let e = e.without_url();
            let what = if e.is_timeout() {
                "request timed out".to_string()
            } else if e.is_connect() {
                format!("cannot connect: {}", source_chain(&e))
            } else {
                format!("request failed: {}", source_chain(&e))
            };
            return Err(failure(true, what));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    let excerpt: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let retryable = status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error();
    let hint = match status.as_u16() {
        401 | 403 => " (check the token)",
        404 => " (check the URL)",
        _ => "",
    };
    Err(SendError {
        retryable,
        retry_after,
        message: format!("answered {status}{hint}: {excerpt}"),
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Parses an output's URL.
pub fn parse_url(url: &str) -> std::result::Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("`url` is not a URL ({e})"))?;
    match u.scheme() {
        "https" | "http" => Ok(u),
        other => Err(format!(
            "`url` must be https:// (or http://), got {other}://"
        )),
    }
}
