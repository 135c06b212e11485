//! The Telemetry API's pushes (schema 2022-12-13): a local HTTP listener and
//! the platform records the sensor uses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// Most bytes of one pushed batch read (the subscription asks for 256 KiB).
const MAX_BATCH: usize = 8 << 20;

/// The records of a batch that matter to the sensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `platform.initReport`: how long the cold start took.
    InitReport { duration_ms: Option<f64> },
    /// `platform.start`.
    Start { request_id: String },
    /// `platform.runtimeDone`: the runtime finished (the response is out).
    RuntimeDone {
        request_id: String,
        status: String,
        duration_ms: Option<f64>,
        error_type: Option<String>,
    },
    /// `platform.report`: the invocation's figures.
    Report {
        request_id: String,
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
        billed_ms: Option<i64>,
        memory_mb: Option<i64>,
        max_memory_mb: Option<i64>,
        init_ms: Option<f64>,
    },
    /// `platform.logsDropped`, `platform.telemetrySubscription`, `function`
    /// lines and the rest: not the sensor's business.
    Other,
}

/// One item: its `time` and record.
pub type Item = (String, Record);

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Reads one batch (a JSON array of `{time, type, record}`); the items it
/// cannot read are counted, not fatal.
pub fn parse_batch(body: &[u8]) -> Result<(Vec<Item>, usize), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let arr = v.as_array().ok_or("not a JSON array")?;
    let mut out = Vec::with_capacity(arr.len());
    let mut bad = 0;
    for item in arr {
        match parse_item(item) {
            Some(i) => out.push(i),
            None => bad += 1,
        }
    }
    Ok((out, bad))
}

fn parse_item(item: &Value) -> Option<Item> {
    let time = s(item, "time")?;
    let ty = item.get("type")?.as_str()?;
    let r = item.get("record")?;
    let m = r.get("metrics");
    let mf = |k: &str| m.and_then(|m| m.get(k)).and_then(Value::as_f64);
    let mi = |k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_f64)
            .map(|f| f.round() as i64)
    };
    let rid = || s(r, "requestId");
    let rec = match ty {
        "platform.initReport" => Record::InitReport {
            duration_ms: mf("durationMs"),
        },
        "platform.start" => Record::Start { request_id: rid()? },
        "platform.runtimeDone" => Record::RuntimeDone {
            request_id: rid()?,
            status: s(r, "status")?,
            duration_ms: mf("durationMs"),
            error_type: s(r, "errorType"),
        },
        "platform.report" => Record::Report {
            request_id: rid()?,
            status: s(r, "status"),
            error_type: s(r, "errorType"),
            duration_ms: mf("durationMs"),
            billed_ms: mi("billedDurationMs"),
            memory_mb: mi("memorySizeMB"),
            max_memory_mb: mi("maxMemoryUsedMB"),
            init_ms: mf("initDurationMs"),
        },
        _ => Record::Other,
    };
    Some((time, rec))
}

/// What the listener hands each batch to.
pub type OnBatch = Arc<dyn Fn(Vec<Item>, usize) + Send + Sync>;

/// Binds the listener on `addr` and serves pushes in the background; returns
/// the bound address.
pub async fn listen(addr: SocketAddr, on_batch: OnBatch) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "telemetry listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let on_batch = on_batch.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let on_batch = on_batch.clone();
                    async move { Ok::<_, Infallible>(handle(req, &on_batch).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "telemetry connection ended");
                }
            });
        }
    });
    Ok(local)
}

async fn handle(req: Request<Incoming>, on_batch: &OnBatch) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        r
    };
    let body = match Limited::new(req.into_body(), MAX_BATCH).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "telemetry push unreadable or over {MAX_BATCH} bytes");
            return reply(StatusCode::PAYLOAD_TOO_LARGE);
        }
    };
    match parse_batch(&body) {
        Ok((items, bad)) => {
            on_batch(items, bad);
            reply(StatusCode::OK)
        }
        Err(e) => {
            tracing::warn!(error = %e, bytes = body.len(), "telemetry push is not a batch");
            on_batch(Vec::new(), 1);
            reply(StatusCode::BAD_REQUEST)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_records() {
        let batch = br#"[
 {"time":"2022-10-12T00:03:50.000Z","type":"platform.initReport","record":{"initializationType":"on-demand","phase":"init","metrics":{"durationMs":125.33}}},
 {"time":"2022-10-12T00:03:50.100Z","type":"platform.start","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","version":"$LATEST"}},
 {"time":"2022-10-12T00:03:50.200Z","type":"function","record":"hello"},
 {"time":"2022-10-12T00:03:50.300Z","type":"platform.runtimeDone","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","status":"timeout","errorType":"Sandbox.Timedout","metrics":{"durationMs":3000.0,"producedBytes":0}}},
 {"time":"2022-10-12T00:03:50.400Z","type":"platform.report","record":{"requestId":"6d68ca91-49c9-448d-89b8-7ca3e6dc66aa","status":"timeout","metrics":{"durationMs":3000.1,"billedDurationMs":3000,"memorySizeMB":128,"maxMemoryUsedMB":41,"initDurationMs":125.33}}},
 {"type":"platform.report"},
 42
]"#;
        let (items, bad) = parse_batch(batch).unwrap();
        assert_eq!(bad, 2);
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[0].1,
            Record::InitReport {
                duration_ms: Some(125.33)
            }
        );
        assert_eq!(
            items[3].1,
            Record::RuntimeDone {
                request_id: "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa".into(),
                status: "timeout".into(),
                duration_ms: Some(3000.0),
                error_type: Some("Sandbox.Timedout".into())
            }
        );
        assert!(
            matches!(&items[4].1, Record::Report { billed_ms: Some(3000), max_memory_mb: Some(41), init_ms: Some(i), .. } if *i == 125.33)
        );
        assert!(parse_batch(b"{}").is_err());
    }
}
