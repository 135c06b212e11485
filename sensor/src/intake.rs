//! What the hooks send: JSON lines in unix datagrams (Python) or on a unix
//! stream socket (Node.js, whose core has no datagram sockets), untrusted
//! (the function may be compromised). Every line is read field by field against what the
//! contract allows for its type; anything else is rejected with a reason
//! that is counted, and nothing a message holds can make the extension fail.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixDatagram, UnixListener};

/// A message from a hook.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A hook started in the runtime process `pid`.
    Hello { pid: u32, runtime: String },
    /// An event of the contract (`dns`, `process`, `network`, `file`), its
    /// fields checked; the extension adds the identity and the time.
    Event {
        ty: &'static str,
        request_id: Option<String>,
        /// Epoch seconds when the hook saw it.
        t: Option<f64>,
        fields: Map<String, Value>,
    },
    /// The start of an invocation as the hook saw it: a sample of the event.
    Sample {
        request_id: Option<String>,
        event: Value,
        event_bytes: Option<i64>,
        trigger: Option<String>,
    },
    /// Events the hook itself could not send (the socket was full).
    HookDropped { dropped: u64 },
}

/// Why a line was rejected (a bounded set: these are metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    Oversized,
    NotUtf8,
    NotJson,
    NotObject,
    UnknownType,
    BadField,
    /// A stream connection beyond the most the extension serves at once.
    TooManyConnections,
}

impl Reject {
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Oversized => "oversized",
            Reject::NotUtf8 => "not_utf8",
            Reject::NotJson => "not_json",
            Reject::NotObject => "not_object",
            Reject::UnknownType => "unknown_type",
            Reject::BadField => "bad_field",
            Reject::TooManyConnections => "too_many_connections",
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str(usize),
    OneOf(&'static [&'static str]),
    StrList(usize, usize),
    Port,
    Count,
}

/// (field, kind, required) per event type.
type Spec = &'static [(&'static str, Kind, bool)];

const DNS: Spec = &[
    ("query", Kind::Str(1024), true),
    ("qtype", Kind::Str(16), false),
    ("rcode", Kind::Str(16), false),
    ("answers", Kind::StrList(64, 256), false),
];
const PROCESS: Spec = &[
    ("exe", Kind::Str(4096), true),
    ("args", Kind::StrList(256, 4096), false),
    ("cmdline", Kind::Str(16_384), false),
    ("parent_exe", Kind::Str(4096), false),
];
const NETWORK: Spec = &[
    ("direction", Kind::OneOf(&["outbound", "inbound"]), false),
    ("protocol", Kind::OneOf(&["tcp", "udp"]), false),
    ("remote_ip", Kind::Str(64), true),
    ("remote_port", Kind::Port, true),
    ("remote_host", Kind::Str(1024), false),
    ("bytes_out", Kind::Count, false),
    ("bytes_in", Kind::Count, false),
];
const FILE: Spec = &[
    ("path", Kind::Str(4096), true),
    (
        "op",
        Kind::OneOf(&["read", "write", "create", "delete", "exec", "chmod"]),
        true,
    ),
];

const TRIGGERS: &[&str] = &[
    "apigateway",
    "alb",
    "sqs",
    "sns",
    "s3",
    "dynamodb",
    "kinesis",
    "eventbridge",
    "schedule",
    "direct",
    "other",
];

fn check(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Str(max) => v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= max),
        Kind::OneOf(set) => v.as_str().is_some_and(|s| set.contains(&s)),
        Kind::StrList(n, max) => v.as_array().is_some_and(|a| {
            a.len() <= n && a.iter().all(|x| x.as_str().is_some_and(|s| s.len() <= max))
        }),
        Kind::Port => v.as_u64().is_some_and(|p| p <= 65_535),
        Kind::Count => v.as_u64().is_some(),
    }
}

