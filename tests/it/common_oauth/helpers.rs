//! Test-side helpers for OAuth providers: form and JWT decoding, a shared
//! RSA key, and messages postern's header repair leaves untouched.

use base64::Engine as _;
use serde_json::Value;

/// Decodes an `application/x-www-form-urlencoded` body into ordered pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 form value")
}

/// `simple_message` plus a `Date:` header, so postern's header repair
/// (which adds a missing Date) leaves the bytes alone.
pub fn dated_message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    let mut m = b"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n".to_vec();
    m.extend_from_slice(&crate::common::simple_message(from, to, subject));
    m
}

/// The JWT's (header, claims) JSON and the signed input + signature.
pub fn jwt_parts(token: &str) -> (Value, Value, String, Vec<u8>) {
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap_or_else(|e| panic!("JWT part not base64url: {e}"))
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT has three parts: {token}");
    let header = serde_json::from_slice(&d(parts[0])).expect("JWT header JSON");
    let claims = serde_json::from_slice(&d(parts[1])).expect("JWT claims JSON");
    (
        header,
        claims,
        format!("{}.{}", parts[0], parts[1]),
        d(parts[2]),
    )
}

/// An RSA key made once per test binary (slow in debug builds):
/// (PKCS#8 PEM, PKCS#1 RSAPublicKey DER for ring's verifier).
pub fn rsa_key() -> &'static (String, Vec<u8>) {
    static KEY: std::sync::OnceLock<(String, Vec<u8>)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8 pem")
            .to_string();
        let public = key.to_public_key().to_pkcs1_der().expect("public der");
        (pem, public.as_bytes().to_vec())
    })
}
