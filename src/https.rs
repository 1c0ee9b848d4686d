//! The HTTPS client every outbound request uses: upstream APIs, OAuth
//! token endpoints, the validation hook.
//!
//! One builder so that every request postern makes trusts the same roots
//! (the system store plus an operator's `ca_file`), uses ring as the
//! crypto provider, never follows redirects and reports the same errors.
//! A leaf module: it knows nothing of upstreams or configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Where an HTTPS API is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// API root without trailing slash, e.g. `https://api.sendgrid.com`.
    pub base_url: String,
    /// Whole-request timeout (connect, send, response).
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM), added to the system roots.
    pub ca_file: Option<PathBuf>,
}

/// Why a client could not be built. The caller names whose client it is.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("no trusted root certificates (system store empty and no ca_file)")]
    NoRoots,
    #[error("{0}")]
    Other(String),
}

/// The pooled client every HTTP-based upstream uses: system roots plus
/// `ca_file`, a whole-request timeout, and no redirects (following one
/// would resend credentials elsewhere or turn the POST into a GET; a
/// redirect means the configured url is wrong).
pub fn build_client(
    name: &str,
    ca_file: Option<&Path>,
    https: bool,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    let tls = tls_config(name, ca_file, https)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        // Shorter than the whole-request timeout, so a hung connect or TLS
        // handshake is reported as a connect error (nothing was sent), not
        // as an ambiguous timeout.
        .connect_timeout((timeout * 3 / 4).min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Other(format!("cannot build http client: {}", error_chain(&e))))
}

/// "outer: inner: root cause", because reqwest's own Display hides the
/// part an operator needs ("Connection refused", "certificate expired").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// rustls config with the system roots plus `ca_file`, ring as the crypto
/// provider (reqwest is built without one), ALPN h2 then http/1.1.
pub fn tls_config(
    name: &str,
    ca_file: Option<&Path>,
    need_roots: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(upstream = name, error = %err, "problem loading a system root certificate");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_error = |reason: String| ClientError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("no PEM certificates found".to_string()));
        }
    }
    if need_roots && roots.is_empty() {
        return Err(ClientError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Other(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
