//! Shared pieces of the benchmark tools: a throwaway CA and server
//! certificate (so every TLS hop in the benchmark is verified, as in
//! production), rustls configurations, and a tiny `--key value` argument
//! parser so the tools need no CLI dependency. `mock` holds the sink's
//! provider-API checks.

pub mod mock;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `--key value` pairs after the program name.
pub fn args() -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(key) = k.strip_prefix("--") else {
            return Err(format!("unexpected argument {k:?}").into());
        };
        let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        out.insert(key.to_string(), v);
    }
    Ok(out)
}

/// A required argument parsed as `T`.
pub fn arg<T: std::str::FromStr>(a: &HashMap<String, String>, key: &str) -> Result<T, Error> {
    let v = a.get(key).ok_or_else(|| format!("missing --{key}"))?;
    v.parse()
        .map_err(|_| format!("--{key}: cannot parse {v:?}").into())
}

/// An optional argument parsed as `T`, or `default`.
pub fn arg_or<T: std::str::FromStr>(
    a: &HashMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, Error> {
    match a.get(key) {
        None => Ok(default),
        Some(_) => arg(a, key),
    }
}

/// Writes `ca.pem`, `server.pem` and `server.key` (for localhost/127.0.0.1) into `dir`.
pub fn write_certs(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "postern bench CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer)?;

    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server config from `server.pem` / `server.key` in `dir`.
pub fn server_config(dir: &Path, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs =
        CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Client config trusting only `ca.pem` in `dir`.
/// `resume`: offer TLS session resumption (rustls' in-memory store); off,
/// every connection does a full handshake.
pub fn client_config(dir: &Path, resume: bool) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
        roots.add(c?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}
