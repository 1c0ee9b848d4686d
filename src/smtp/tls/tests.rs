use super::*;

#[test]
fn self_signed_builds() {
    assert!(server_config(&TlsSource::SelfSigned, "relay.test").is_ok());
}

#[test]
fn garbage_pem_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("c.pem");
    let k = dir.path().join("k.pem");
    std::fs::write(&c, "not a pem").unwrap();
    std::fs::write(&k, "not a pem").unwrap();
    let e = server_config(
        &TlsSource::Files {
            certificate: c,
            private_key: k,
        },
        "x",
    )
    .unwrap_err();
    assert!(e.to_string().contains("c.pem"), "{e}");
}

/// Runs a handshake in memory between `server` and a client offering
/// `suites` in that order; returns the suite agreed.
fn agreed(
    server: Arc<ServerConfig>,
    suites: Vec<rustls::SupportedCipherSuite>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::CipherSuite {
    #[derive(Debug)]
    struct AnyCert;
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.verify_tls12_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let mut client_provider = rustls::crypto::ring::default_provider();
    client_provider.cipher_suites = suites;
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("relay.test").unwrap();
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    while c.is_handshaking() || s.is_handshaking() {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        buf.clear();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    s.negotiated_cipher_suite().unwrap().suite()
}

#[test]
fn the_server_picks_aes_128_gcm_over_the_clients_first_choice() {
    use rustls::CipherSuite as S;
    use rustls::crypto::ring::cipher_suite as cs;
    let server = server_config(&TlsSource::SelfSigned, "relay.test").unwrap();
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let cases = [
        // OpenSSL's and rustls's own order: AES-256-GCM first.
        (
            vec![
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_128_GCM_SHA256,
            ],
            tls13,
            S::TLS13_AES_128_GCM_SHA256,
        ),
        (
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            tls12,
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        // A client without it still gets its own next best.
        (
            vec![
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
            ],
            tls13,
            S::TLS13_AES_256_GCM_SHA384,
        ),
    ];
    for (client, versions, expected) in cases {
        assert_eq!(agreed(server.clone(), client, versions), expected);
    }
}
