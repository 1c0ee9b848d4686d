use super::*;

fn test_key() -> (String, Vec<u8>) {
    // rcgen cannot make RSA keys with ring; the dkim keygen dependency can.
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key.to_public_key().to_pkcs1_der().unwrap();
    (pem, public.as_bytes().to_vec())
}

/// `public` is the PKCS#1 RSAPublicKey DER, the form ring verifies with.
fn verify(token: &str, public: &[u8], alg: &'static dyn signature::VerificationAlgorithm) {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    signature::UnparsedPublicKey::new(alg, public)
        .verify(signed.as_bytes(), &sig)
        .unwrap();
}

#[test]
fn signs_verifiable_rs256_and_ps256() {
    let (pem, public) = test_key();
    let signer = RsaSigner::from_pem(&pem).unwrap();
    assert!(!format!("{signer:?}").contains("PRIVATE"));
    let claims = serde_json::json!({"iss": "me", "n": 1});
    let rs = signer.sign(JwtAlg::Rs256, Map::new(), &claims).unwrap();
    verify(&rs, &public, &signature::RSA_PKCS1_2048_8192_SHA256);
    let mut h = Map::new();
    h.insert("x5t#S256".into(), Value::from("abc"));
    let ps = signer.sign(JwtAlg::Ps256, h, &claims).unwrap();
    verify(&ps, &public, &signature::RSA_PSS_2048_8192_SHA256);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(ps.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": "abc"})
    );
}

#[test]
fn rejects_garbage_and_ec_keys() {
    assert!(matches!(RsaSigner::from_pem("nope"), Err(JwtError::Key(_))));
    let ec = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let e = RsaSigner::from_pem(&ec).unwrap_err();
    assert!(e.to_string().contains("RSA"), "{e}");
    assert!(cert_thumbprint_s256(&ec).is_err());
}

#[test]
fn uuid_shape() {
    let u = random_uuid();
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4");
    assert_ne!(u, random_uuid());
}
