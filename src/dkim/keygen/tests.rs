use super::*;

#[test]
fn txt_values_split_at_255_bytes() {
    let v = "a".repeat(600);
    let parts = txt_strings(&v);
    let lens: Vec<usize> = parts.iter().map(|p| p.len() - 2).collect();
    assert_eq!(lens, [255, 255, 90]);
    assert!(parts.iter().all(|p| p.starts_with('"') && p.ends_with('"')));
    assert_eq!(txt_strings("v=DKIM1"), ["\"v=DKIM1\""]);
    assert_eq!(txt_strings(""), ["\"\""]);
    assert_eq!(txt_strings(&"b".repeat(255)).len(), 1);
    assert_eq!(txt_strings(&"b".repeat(256)).len(), 2);
    // Escaping happens after the split and does not count.
    assert_eq!(txt_strings("a\"b"), ["\"a\\\"b\""]);
    // A multibyte character straddling byte 255 moves to the next string.
    let s = format!("{}é", "x".repeat(254));
    assert_eq!(
        txt_strings(&s),
        [format!("\"{}\"", "x".repeat(254)), "\"é\"".into()]
    );
}

#[test]
fn zone_record_shape() {
    assert_eq!(
        zone_record("s1", "example.com", "v=DKIM1; k=ed25519; p=AAAA"),
        "s1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; p=AAAA\" )"
    );
}

#[test]
fn ed25519_keygen_writes_0600_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let req = KeygenRequest {
        domain: "Example.COM.",
        selector: "ed1",
        algorithm: "ed25519",
        bits: None,
        out: &out,
    };
    let g = keygen(&req).unwrap();
    assert_eq!(g.domain, "example.com");
    assert!(g.path.ends_with("example.com.ed1.pem"));
    let mode = std::fs::metadata(&g.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(g.txt_value.starts_with("v=DKIM1; k=ed25519; p="));
    let pem = std::fs::read_to_string(&g.path).unwrap();
    let k = PrivateKey::from_pem(Algorithm::Ed25519, &pem).unwrap();
    assert_eq!(k.dns_record(), g.txt_value);
    assert!(matches!(keygen(&req), Err(KeygenError::Exists(_))));
    assert_eq!(std::fs::read_to_string(&g.path).unwrap(), pem);
    let bad = KeygenRequest {
        bits: Some(2048),
        selector: "ed2",
        ..req
    };
    assert!(matches!(keygen(&bad), Err(KeygenError::Usage(_))));
    let bad = KeygenRequest {
        algorithm: "dsa",
        selector: "ed2",
        ..req
    };
    assert!(matches!(keygen(&bad), Err(KeygenError::Usage(_))));
}
