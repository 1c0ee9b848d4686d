//! DKIM: signing keys, the signer that runs between inspection and the
//! spool, `postern dkim keygen`, and the wrapper that keeps postern's
//! signatures away from upstreams configured with `dkim = false`.
//!
//! Receivers (and DMARC) judge a relay's mail by its DKIM signature, and
//! legacy senders cannot sign themselves, so postern signs on their behalf
//! with the key of the From domain (or its closest configured parent).
//! Canonicalization is relaxed/relaxed and no `l=` is used, so a signature
//! covers the whole body and survives the harmless rewrapping that relays do.

mod key;
mod keygen;
mod settings;
mod sign;
mod strip;

pub use key::{Algorithm, KeyError, PrivateKey};
pub use keygen::{
    DEFAULT_RSA_BITS, Generated, KeygenError, KeygenRequest, RSA_BITS, generate_pem, keygen,
    txt_strings, zone_record,
};
pub use settings::{Key, Settings, UnsignedPolicy};
pub use sign::{KeySlot, SIGNED_HEADERS, SignError, Signed, Signer, from_domain, headers_to_sign};
pub use strip::{WithoutSignatures, strip_signatures};

/// A domain as used in `d=` and for key lookup: lower case, no trailing
/// dot, IDNA A-labels (so a From domain written in Unicode under SMTPUTF8
/// finds the key configured for its `xn--` form and vice versa).
pub fn normalize_domain(domain: &str) -> Result<String, String> {
    let trimmed = domain.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("empty domain".to_string());
    }
    let ascii = idna::domain_to_ascii(trimmed)
        .map_err(|_| format!("{trimmed:?} is not a valid domain name (IDNA)"))?;
    check_labels(&ascii, false).map_err(|e| format!("{trimmed:?} is not a valid domain: {e}"))?;
    Ok(ascii)
}

/// A selector: one or more dot-separated DNS labels (RFC 6376 3.1).
pub fn check_selector(selector: &str) -> Result<String, String> {
    let s = selector.trim();
    check_labels(s, true).map_err(|e| format!("{s:?} is not a valid selector: {e}"))?;
    Ok(s.to_string())
}

fn check_labels(name: &str, allow_upper: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each label must have 1 to 63 characters".into());
        }
        let ok_char = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (allow_upper && c.is_ascii_uppercase())
        };
        if !label.chars().all(ok_char) {
            return Err("use letters, digits and '-' only".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