fn request_id(o: &Map<String, Value>) -> Option<String> {
    o.get("request_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_string)
}

/// Reads one line. `sample_bytes` caps the kept event sample.
pub fn parse_line(line: &[u8], sample_bytes: usize) -> Result<Message, Reject> {
    let text = std::str::from_utf8(line).map_err(|_| Reject::NotUtf8)?;
    let v: Value = serde_json::from_str(text).map_err(|_| Reject::NotJson)?;
    let Value::Object(mut o) = v else {
        return Err(Reject::NotObject);
    };
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    let (ty, spec): (&'static str, Spec) = match ty {
        "dns" => ("dns", DNS),
        "process" => ("process", PROCESS),
        "network" => ("network", NETWORK),
        "file" => ("file", FILE),
        "hello" => {
            let pid = o
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or(Reject::BadField)?;
            let runtime = o
                .get("runtime")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            return Ok(Message::Hello { pid, runtime });
        }
        "hook_dropped" => {
            let dropped = o
                .get("dropped")
                .and_then(Value::as_u64)
                .ok_or(Reject::BadField)?;
            return Ok(Message::HookDropped { dropped });
        }
        "invoke" => {
            let event = match o.remove("event") {
                Some(Value::String(s)) => Value::String(truncate(s, sample_bytes)),
                Some(v @ Value::Object(_)) if v.to_string().len() <= sample_bytes => v,
                Some(v @ (Value::Object(_) | Value::Array(_))) => {
                    Value::String(truncate(v.to_string(), sample_bytes))
                }
                Some(Value::Null) | None => Value::Null,
                Some(_) => return Err(Reject::BadField),
            };
            let trigger = match o.get("trigger") {
                None | Some(Value::Null) => None,
                Some(t) if check(Kind::OneOf(TRIGGERS), t) => t.as_str().map(str::to_string),
                Some(_) => return Err(Reject::BadField),
            };
            return Ok(Message::Sample {
                request_id: request_id(&o),
                event,
                event_bytes: o
                    .get("event_bytes")
                    .and_then(Value::as_i64)
                    .filter(|n| *n >= 0),
                trigger,
            });
        }
        _ => return Err(Reject::UnknownType),
    };
    let mut fields = Map::new();
    for (name, kind, required) in spec {
        match o.remove(*name) {
            Some(Value::Null) | None if !*required => {}
            Some(v) if check(*kind, &v) => {
                fields.insert((*name).to_string(), v);
            }
            _ => return Err(Reject::BadField),
        }
    }
    Ok(Message::Event {
        ty,
        request_id: request_id(&o),
        t: o.get("t")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t > 0.0),
        fields,
    })
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What the reader hands each datagram's lines to.
pub type OnLines = Arc<dyn Fn(Vec<Result<Message, Reject>>) + Send + Sync>;

/// Binds the hooks' socket at `path` (replacing a stale one; writable by the
/// runtime's user) and reads it in the background.
pub fn listen(
    path: &Path,
    max_message: usize,
    sample_bytes: usize,
    on_lines: OnLines,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let sock = UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; max_message + 1];
        loop {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "hook socket: receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let out = if n > max_message {
                vec![Err(Reject::Oversized)]
            } else {
                buf[..n]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                    .map(|l| parse_line(l, sample_bytes))
                    .collect()
            };
            if !out.is_empty() {
                on_lines(out);
            }
        }
    });
    Ok(())
}

/// The stream socket beside the datagram socket at `socket`: the same path
/// with `.stream` appended (the Node.js hook derives it the same way).
pub fn stream_path(socket: &Path) -> std::path::PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".stream");
    std::path::PathBuf::from(p)
}

/// Most stream connections served at once; more are closed at once and
/// counted (each hooked process needs one).
pub const MAX_STREAM_CONNECTIONS: usize = 64;

/// Splits what a stream connection sends into lines, bounded: a line longer
/// than `max_message` is rejected once as oversized and skipped up to its
/// newline, so no sender can make the reader hold more than `max_message`.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    /// In the middle of an oversized line (already counted).
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max_message: usize) -> Self {
        LineSplitter {
            max: max_message,
            buf: Vec::new(),
            skipping: false,
        }
    }

    /// The complete lines in `data` (with what came before), parsed.
    pub fn push(&mut self, mut data: &[u8], sample_bytes: usize) -> Vec<Result<Message, Reject>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let nl = data.iter().position(|b| *b == b'\n');
            let (part, rest, complete) = match nl {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            data = rest;
            if self.skipping {
                if complete {
                    self.skipping = false;
                }
                continue;
            }
            if self.buf.len() + part.len() > self.max {
                self.buf.clear();
                out.push(Err(Reject::Oversized));
                self.skipping = !complete;
                continue;
            }
            self.buf.extend_from_slice(part);
            if complete {
                if !self.buf.iter().all(u8::is_ascii_whitespace) {
                    out.push(parse_line(&self.buf, sample_bytes));
                }
                self.buf.clear();
            }
        }
        out
    }
}

