//! TLS for the endpoint: a rustls server (ring provider) from PEM files.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsFiles;
use crate::error::{AnalyticsError, Result};

/// The acceptor, and the certificate PEM (for SCRAM channel binding).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Vec<u8>)> {
    let cert_pem = std::fs::read(&files.cert).map_err(|e| {
        AnalyticsError::Server(format!(
            "cannot read TLS certificate {}: {e}",
            files.cert.display()
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            AnalyticsError::Server(format!(
                "TLS certificate {} is not PEM: {e}",
                files.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(AnalyticsError::Server(format!(
            "TLS certificate {} holds no PEM certificate",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        AnalyticsError::Server(format!(
            "cannot read TLS private key {}: {e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            files.key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AnalyticsError::Server(format!("TLS set-up: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            AnalyticsError::Server(format!(
                "TLS certificate {} and key {} do not make a server identity: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    // PostgreSQL 17's direct TLS (sslnegotiation=direct) requires this ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}
