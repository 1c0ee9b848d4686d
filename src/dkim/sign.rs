//! The signer: picks the signing domain from the From header, picks the
//! keys valid right now, chooses the headers to sign, and produces the
//! `DKIM-Signature:` fields that are prepended to the message.
//!
//! It works on the final bytes (after inspection and header repairs) and
//! runs before the spool, so the stored message is exactly what leaves
//! postern. Signing is CPU work (an RSA-2048 signature costs ~1 ms, hashing
//! a 25 MiB body far more): acceptance calls [`Signer::sign_into`] in
//! inspection's task (`inspect::Inspector::run_then`), which runs on the
//! blocking pool, a bounded number at once, unless the message is small
//! and [`Signer::cost`] says no RSA key is configured (an Ed25519
//! signature of a small message takes tens of microseconds).

use super::key::{Algorithm, PrivateKey};
use super::{Settings, UnsignedPolicy};
use crate::inspect::Cost;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// Headers signed when present (RFC 6376 5.4.1's recommendations plus the
/// RFC 8058 one-click unsubscribe pair, which must be signed to count).
/// Trace and transport headers (Received, Return-Path) are never signed:
/// relays after postern add to them.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// One configured key with its validity window.
#[derive(Debug, Clone)]
pub struct KeySlot {
    pub domain: String,
    pub selector: String,
    pub key: Arc<PrivateKey>,
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
}

impl KeySlot {
    /// `not_before` is inclusive, `not_after` exclusive, so a new key can
    /// start at the very second an old one stops.
    pub fn active(&self, now: SystemTime) -> bool {
        self.not_before.is_none_or(|t| now >= t) && self.not_after.is_none_or(|t| now < t)
    }
}

/// Why a message cannot be passed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// `unsigned = "reject"` and no active key for the From domain or any
    /// of its parents.
    #[error("No DKIM key for domain {0}")]
    NoKey(String),
    /// `unsigned = "reject"` and the From header has no usable domain.
    #[error("No From header domain to sign for")]
    NoFromDomain,
    /// Should not happen with keys validated at load; never let the message
    /// through unsigned because of it.
    #[error("DKIM signing failed: {0}")]
    Failed(String),
}

/// The result of a successful signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The `DKIM-Signature:` fields, CRLF-terminated, to put in front of
    /// the message.
    pub prefix: Vec<u8>,
    /// `d=` of the signatures.
    pub domain: String,
    /// `s=` of each signature, in order.
    pub selectors: Vec<String>,
}

/// All keys by domain, and what to do with mail that no key covers.
#[derive(Debug, Clone)]
pub struct Signer {
    by_domain: BTreeMap<String, Vec<KeySlot>>,
    cost: Cost,
    reject_unsigned: bool,
}

impl Default for Signer {
    fn default() -> Signer {
        Signer::new(Vec::new(), UnsignedPolicy::Allow)
    }
}

impl Signer {
    pub fn new(slots: Vec<KeySlot>, unsigned: UnsignedPolicy) -> Signer {
        let rsa = slots.iter().any(|s| s.key.algorithm() == Algorithm::Rsa);
        let mut by_domain: BTreeMap<String, Vec<KeySlot>> = BTreeMap::new();
        for s in slots {
            by_domain.entry(s.domain.clone()).or_default().push(s);
        }
        Signer {
            cost: if rsa { Cost::Heavy } else { Cost::Light },
            by_domain,
            reject_unsigned: unsigned == UnsignedPolicy::Reject,
        }
    }

    pub fn from_config(c: &Settings) -> Signer {
        let slots = c
            .keys
            .iter()
            .map(|k| KeySlot {
                domain: k.domain.clone(),
                selector: k.selector.clone(),
                key: Arc::clone(&k.key),
                not_before: k.not_before,
                not_after: k.not_after,
            })
            .collect();
        Signer::new(slots, c.unsigned)
    }

    /// True when nothing would ever be signed or rejected, so the caller can
    /// skip the trip to a blocking thread.
    pub fn is_noop(&self) -> bool {
        self.by_domain.is_empty() && !self.reject_unsigned
    }

    /// What signing costs: light unless some key is RSA (about 0.7 ms a
    /// signature, so it runs on the blocking pool).
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// The keys to sign mail from `from_domain` with at `now`: those of the
    /// domain itself or else of its closest parent that has a key valid now.
    pub fn keys_for(&self, from_domain: &str, now: SystemTime) -> Option<(&str, Vec<&KeySlot>)> {
        let mut candidate = from_domain;
        loop {
            if let Some((name, slots)) = self.by_domain.get_key_value(candidate) {
                let active: Vec<&KeySlot> = slots.iter().filter(|s| s.active(now)).collect();
                if !active.is_empty() {
                    return Some((name.as_str(), active));
                }
            }
            candidate = candidate.split_once('.')?.1;
        }
    }

