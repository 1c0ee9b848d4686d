//! Per-upstream `dkim = false`: hand an upstream the message without
//! postern's signatures.
//!
//! APIs that rebuild the message (Graph, Gmail, SES "simple" sends) re-encode
//! headers and body, which breaks any signature made before, and they sign
//! with their own keys; a broken postern signature next to theirs only
//! hurts reputation. The signer prepends its `DKIM-Signature:` fields as the
//! very first lines, after the sink has already prepended `Received:`, so
//! the leading run of DKIM-Signature fields of a stored message is exactly
//! postern's, and removing it gives back the bytes that were signed. No
//! bookkeeping in the envelope is needed and the delivery side stays
//! unaware of DKIM: the router simply holds the wrapped upstream.

use crate::upstream::{DeliverFuture, OutboundMessage, Upstream};
use std::sync::Arc;

/// The message without the DKIM-Signature fields at its very start.
pub fn strip_signatures(data: &[u8]) -> &[u8] {
    const NAME: &[u8] = b"dkim-signature:";
    let mut pos = 0;
    while let Some(rest) = data.get(pos..)
        && rest.len() >= NAME.len()
        && rest[..NAME.len()].eq_ignore_ascii_case(NAME)
    {
        // A field ends at the LF that is not followed by folding whitespace.
        let mut end = None;
        let mut i = pos;
        while let Some(off) = data
            .get(i..)
            .and_then(|r| r.iter().position(|&c| c == b'\n'))
        {
            let nl = i + off;
            match data.get(nl + 1) {
                Some(b' ' | b'\t') => i = nl + 1,
                _ => {
                    end = Some(nl + 1);
                    break;
                }
            }
        }
        match end {
            Some(e) => pos = e,
            // Unterminated: not a header block we wrote; leave it alone.
            None => return data,
        }
    }
    data.get(pos..).unwrap_or(data)
}

/// An upstream that receives messages without postern's DKIM signatures.
pub struct WithoutSignatures {
    inner: Arc<dyn Upstream>,
}

impl WithoutSignatures {
    pub fn wrap(inner: Arc<dyn Upstream>) -> Arc<dyn Upstream> {
        Arc::new(WithoutSignatures { inner })
    }
}

impl Upstream for WithoutSignatures {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn max_message_size(&self) -> Option<u64> {
        self.inner.max_message_size()
    }

    fn deliver<'a>(&'a self, msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let stripped = OutboundMessage {
                data: strip_signatures(msg.data),
                ..*msg
            };
            self.inner.deliver(&stripped).await
        })
    }
}

#[cfg(test)]
mod tests;
