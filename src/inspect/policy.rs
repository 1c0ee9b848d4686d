//! The From policy: exactly one From header, one mailbox in it, and that
//! address allowed for the credential.
//!
//! The envelope sender is checked at MAIL FROM, but the From header is what
//! people read and what DMARC aligns on; without this check any credential
//! could sign and send mail "from" any address in any configured domain.

use crate::access::sender_allowed;
use mail_parser::{Address, HeaderName, HeaderValue, Message};

/// Why the From header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromError {
    /// `554 5.6.0`
    #[error("Message has no From header")]
    Missing,
    /// `554 5.6.0`: under `missing_from = "envelope"`, with nothing to
    /// put in the From header.
    #[error("Message has no From header, and the null envelope sender <> cannot stand in for one")]
    MissingNullSender,
    /// `554 5.6.0`
    #[error("Message has {0} From headers; exactly one is required")]
    Several(usize),
    /// `554 5.6.0`
    #[error("From header must name exactly one mailbox (found {0})")]
    Mailboxes(usize),
    /// `554 5.6.0`
    #[error("From header has no valid address")]
    Unparsable,
    /// `554 5.6.0`: the raw scan and the parser disagree about it.
    #[error("From header cannot be parsed unambiguously")]
    Ambiguous,
    /// `550 5.7.1`
    #[error("From <{address}> not allowed for credential \"{credential}\"")]
    NotAllowed { address: String, credential: String },
}

/// The single From address of `msg`. `raw_count` is the number of From
/// fields the raw header scan found; both views must agree, so a header
/// one parser sees and another does not cannot slip through.
pub fn from_address(msg: &Message<'_>, raw_count: usize) -> Result<String, FromError> {
    let froms: Vec<&HeaderValue<'_>> = msg
        .parts
        .first()
        .map(|root| {
            root.headers
                .iter()
                .filter(|h| h.name == HeaderName::From)
                .map(|h| &h.value)
                .collect()
        })
        .unwrap_or_default();
    let parsed = froms.len();
    if parsed != raw_count {
        let most = parsed.max(raw_count);
        return Err(if most > 1 {
            FromError::Several(most)
        } else {
            FromError::Ambiguous
        });
    }
    match parsed {
        0 => return Err(FromError::Missing),
        1 => {}
        n => return Err(FromError::Several(n)),
    }
    let addrs = match froms[0] {
        HeaderValue::Address(Address::List(list)) => list,
        HeaderValue::Address(Address::Group(groups)) => {
            let n = groups.iter().map(|g| g.addresses.len()).sum::<usize>();
            return Err(FromError::Mailboxes(n));
        }
        _ => return Err(FromError::Unparsable),
    };
    match addrs.as_slice() {
        [one] => one
            .address
            .as_deref()
            .filter(|a| plausible(a))
            .map(str::to_string)
            .ok_or(FromError::Unparsable),
        [] => Err(FromError::Unparsable),
        many => Err(FromError::Mailboxes(many.len())),
    }
}

/// `local@domain` with both parts present and nothing that could not be
/// an address (mail-parser is lenient and returns what it could salvage).
fn plausible(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';'))
}

/// Checks `address` against the credential's patterns (`allowed_from`, or
/// `allowed_senders` when that is empty).
pub fn check_allowed(
    address: &str,
    patterns: &[String],
    credential: &str,
) -> Result<(), FromError> {
    if sender_allowed(patterns, address) {
        Ok(())
    } else {
        Err(FromError::NotAllowed {
            address: address.to_string(),
            credential: credential.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
