//! Envelope recipients for APIs that take recipients from the message.
//!
//! Graph's MIME send and Gmail's upload read To, Cc and Bcc from the
//! message headers; there is no separate envelope. SMTP clients routinely
//! send to recipients that are not in the headers (that is how Bcc works),
//! so those would silently not get the mail. postern adds each envelope
//! recipient missing from To/Cc/Bcc to a `Bcc:` header in front of the
//! message; both providers remove Bcc before delivering.
//!
//! The reverse, header recipients that are not in the envelope, would get
//! the mail too. [`envelope_only_headers`] runs before every send of these
//! providers: such a message is refused (`header_recipients = "refuse"`,
//! dead-lettered, never sent) or sent with those addresses removed from its
//! headers (`"drop"`). The acceptance stage refuses them at the final dot
//! already; this is the second check, for messages accepted under another
//! configuration.

use std::borrow::Cow;

use mail_parser::{Address, Message};

use super::DeliveryError;
use crate::inspect::recipients::{HeaderRecipients, header_only, keep_envelope_only};

/// `data` as it may be sent to a provider that reads recipients from the
/// headers: unchanged when they name only envelope recipients; otherwise
/// refused (a permanent error: the message is dead-lettered, not sent) or,
/// with `Drop`, rewritten without the header-only addresses (and without
/// postern's DKIM signatures, which the rewrite breaks), each one logged.
pub fn envelope_only_headers<'a>(
    upstream: &str,
    queue_id: &str,
    data: &'a [u8],
    rcpt_to: &[String],
    mode: HeaderRecipients,
) -> Result<Cow<'a, [u8]>, DeliveryError> {
    match mode {
        HeaderRecipients::Refuse => match header_only(data, rcpt_to).first() {
            None => Ok(Cow::Borrowed(data)),
            Some(h) => Err(DeliveryError::permanent(format!(
                "{h}; not sent, because this upstream delivers to the header recipients (header_recipients = \"refuse\")"
            ))),
        },
        HeaderRecipients::Drop => match keep_envelope_only(data, rcpt_to) {
            Ok(None) => Ok(Cow::Borrowed(data)),
            Ok(Some((rewritten, dropped))) => {
                for d in &dropped {
                    tracing::warn!(queue_id, upstream, header = d.field, recipient = %d.address, "header-only recipient removed before sending (header_recipients = \"drop\")");
                }
                let unsigned = crate::dkim::strip_signatures(&rewritten);
                Ok(Cow::Owned(unsigned.to_vec()))
            }
            Err(reason) => Err(DeliveryError::permanent(format!("{reason}; not sent"))),
        },
    }
}

/// Every address in To, Cc and Bcc, lower-cased.
pub fn header_recipients(parsed: &Message<'_>) -> Vec<String> {
    [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
        .flat_map(addresses)
        .collect()
}

fn addresses(a: &Address<'_>) -> Vec<String> {
    a.iter()
        .filter_map(|x| x.address())
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Envelope recipients that no To/Cc/Bcc header names, in envelope order.
pub fn envelope_only<'a>(parsed: Option<&Message<'_>>, rcpt_to: &'a [String]) -> Vec<&'a str> {
    let known = parsed.map(header_recipients).unwrap_or_default();
    let mut out: Vec<&str> = Vec::new();
    for r in rcpt_to {
        let lower = r.to_ascii_lowercase();
        if !known.contains(&lower) && !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            out.push(r);
        }
    }
    out
}

/// `data` with a `Bcc:` header for the envelope-only recipients prepended,
/// or `data` itself when every recipient is already in the headers.
pub fn with_envelope_bcc<'a>(
    data: &'a [u8],
    parsed: Option<&Message<'_>>,
    rcpt_to: &[String],
) -> Cow<'a, [u8]> {
    let missing = envelope_only(parsed, rcpt_to);
    if missing.is_empty() {
        return Cow::Borrowed(data);
    }
    // One address per line keeps every line far below 998 octets.
    let mut header = String::from("Bcc: ");
    header.push_str(&missing.join(",\r\n "));
    header.push_str("\r\n");
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
