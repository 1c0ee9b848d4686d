//! TLS server configuration for the SMTP listeners.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3 only (rustls implements
//! nothing older). Certificates come from PEM files, or for demos from a
//! throwaway self-signed certificate made at start.

use crate::config::TlsSource;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("certificate and key do not work together: {0}")]
    Config(String),
    #[error("cannot generate self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The ring provider, the only crypto library postern links.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn server_config(source: &TlsSource, hostname: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = match source {
        TlsSource::Files {
            certificate,
            private_key,
        } => {
            let cpath = certificate.display().to_string();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::Certificate {
                    path: cpath.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::Certificate {
                    path: cpath,
                    reason: "no CERTIFICATE block found".into(),
                });
            }
            let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| TlsError::Key {
                path: private_key.display().to_string(),
                reason: e.to_string(),
            })?;
            (certs, key)
        }
        TlsSource::SelfSigned => self_signed(hostname)?,
    };
    let mut config = ServerConfig::builder_with_provider(server_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The ring provider with AES-128-GCM first, then AES-256-GCM, then
/// ChaCha20-Poly1305 (each for TLS 1.3 and 1.2), the order the server
/// picks in whatever the client prefers. Most clients (OpenSSL, rustls)
/// list AES-256-GCM with SHA-384 first; SHA-384 has no CPU instructions
/// here while SHA-256 does, so the handshake's key schedule costs less
/// with AES-128-GCM, which is as safe a choice (it is TLS 1.3's mandatory
/// suite).
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| preference(s.suite()));
    Arc::new(provider)
}

fn preference(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    }
}

fn self_signed(
    hostname: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((vec![cert.cert.der().clone()], key))
}

#[cfg(test)]
mod tests;
