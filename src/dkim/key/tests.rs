use super::*;

// A 32-byte seed in a PKCS#8 v1 envelope, as `openssl genpkey -algorithm
// ed25519` writes it (RFC 8410 example key).
const ED_V1: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

#[test]
fn ed25519_pkcs8_v1_loads_and_derives_the_rfc8410_public_key() {
    let k = PrivateKey::from_pem(Algorithm::Ed25519, ED_V1).unwrap();
    // RFC 8410 section 10.3: public key 19bf44096984cdfe8541bac167dc3b96
    // c85086aa30b6b6cb0c5c38ad703166e1.
    assert_eq!(
        k.dns_record(),
        "v=DKIM1; k=ed25519; p=Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="
    );
    assert!(!format!("{k:?}").contains("MC4C"));
}

#[test]
fn wrong_algorithm_and_garbage_are_named() {
    assert_eq!(
        PrivateKey::from_pem(Algorithm::Rsa, ED_V1).unwrap_err(),
        KeyError::WrongAlgorithm {
            configured: Algorithm::Rsa,
            found: Algorithm::Ed25519
        }
    );
    assert_eq!(
        PrivateKey::from_pem(Algorithm::Rsa, "hello").unwrap_err(),
        KeyError::NoPem
    );
    let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        PrivateKey::from_pem(Algorithm::Ed25519, bad),
        Err(KeyError::Invalid { .. })
    ));
}

#[test]
fn spki_wrapping_uses_long_form_lengths() {
    let spki = rsa_spki(&[0x30; 270]);
    // SEQUENCE, long form with two length bytes: 15 + 4 + 271 = 290.
    assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
    assert_eq!(
        &spki[4..19],
        &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00
        ]
    );
    assert_eq!(&spki[19..24], &[0x03, 0x82, 0x01, 0x0f, 0x00]);
    assert_eq!(spki.len(), 294);
}
