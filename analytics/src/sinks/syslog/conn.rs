//! The running syslog output: one connection, re-opened after failures.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types};

use super::config::{Protocol, SyslogConfig, split_host_port};
use super::{Header, message};
use crate::error::{AnalyticsError, Result};
use crate::sinks::SendError;
use crate::sinks::alert::AlertRecord;
use crate::sinks::deliver::failure;
use crate::sinks::render::{Format, Origin, printable_ascii};

enum Conn {
    Udp(UdpSocket),
    Tcp(BufWriter<TcpStream>),
    Tls(Box<BufWriter<TlsStream<TcpStream>>>),
}

/// A syslog output ready to send.
pub struct SyslogSink {
    protocol: Protocol,
    address: String,
    host: String,
    port: u16,
    format: Format,
    header: Header,
    origin: Origin,
    max_bytes: usize,
    timeout: Duration,
    tls: Option<(TlsConnector, pki_types::ServerName<'static>)>,
    conn: Option<Conn>,
    msg: String,
    frame: Vec<u8>,
}

impl SyslogSink {
    pub fn build(c: &SyslogConfig, timeout: Duration, origin: Origin) -> Result<SyslogSink> {
        let cfg_err = |m: String| AnalyticsError::Config(m);
        let (host, port) = split_host_port(&c.address).map_err(cfg_err)?;
        let hostname = match &c.hostname {
            Some(h) => printable_ascii(h, 255),
            None => origin.host.clone(),
        };
        let app = printable_ascii(&c.app_name, 48);
        let tls = if c.protocol == Protocol::Tls {
            let name = c.server_name.clone().unwrap_or_else(|| host.clone());
            let server_name = pki_types::ServerName::try_from(name.clone())
                .map_err(|e| cfg_err(format!("`{name}` is not a valid TLS server name: {e}")))?;
            Some((connector(c)?, server_name))
        } else {
            None
        };
        Ok(SyslogSink {
            protocol: c.protocol,
            address: c.address.clone(),
            host,
            port,
            format: c.format,
            header: Header {
                facility: c.facility_code().unwrap_or(16),
                app_name: if app.is_empty() { "-".into() } else { app },
                hostname: if hostname.is_empty() {
                    "-".into()
                } else {
                    hostname
                },
            },
            origin,
            max_bytes: c.max_message_bytes,
            timeout,
            tls,
            conn: None,
            msg: String::with_capacity(2048),
            frame: Vec::with_capacity(1 << 20),
        })
    }

    pub fn target(&self) -> String {
        let p = match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls => "tls",
        };
        format!("syslog {p} {}", self.address)
    }

