//! The Lambda Extensions API (2020-01-01) and the Telemetry API's
//! subscription (2022-07-01), as AWS documents them.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::request;
use crate::{Error, Result};

const REGISTER: &str = "/2020-01-01/extension/register";
const NEXT: &str = "/2020-01-01/extension/event/next";
const TELEMETRY: &str = "/2022-07-01/telemetry";
const ID_HEADER: &str = "Lambda-Extension-Identifier";

/// What registration tells the extension.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    #[serde(skip)]
    pub id: String,
    #[serde(default)]
    pub function_name: Option<String>,
    #[serde(default)]
    pub function_version: Option<String>,
    #[serde(default)]
    pub handler: Option<String>,
    /// Given when the request accepts the `accountId` feature.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// The events of `event/next`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "eventType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NextEvent {
    #[serde(rename_all = "camelCase")]
    Invoke {
        request_id: String,
        /// Epoch milliseconds when the invocation times out.
        deadline_ms: i64,
        #[serde(default)]
        invoked_function_arn: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Shutdown {
        #[serde(default)]
        shutdown_reason: Option<String>,
        deadline_ms: i64,
    },
}

/// A client of the Extensions API for one registered extension.
#[derive(Debug, Clone)]
pub struct ExtensionsApi {
    addr: String,
}

fn api_err(what: &'static str, addr: &str, why: impl Into<String>) -> Error {
    Error::LambdaApi {
        what,
        addr: addr.to_string(),
        why: why.into(),
    }
}

fn expect_ok(what: &'static str, addr: &str, status: StatusCode, body: &Bytes) -> Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
    Err(api_err(what, addr, format!("answered {status}: {text}")))
}

impl ExtensionsApi {
    pub fn new(addr: impl Into<String>) -> ExtensionsApi {
        ExtensionsApi { addr: addr.into() }
    }

    /// Registers for `INVOKE` and `SHUTDOWN` under `name` (which must be the
    /// extension's file name).
    pub async fn register(&self, name: &str) -> Result<Registered> {
        const WHAT: &str = "registering with the Lambda Extensions API";
        let body = Bytes::from(json!({"events": ["INVOKE", "SHUTDOWN"]}).to_string());
        let a = request(
            &self.addr,
            Method::POST,
            REGISTER,
            &[
                ("Lambda-Extension-Name", name),
                ("Lambda-Extension-Accept-Feature", "accountId"),
            ],
            body,
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| api_err(WHAT, &self.addr, e))?;
        expect_ok(WHAT, &self.addr, a.status, &a.body)?;
        let id = a
            .headers
            .get(ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                api_err(
                    WHAT,
                    &self.addr,
                    format!("the answer has no {ID_HEADER} header"),
                )
            })?
            .to_string();
        let mut r: Registered = serde_json::from_slice(&a.body).unwrap_or_default();
        r.id = id;
        Ok(r)
    }

    /// Waits for the next event (a long poll: Lambda answers when there is one).
    pub async fn next(&self, id: &str) -> Result<NextEvent> {
        const WHAT: &str = "waiting for the next Lambda event";
        let a = request(
            &self.addr,
            Method::GET,
            NEXT,
            &[(ID_HEADER, id)],
            Bytes::new(),
            None,
        )
        .await
        .map_err(|e| api_err(WHAT, &self.addr, e))?;
        expect_ok(WHAT, &self.addr, a.status, &a.body)?;
        serde_json::from_slice(&a.body).map_err(|e| {
            api_err(
                WHAT,
                &self.addr,
                format!(
                    "unreadable event ({e}): {}",
                    String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
                ),
            )
        })
    }

    /// Subscribes to the Telemetry API's platform and function records, pushed
    /// to `uri` (`http://sandbox.localdomain:PORT`).
    pub async fn subscribe_telemetry(&self, id: &str, uri: &str) -> Result<()> {
        const WHAT: &str = "subscribing to the Lambda Telemetry API";
        let body = json!({
            "schemaVersion": "2022-12-13",
            "types": ["platform", "function"],
            "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
            "destination": {"protocol": "HTTP", "URI": uri}
        });
        let a = request(
            &self.addr,
            Method::PUT,
            TELEMETRY,
            &[(ID_HEADER, id)],
            Bytes::from(body.to_string()),
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| api_err(WHAT, &self.addr, e))?;
        expect_ok(WHAT, &self.addr, a.status, &a.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_events() {
        let i: NextEvent = serde_json::from_str(
            r#"{"eventType":"INVOKE","deadlineMs":1676051730000,"requestId":"3da1f2dc-3222-475e-9205-e2e6c6318895","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5f35ae12"}}"#,
        )
        .unwrap();
        assert!(
            matches!(i, NextEvent::Invoke { ref request_id, deadline_ms: 1676051730000, .. } if request_id == "3da1f2dc-3222-475e-9205-e2e6c6318895")
        );
        let s: NextEvent = serde_json::from_str(
            r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1676051732000}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            NextEvent::Shutdown {
                shutdown_reason: Some("spindown".into()),
                deadline_ms: 1676051732000
            }
        );
    }
}
