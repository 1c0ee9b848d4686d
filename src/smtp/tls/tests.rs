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