    /// Sends a batch: every message written and flushed, or an error (the
    /// connection is then dropped and opened again on the next try).
    pub async fn send(&mut self, batch: &[&AlertRecord]) -> std::result::Result<(), SendError> {
        match self.try_send(batch).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    async fn try_send(&mut self, batch: &[&AlertRecord]) -> std::result::Result<(), SendError> {
        self.check_alive().await;
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let timeout = self.timeout;
        let io = |e: std::io::Error| failure(true, format!("sending failed: {e}"));
        let stalled = || failure(true, "sending timed out (receiver not reading)");
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        let result = match self.conn.as_mut() {
            Some(Conn::Udp(sock)) => {
                let mut r = Ok(());
                for a in batch {
                    self.msg.clear();
                    message(
                        a,
                        self.format,
                        &self.header,
                        &self.origin,
                        self.max_bytes,
                        &mut self.msg,
                    );
                    r = match tokio::time::timeout(timeout, sock.send(self.msg.as_bytes())).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(io(e)),
                        Err(_) => Err(stalled()),
                    };
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
            Some(Conn::Tcp(w)) => {
                frames(
                    batch,
                    self.format,
                    &self.header,
                    &self.origin,
                    self.max_bytes,
                    &mut self.msg,
                    &mut frame,
                );
                write_all(w, &frame, timeout)
                    .await
                    .map_err(|e| e.map_or_else(stalled, io))
            }
            Some(Conn::Tls(w)) => {
                frames(
                    batch,
                    self.format,
                    &self.header,
                    &self.origin,
                    self.max_bytes,
                    &mut self.msg,
                    &mut frame,
                );
                write_all(w.as_mut(), &frame, timeout)
                    .await
                    .map_err(|e| e.map_or_else(stalled, io))
            }
            None => Err(failure(true, "not connected")),
        };
        self.frame = frame;
        result
    }

    /// Drops a stream connection the receiver has closed (a restarted SIEM):
    /// writing into it would be accepted by the kernel and lost.
    async fn check_alive(&mut self) {
        let mut buf = [0u8; 256];
        let closed = match self.conn.as_mut() {
            Some(Conn::Tcp(w)) => matches!(
                w.get_mut().read(&mut buf).now_or_never(),
                Some(Ok(0) | Err(_))
            ),
            Some(Conn::Tls(w)) => matches!(
                w.get_mut().read(&mut buf).now_or_never(),
                Some(Ok(0) | Err(_))
            ),
            _ => false,
        };
        if closed {
            tracing::info!(target_addr = %self.address, "syslog receiver closed the connection; reconnecting");
            self.conn = None;
        }
    }

    async fn connect(&self) -> std::result::Result<Conn, SendError> {
        let what = |e: std::io::Error| failure(true, format!("cannot connect: {e}"));
        let addr = (self.host.as_str(), self.port);
        match self.protocol {
            Protocol::Udp => {
                let bind = if self.host.contains(':') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let sock = UdpSocket::bind(bind).await.map_err(what)?;
                sock.connect(addr).await.map_err(what)?;
                Ok(Conn::Udp(sock))
            }
            Protocol::Tcp | Protocol::Tls => {
                let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| failure(true, "connecting timed out"))?
                    .map_err(what)?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Conn::Tcp(BufWriter::with_capacity(1 << 16, tcp))),
                    Some((connector, name)) => {
                        let tls = tokio::time::timeout(
                            self.timeout,
                            connector.connect(name.clone(), tcp),
                        )
                        .await
                        .map_err(|_| failure(true, "TLS handshake timed out"))?
                        .map_err(|e| {
                            // A certificate the receiver cannot prove will not
                            // improve by retrying.
                            let cert = e.to_string().contains("certificate");
                            failure(!cert, format!("TLS handshake failed: {e}"))
                        })?;
                        Ok(Conn::Tls(Box::new(BufWriter::with_capacity(1 << 16, tls))))
                    }
                }
            }
        }
    }

    /// Closes the connection in an orderly way: for streams, half-closes and
    /// waits (up to the time-out) for the receiver to close its side, which
    /// it does after reading everything sent.
    pub async fn close(&mut self) -> std::result::Result<(), SendError> {
        let timeout = self.timeout;
        match self.conn.take() {
            Some(Conn::Tcp(mut w)) => finish(tokio::time::timeout(timeout, drain(&mut w)).await),
            Some(Conn::Tls(mut w)) => {
                finish(tokio::time::timeout(timeout, drain(w.as_mut())).await)
            }
            _ => Ok(()),
        }
    }
}

/// Flushes, half-closes, and reads until the receiver closes its side.
async fn drain<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    w: &mut BufWriter<S>,
) -> std::io::Result<()> {
    let mut buf = [0u8; 256];
    w.flush().await?;
    w.get_mut().shutdown().await?;
    while w.get_mut().read(&mut buf).await? > 0 {}
    Ok(())
}

/// Writes and flushes `bytes`; `Err(None)` when it did not finish in time.
async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    timeout: Duration,
) -> std::result::Result<(), Option<std::io::Error>> {
    match tokio::time::timeout(timeout, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

fn finish(
    r: std::result::Result<std::io::Result<()>, tokio::time::error::Elapsed>,
) -> std::result::Result<(), SendError> {
    match r {
        Ok(Ok(())) => Ok(()),
        // Receivers that reset instead of closing have still read what came
        // before the reset; only a failed write is a lost message, and those
        // surface in `send`.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(Err(e)) => Err(failure(true, format!("closing the connection failed: {e}"))),
        Err(_) => Err(failure(
            true,
            "the receiver did not close the connection in time",
        )),
    }
}

/// The batch as octet-counted frames (`LEN SP MSG`).
pub(super) fn frames(
    batch: &[&AlertRecord],
    format: Format,
    header: &Header,
    origin: &Origin,
    max_bytes: usize,
    msg: &mut String,
    out: &mut Vec<u8>,
) {
    for a in batch {
        msg.clear();
        message(a, format, header, origin, max_bytes, msg);
        out.extend_from_slice(msg.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(msg.as_bytes());
    }
}

fn connector(c: &SyslogConfig) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    match &c.ca_file {
        Some(path) => {
            use pki_types::pem::PemObject;
            let certs: Vec<_> = pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    AnalyticsError::Config(format!("cannot read ca_file {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(AnalyticsError::Config(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    AnalyticsError::Config(format!("ca_file {}: {e}", path.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(AnalyticsError::Config(
                    "no trusted root certificates found on this system; set `ca_file`".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AnalyticsError::Config(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
