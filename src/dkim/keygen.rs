//! `postern dkim keygen`: a new signing key on disk, and the DNS record and
//! config block that go with it.
//!
//! Operators get DKIM wrong mostly at the copy-paste step (a record cut at
//! 255 bytes, a missing `k=ed25519`, a key file readable by everyone), so
//! this prints the record ready for a zone file, already split into quoted
//! strings, and writes the key with mode 0600, never over an existing file.

use super::key::{Algorithm, PrivateKey};
use base64::Engine;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// RSA sizes ring can sign with; 2048 is what receivers expect today.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;
pub const DEFAULT_RSA_BITS: usize = 2048;

/// A TXT character-string holds at most 255 bytes (RFC 1035 3.3).
const TXT_CHUNK: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot generate key: {0}")]
    Generate(String),
    #[error("{} already exists; refusing to overwrite a key (move it away or pick another selector)", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `keygen` was asked for, as typed on the command line.
#[derive(Debug, Clone)]
pub struct KeygenRequest<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    pub algorithm: &'a str,
    pub bits: Option<usize>,
    pub out: &'a Path,
}

/// The files and text a successful `keygen` produced.
#[derive(Debug, Clone)]
pub struct Generated {
    pub path: PathBuf,
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    /// `v=DKIM1; k=...; p=...`
    pub txt_value: String,
}

impl Generated {
    /// The zone-file line: `S._domainkey.D. IN TXT ( "..." "..." )`.
    pub fn zone_record(&self) -> String {
        zone_record(&self.selector, &self.domain, &self.txt_value)
    }

    /// The `[[dkim]]` block to paste into the configuration.
    pub fn config_snippet(&self) -> String {
        format!(
            "[[dkim]]\ndomain = \"{}\"\nselector = \"{}\"\nalgorithm = \"{}\"\nprivate_key = \"file:{}\"\n",
            self.domain,
            self.selector,
            self.algorithm,
            self.path.display()
        )
    }
}

/// Generates the key, writes `OUT/DOMAIN.SELECTOR.pem` and returns what to
/// publish.
pub fn keygen(req: &KeygenRequest<'_>) -> Result<Generated, KeygenError> {
    let domain = super::normalize_domain(req.domain)
        .map_err(|e| KeygenError::Usage(format!("--domain: {e}")))?;
    let selector = super::check_selector(req.selector)
        .map_err(|e| KeygenError::Usage(format!("--selector: {e}")))?;
    let algorithm = Algorithm::parse(req.algorithm).ok_or_else(|| {
        KeygenError::Usage(format!(
            "--algorithm: {:?} is not supported; use rsa or ed25519",
            req.algorithm
        ))
    })?;
    let pem = generate_pem(algorithm, req.bits)?;
    // Load it back exactly as the daemon will: proves ring accepts it, and
    // the record is derived by the same code `dns-check` compares against.
    let key = PrivateKey::from_pem(algorithm, &pem)
        .map_err(|e| KeygenError::Generate(format!("generated key does not load: {e}")))?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(req.out)
        .map_err(|source| KeygenError::Io {
            path: req.out.to_path_buf(),
            source,
        })?;
    let dir = req
        .out
        .canonicalize()
        .unwrap_or_else(|_| req.out.to_path_buf());
    let path = dir.join(format!("{domain}.{selector}.pem"));
    let io = |source| KeygenError::Io {
        path: path.clone(),
        source,
    };
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeygenError::Exists(path));
        }
        Err(e) => return Err(io(e)),
    };
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(Generated {
        path,
        domain,
        selector,
        algorithm,
        txt_value: key.dns_record(),
    })
}

/// A fresh private key as PKCS#8 PEM text.
pub fn generate_pem(algorithm: Algorithm, bits: Option<usize>) -> Result<String, KeygenError> {
    match algorithm {
        Algorithm::Ed25519 => {
            if bits.is_some() {
                return Err(KeygenError::Usage(
                    "--bits applies to RSA keys only (Ed25519 keys have a fixed size)".into(),
                ));
            }
            // RFC 8410 PKCS#8 v1 (seed only), the form OpenSSL and other
            // DKIM tools read; ring's own generator writes v2, which
            // OpenSSL 3 refuses.
            const V1_PREFIX: [u8; 16] = [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|e| KeygenError::Generate(e.to_string()))?;
            let mut der = V1_PREFIX.to_vec();
            der.extend_from_slice(&seed);
            Ok(pem_encode("PRIVATE KEY", &der))
        }
        Algorithm::Rsa => {
            let bits = bits.unwrap_or(DEFAULT_RSA_BITS);
            if !RSA_BITS.contains(&bits) {
                return Err(KeygenError::Usage(format!(
                    "--bits {bits}: RSA keys must have {} to {} bits",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                )));
            }
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| KeygenError::Generate(e.to_string()))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| KeygenError::Generate(e.to_string()))?;
            Ok(pem_encode("PRIVATE KEY", der.as_bytes()))
        }
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so any byte boundary is a char boundary.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Splits a TXT value into quoted character-strings of at most 255 bytes
/// each (the limit applies to the unescaped bytes; `"` and `\` are escaped
/// after splitting). Never splits inside a UTF-8 character.
pub fn txt_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() || out.is_empty() {
        let mut cut = rest.len().min(TXT_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        let escaped = chunk.replace('\\', "\\\\").replace('"', "\\\"");
        out.push(format!("\"{escaped}\""));
        rest = tail;
    }
    out
}

/// `S._domainkey.D. IN TXT ( "..." "..." )`, with the owner name fully
/// qualified so the line is correct in any zone file.
pub fn zone_record(selector: &str, domain: &str, value: &str) -> String {
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        txt_strings(value).join(" ")
    )
}

#[cfg(test)]
mod tests;
