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
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
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