    /// Signs `message` (CRLF line endings, headers then body). `Ok(None)`:
    /// no key applies and unsigned mail is allowed.
    pub fn sign(&self, message: &[u8], now: SystemTime) -> Result<Option<Signed>, SignError> {
        if self.is_noop() {
            return Ok(None);
        }
        let Some(from_domain) = from_domain(message) else {
            return if self.reject_unsigned {
                Err(SignError::NoFromDomain)
            } else {
                Ok(None)
            };
        };
        let Some((domain, slots)) = self.keys_for(&from_domain, now) else {
            return if self.reject_unsigned {
                Err(SignError::NoKey(from_domain))
            } else {
                Ok(None)
            };
        };
        let headers = headers_to_sign(message);
        let mut prefix = Vec::with_capacity(slots.len() * 512);
        let mut selectors = Vec::with_capacity(slots.len());
        for slot in slots {
            // t= is stamped by mail-auth from the clock, microseconds
            // after `now`; only the key choice uses `now`.
            let sig = DkimSigner::from_key(slot.key.signing_key())
                .domain(domain)
                .selector(slot.selector.as_str())
                .headers(headers.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(message)
                .map_err(|e| SignError::Failed(format!("d={domain} s={}: {e}", slot.selector)))?;
            prefix.extend_from_slice(sig.to_header().as_bytes());
            selectors.push(slot.selector.clone());
            crate::observe::metrics::dkim_signature(slot.key.algorithm().name());
        }
        Ok(Some(Signed {
            prefix,
            domain: domain.to_string(),
            selectors,
        }))
    }

    /// Signs `message` (blocking: call off the runtime threads) and returns
    /// it with the signatures in front and the `domain:selector` of each
    /// signature, or the reason to refuse it. Every outcome that is not a
    /// plain "signed" is logged with the queue id.
    pub fn sign_into(
        &self,
        message: Vec<u8>,
        now: SystemTime,
        queue_id: &str,
    ) -> Result<(Vec<u8>, Vec<String>), SignError> {
        if self.is_noop() {
            return Ok((message, Vec::new()));
        }
        match self.sign(&message, now) {
            Ok(Some(signed)) => {
                tracing::debug!(queue_id, domain = %signed.domain, selectors = ?signed.selectors, "DKIM-signed");
                let mut out = Vec::with_capacity(signed.prefix.len() + message.len());
                out.extend_from_slice(&signed.prefix);
                out.extend_from_slice(&message);
                let selectors = signed
                    .selectors
                    .iter()
                    .map(|s| format!("{}:{s}", signed.domain))
                    .collect();
                Ok((out, selectors))
            }
            Ok(None) => {
                tracing::debug!(
                    queue_id,
                    "no DKIM key for the From domain; passed on unsigned"
                );
                Ok((message, Vec::new()))
            }
            Err(e @ SignError::Failed(_)) => {
                tracing::error!(queue_id, error = %e, "DKIM signing failed; answered 451");
                Err(e)
            }
            Err(e) => {
                tracing::info!(queue_id, reason = %e, "rejected: unsigned mail not allowed");
                Err(e)
            }
        }
    }
}

/// The `h=` list to hand to mail-auth: each name from [`SIGNED_HEADERS`]
/// that occurs in the header block once, plus `From` a second time.
/// mail-auth signs every occurrence of a listed name, and a listed name
/// that is not found is appended to `h=` as a "missing" header; the extra
/// `From` therefore over-signs From (RFC 6376 8.15), so a second From
/// added later breaks the signature instead of being displayed.
pub fn headers_to_sign(message: &[u8]) -> Vec<&'static str> {
    let mut present = [false; SIGNED_HEADERS.len()];
    for name in header_names(message) {
        if let Some(i) = SIGNED_HEADERS
            .iter()
            .position(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            present[i] = true;
        }
    }
    let mut out: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .zip(present)
        .filter_map(|(h, p)| p.then_some(*h))
        .collect();
    if present[0] {
        out.push("From");
    }
    out
}

/// Field names of the header block, in order; like mail-auth's own
/// (crate-private) iterator, a name is what precedes the colon on a line
/// that does not start with whitespace, and the block ends at the first
/// empty line.
fn header_names(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&c| c == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| !matches!(line.first(), Some(b' ' | b'\t')))
        .filter_map(|line| line.iter().position(|&c| c == b':').map(|i| &line[..i]))
}

/// The domain of the first address in the From header, lower-case A-label
/// form, or None when there is no parsable address.
pub fn from_domain(message: &[u8]) -> Option<String> {
    // From alone is parsed; the other fields (Received above all, whose
    // parser is the costly one) are skipped over. Built once.
    static FROM_ONLY: std::sync::LazyLock<mail_parser::MessageParser> =
        std::sync::LazyLock::new(|| {
            mail_parser::MessageParser::new()
                .header_address(mail_parser::HeaderName::From)
                .default_header_ignore()
        });
    let parsed = FROM_ONLY.parse_headers(message)?;
    let addr = parsed.from()?.first()?.address()?;
    let (_, domain) = addr.rsplit_once('@')?;
    super::normalize_domain(domain).ok()
}
