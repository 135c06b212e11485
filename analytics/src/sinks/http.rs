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
    let text = read_limited(resp, ERROR_BODY_LIMIT).await;
    let excerpt: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let retryable = status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error();
    let refused_content = matches!(status.as_u16(), 400 | 413 | 422);
    let hint = match status.as_u16() {
        401 | 403 => " (check the token)",
        404 => " (check the URL)",
        _ => "",
    };
    Err(SendError {
        retryable,
        retry_after,
        message: format!("answered {status}{hint}: {excerpt}"),
        refused_content,
    })
}

/// The most bytes of an error answer's body read (for its excerpt): a
/// hostile or broken receiver cannot make fnwatch buffer more.
pub const ERROR_BODY_LIMIT: usize = 8 * 1024;

/// Up to `limit` bytes of a response's body, as text (lossy); the rest is
/// not read.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Warns when an output sends its token over plain `http://`: anyone on the
/// path can read it.
pub fn warn_if_plaintext_token(url: &reqwest::Url, has_token: bool) -> bool {
    if has_token && url.scheme() == "http" {
        tracing::warn!(
            url = %redact(url),
            "this output sends its token over plain http://, readable by anyone on the network path; use https://"
        );
        return true;
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An error answer's body is read only up to the limit, however long.
    #[tokio::test]
    async fn error_bodies_are_read_up_to_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body_len = 4 << 20;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head =
                format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: {body_len}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..(body_len / chunk.len()) {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let resp = reqwest::get(format!("http://{addr}/"))
            .await
            .expect("answer");
        let text = read_limited(resp, ERROR_BODY_LIMIT).await;
        assert_eq!(text.len(), ERROR_BODY_LIMIT);
        server.abort();
    }

    #[test]
    fn tokens_over_plain_http_are_warned_about() {
        let http = reqwest::Url::parse("http://siem.example:8088/x").expect("url");
        let https = reqwest::Url::parse("https://siem.example:8088/x").expect("url");
        assert!(warn_if_plaintext_token(&http, true));
        assert!(!warn_if_plaintext_token(&http, false));
        assert!(!warn_if_plaintext_token(&https, true));
    }
}
