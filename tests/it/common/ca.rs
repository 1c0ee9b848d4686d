//! A throwaway certificate authority made at test time. It exists so that
//! every TLS hop in the tests (client → postern, postern → mock upstream) is
//! verified against a real chain instead of being switched off, exactly as a
//! deployment would do it, without shipping key material in the repository.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tempfile::TempDir;

/// The test CA plus one server certificate for `localhost`, 127.0.0.1 and ::1,
/// written as PEM files into a private temporary directory.
pub struct TestCa {
    /// Holds the PEM files for as long as the CA lives.
    _dir: TempDir,
    /// CA certificate (PEM), to be trusted by clients and by postern's `ca_file`.
    pub ca_pem: PathBuf,
    /// Server certificate (PEM), followed by nothing else.
    pub cert_pem: PathBuf,
    /// Server private key (PKCS#8 PEM).
    pub key_pem: PathBuf,
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// Generates a fresh CA and server certificate.
    pub fn new() -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("postern-ca-")
            .tempdir()
            .expect("create CA tempdir");

        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "postern test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().expect("generate server key");
        let mut leaf = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .expect("server params");
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.is_ca = IsCa::NoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("sign server cert");

        let ca_pem = dir.path().join("ca.pem");
        let cert_pem = dir.path().join("server.pem");
        let key_pem = dir.path().join("server.key");
        std::fs::write(&ca_pem, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&cert_pem, leaf_cert.pem()).expect("write server.pem");
        std::fs::write(&key_pem, leaf_key.serialize_pem()).expect("write server.key");

        TestCa {
            ca_der: ca_cert.der().clone(),
            cert_der: leaf_cert.der().clone(),
            key_der: leaf_key.serialize_der(),
            _dir: dir,
            ca_pem,
            cert_pem,
            key_pem,
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A rustls server configuration presenting the `localhost` certificate.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("server cert");
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }

    /// A rustls client configuration trusting only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add CA root");
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Self::provider())
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// The name clients verify the server certificate against.
    pub fn server_name() -> ServerName<'static> {
        ServerName::try_from("localhost").expect("server name")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