/// Binds the stream socket at `path` for hooks that cannot send datagrams
/// (Node.js): newline-separated JSON lines, the same messages as
/// [`listen`]. At most [`MAX_STREAM_CONNECTIONS`] at once; each reader holds
/// at most `max_message` bytes of an unfinished line.
pub fn listen_stream(
    path: &Path,
    max_message: usize,
    sample_bytes: usize,
    on_lines: OnLines,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let mut conn = match listener.accept().await {
                Ok((c, _)) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "hook stream socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_STREAM_CONNECTIONS {
                open.fetch_sub(1, Ordering::SeqCst);
                drop(conn);
                on_lines(vec![Err(Reject::TooManyConnections)]);
                continue;
            }
            let on_lines = on_lines.clone();
            let open = open.clone();
            tokio::spawn(async move {
                let mut split = LineSplitter::new(max_message);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            let out = split.push(&buf[..n], sample_bytes);
                            if !out.is_empty() {
                                on_lines(out);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "hook stream connection: read failed");
                            break;
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_contract_fields_and_nothing_else() {
        let m = parse_line(
            br#"{"type":"dns","query":"evil.example","qtype":"TXT","function":"other-fn","account":"999999999999","request_id":"r1","t":1.5}"#,
            100,
        )
        .unwrap();
        let Message::Event {
            ty,
            request_id,
            t,
            fields,
        } = m
        else {
            panic!()
        };
        assert_eq!(ty, "dns");
        assert_eq!(request_id.as_deref(), Some("r1"));
        assert_eq!(t, Some(1.5));
        assert_eq!(
            Value::Object(fields),
            json!({"query":"evil.example","qtype":"TXT"})
        );
    }

    #[test]
    fn rejects_each_kind_of_garbage_with_its_reason() {
        let cases: &[(&[u8], Reject)] = &[
            (b"\xff\xfe", Reject::NotUtf8),
            (b"{\"type\":", Reject::NotJson),
            (b"[1,2]", Reject::NotObject),
            (br#"{"type":"gpu"}"#, Reject::UnknownType),
            (br#"{"query":"x"}"#, Reject::UnknownType),
            (br#"{"type":"dns"}"#, Reject::BadField),
            (br#"{"type":"dns","query":7}"#, Reject::BadField),
            (
                br#"{"type":"network","remote_ip":"1.2.3.4","remote_port":70000}"#,
                Reject::BadField,
            ),
            (
                br#"{"type":"file","path":"/etc/passwd","op":"steal"}"#,
                Reject::BadField,
            ),
            (br#"{"type":"hello","pid":-1}"#, Reject::BadField),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_line(line, 100),
                Err(*want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn samples_are_capped() {
        let big = "é".repeat(100);
        let line =
            json!({"type":"invoke","request_id":"r","event":big,"event_bytes":200,"trigger":"sqs"})
                .to_string();
        let Ok(Message::Sample {
            event,
            event_bytes,
            trigger,
            ..
        }) = parse_line(line.as_bytes(), 11)
        else {
            panic!()
        };
        assert_eq!(event, json!("ééééé"));
        assert_eq!(event_bytes, Some(200));
        assert_eq!(trigger.as_deref(), Some("sqs"));
        let line = json!({"type":"invoke","event":{"a":1},"trigger":"pwn"}).to_string();
        assert_eq!(parse_line(line.as_bytes(), 100), Err(Reject::BadField));
    }

    #[test]
    fn stream_lines_are_split_across_reads_and_bounded() {
        let mut s = LineSplitter::new(64);
        let dns = br#"{"type":"dns","query":"a.example"}"#;
        // One line in three reads, then two in one.
        assert!(s.push(&dns[..5], 100).is_empty());
        assert!(s.push(&dns[5..20], 100).is_empty());
        let out = s.push(&[&dns[20..], b"\n\n[1]\n".as_slice()].concat(), 100);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(&out[0], Ok(Message::Event { ty: "dns", .. })));
        assert_eq!(out[1], Err(Reject::NotObject));
        // An endless line: rejected once, skipped to its newline, and the
        // reader holds no more than the limit meanwhile.
        let big = vec![b'x'; 50];
        let mut n = Vec::new();
        for _ in 0..100 {
            n.extend(s.push(&big, 100));
            assert!(s.buf.len() <= 64);
        }
        assert_eq!(n, vec![Err(Reject::Oversized)]);
        let out = s.push(&[b"tail\n".as_slice(), dns, b"\n"].concat(), 100);
        assert_eq!(
            out.len(),
            1,
            "the rest of the long line is not a message: {out:?}"
        );
        assert!(out[0].is_ok());
    }

    #[tokio::test]
    async fn the_stream_socket_takes_lines_and_survives_garbage() {
        use std::sync::Mutex;
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let path = stream_path(&dir.path().join("s.sock"));
        assert!(path.to_str().unwrap().ends_with("s.sock.stream"));
        let got: Arc<Mutex<Vec<Result<Message, Reject>>>> = Arc::default();
        let g = got.clone();
        listen_stream(
            &path,
            1000,
            100,
            Arc::new(move |l| g.lock().unwrap().extend(l)),
        )
        .unwrap();
        let mut bad = tokio::net::UnixStream::connect(&path).await.unwrap();
        bad.write_all(&[0xff; 5000]).await.unwrap();
        bad.write_all(b"\n{\"type\":\n").await.unwrap();
        drop(bad);
        let mut good = tokio::net::UnixStream::connect(&path).await.unwrap();
        good.write_all(b"{\"type\":\"hello\",\"pid\":7,\"runtime\":\"nodejs20\"}\n")
            .await
            .unwrap();
        // Too many at once: the extra ones are refused and counted.
        let mut held = Vec::new();
        for _ in 0..MAX_STREAM_CONNECTIONS + 3 {
            held.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let want = |v: &[Result<Message, Reject>]| {
            v.contains(&Ok(Message::Hello {
                pid: 7,
                runtime: "nodejs20".into(),
            })) && v
                .iter()
                .filter(|r| **r == Err(Reject::TooManyConnections))
                .count()
                >= 3
        };
        for _ in 0..200 {
            if want(&got.lock().unwrap()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let v = got.lock().unwrap().clone();
        assert!(want(&v), "{v:?}");
        assert!(v.contains(&Err(Reject::Oversized)), "{v:?}");
        assert!(v.contains(&Err(Reject::NotJson)), "{v:?}");
    }
}
