//! Outbound pacing for one upstream (`max_concurrency`, `rate`).
//!
//! Providers throttle hard (Microsoft Graph: 30 messages a minute per
//! mailbox, 4 concurrent requests); going over only earns 429s and longer
//! back-off. A paced upstream makes the delivery worker wait for a slot
//! instead, so the failure never happens.

use crate::quota::Pacer;
use crate::upstream::{DeliverFuture, OutboundMessage, Upstream};
use std::sync::Arc;

/// Wraps an upstream so every delivery first takes a pacer permit and
/// holds it until the request is done.
pub struct Paced {
    inner: Arc<dyn Upstream>,
    pacer: Pacer,
}

impl Paced {
    /// Returns `inner` unchanged when nothing limits it.
    pub fn wrap(inner: Arc<dyn Upstream>, pacer: Pacer) -> Arc<dyn Upstream> {
        if pacer.is_unbounded() {
            inner
        } else {
            Arc::new(Paced { inner, pacer })
        }
    }
}

impl Upstream for Paced {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn max_message_size(&self) -> Option<u64> {
        self.inner.max_message_size()
    }

    fn deliver<'a>(&'a self, msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let _permit = self.pacer.acquire().await;
            self.inner.deliver(msg).await
        })
    }
}

#[cfg(test)]
mod tests;
