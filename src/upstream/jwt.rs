//! Signed JSON Web Tokens for OAuth client authentication.
//!
//! Both OAuth providers want an RSA-signed JWT instead of a password: Google
//! exchanges a service account's RS256 assertion for an access token, and
//! Microsoft Entra accepts a PS256 client assertion made with the app's
//! certificate key. ring signs; this file only frames header and claims.
//! Keys come from PEM (PKCS#8 or PKCS#1) and never appear in Debug output.

use std::fmt;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value};

/// Why a key, certificate or signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("private key: {0}")]
    Key(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("signing failed")]
    Sign,
}

/// JWS algorithms postern signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Google service accounts).
    Rs256,
    /// RSASSA-PSS with SHA-256 (Microsoft Entra certificate credentials).
    Ps256,
}

impl JwtAlg {
    fn name(self) -> &'static str {
        match self {
            JwtAlg::Rs256 => "RS256",
            JwtAlg::Ps256 => "PS256",
        }
    }
}

/// An RSA private key ready to sign.
pub struct RsaSigner {
    key: RsaKeyPair,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaSigner(<{}-bit key redacted>)",
            self.key.public().modulus_len() * 8
        )
    }
}

impl RsaSigner {
    /// Parses the first private key in `pem` (`PRIVATE KEY` or `RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<RsaSigner, JwtError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            JwtError::Key(format!(
                "no usable PEM private key ({e}); expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----"
            ))
        })?;
        let key = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(JwtError::Key(
                    "only RSA keys are supported (found an EC key)".to_string(),
                ));
            }
        }
        .map_err(|e| JwtError::Key(format!("not a usable RSA key: {e}")))?;
        Ok(RsaSigner { key })
    }

    /// `header.claims.signature`, each base64url without padding. `alg`
    /// and `typ` are set here so callers cannot get them wrong.
    pub fn sign(
        &self,
        alg: JwtAlg,
        mut header: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, JwtError> {
        header.insert("alg".into(), Value::from(alg.name()));
        header.insert("typ".into(), Value::from("JWT"));
        let header = serde_json::to_vec(&Value::Object(header)).map_err(|_| JwtError::Sign)?;
        let claims = serde_json::to_vec(claims).map_err(|_| JwtError::Sign)?;
        let mut input = b64url(&header);
        input.push('.');
        input.push_str(&b64url(&claims));
        let padding: &dyn signature::RsaEncoding = match alg {
            JwtAlg::Rs256 => &signature::RSA_PKCS1_SHA256,
            JwtAlg::Ps256 => &signature::RSA_PSS_SHA256,
        };
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .map_err(|_| JwtError::Sign)?;
        input.push('.');
        input.push_str(&b64url(&sig));
        Ok(input)
    }
}

/// base64url without padding (RFC 7515 section 2).
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `x5t#S256`: base64url SHA-256 of the first certificate's DER in `pem`.
pub fn cert_thumbprint_s256(pem: &str) -> Result<String, JwtError> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        JwtError::Certificate(format!(
            "no PEM certificate ({e}); expected -----BEGIN CERTIFICATE-----"
        ))
    })?;
    Ok(b64url(
        ring::digest::digest(&ring::digest::SHA256, cert.as_ref()).as_ref(),
    ))
}

/// A random version 4 UUID, for `jti` (Entra asks for a GUID).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    // SystemRandom only fails if the OS has no entropy source; a jti then
    // stays unique enough through the time-derived fallback.
    if SystemRandom::new().fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests;
