//! DKIM private keys: loading PEM text into a key ring can sign with, and
//! deriving the public half as it must appear in DNS.
//!
//! Keys are loaded once, when the configuration is read, so that a bad PEM
//! file is reported at its `private_key = ...` line instead of surfacing as a
//! `451` on the first message. The public key is derived from the private
//! one (never configured separately), so `keygen`, `dns-check` and the
//! signer cannot disagree about which key a selector holds.

use base64::Engine;
use mail_auth::common::crypto::{
    Algorithm as MaAlgorithm, DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey,
};
use mail_auth::common::headers::Writable;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::fmt;

/// The two signing algorithms postern offers (RFC 6376 rsa-sha256, RFC 8463
/// ed25519-sha256); rsa-sha1 is obsolete and never produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The spelling used in the config, in `keygen --algorithm` and in the
    /// DNS record's `k=` tag.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "rsa" => Some(Algorithm::Rsa),
            "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why PEM text is not a usable signing key. The text is meant to follow
/// `key `private_key`: ` in a config diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no private key found in the PEM text (expected an unencrypted \"BEGIN PRIVATE KEY\" \
         (PKCS#8) or \"BEGIN RSA PRIVATE KEY\" (PKCS#1) block; create one with `postern dkim keygen`)"
    )]
    NoPem,
    #[error("the key is an {found} key but algorithm = \"{configured}\"")]
    WrongAlgorithm {
        configured: Algorithm,
        found: Algorithm,
    },
    #[error("not a usable {algorithm} private key: {reason}")]
    Invalid {
        algorithm: Algorithm,
        reason: String,
    },
}

/// A loaded private key plus the public key derived from it.
pub struct PrivateKey {
    inner: DkimKey,
    algorithm: Algorithm,
    /// The `p=` bytes: SubjectPublicKeyInfo DER for RSA (what opendkim and
    /// every major provider publish), the raw 32-byte key for Ed25519.
    public: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm)
    }
}

impl PrivateKey {
    /// Parses PEM text as a key of `algorithm`: PKCS#8 for both algorithms,
    /// PKCS#1 too for RSA. RSA keys must be 2048 to 4096 bits (ring's range;
    /// receivers ignore shorter ones anyway).
    pub fn from_pem(algorithm: Algorithm, pem: &str) -> Result<PrivateKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyError::NoPem)?;
        match load(algorithm, &der) {
            Ok(key) => Ok(key),
            Err(reason) => {
                let other = match algorithm {
                    Algorithm::Rsa => Algorithm::Ed25519,
                    Algorithm::Ed25519 => Algorithm::Rsa,
                };
                if load(other, &der).is_ok() {
                    return Err(KeyError::WrongAlgorithm {
                        configured: algorithm,
                        found: other,
                    });
                }
                Err(KeyError::Invalid { algorithm, reason })
            }
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key bytes as published in `p=`.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The TXT record value for this key: `v=DKIM1; k=rsa; p=...`.
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm,
            base64::engine::general_purpose::STANDARD.encode(&self.public)
        )
    }

    pub(super) fn signing_key(&self) -> KeyRef<'_> {
        KeyRef(&self.inner)
    }
}

fn load(algorithm: Algorithm, der: &PrivateKeyDer<'_>) -> Result<PrivateKey, String> {
    match algorithm {
        Algorithm::Rsa => {
            let key = RsaKey::<Sha256>::from_key_der(der.clone_key()).map_err(ring_reason)?;
            let public = rsa_spki(&key.public_key());
            Ok(PrivateKey {
                inner: DkimKey::Rsa(key),
                algorithm,
                public,
            })
        }
        Algorithm::Ed25519 => {
            let PrivateKeyDer::Pkcs8(p8) = der else {
                return Err("Ed25519 keys must be PKCS#8 (\"BEGIN PRIVATE KEY\")".to_string());
            };
            // "maybe_unchecked" also accepts PKCS#8 v1 files without the
            // embedded public key, which is what `openssl genpkey` writes.
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
                .map_err(ring_reason)?;
            let public = key.public_key();
            Ok(PrivateKey {
                inner: DkimKey::Ed25519(key),
                algorithm,
                public,
            })
        }
    }
}

/// ring's rejection reasons are terse identifiers; say what they mean.
fn ring_reason(e: mail_auth::Error) -> String {
    let text = e.to_string();
    if text.contains("TooSmall") {
        "the key is too small (RSA keys must be at least 2048 bits)".to_string()
    } else if text.contains("TooLarge") {
        "the key is too large (RSA keys may have at most 4096 bits)".to_string()
    } else {
        text
    }
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280 4.1),
/// the form DKIM records carry.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x00];
    bits.extend_from_slice(pkcs1);
    let mut body = ALG.to_vec();
    der_tlv(0x03, &bits, &mut body);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(0x30, &body, &mut out);
    out
}

fn der_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// Lets mail-auth's signer borrow a key: its builder takes the key by value
/// and keys are not `Clone`, but the header list differs per message.
pub(super) struct KeyRef<'a>(&'a DkimKey);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> MaAlgorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests;
