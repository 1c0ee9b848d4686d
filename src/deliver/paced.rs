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
mod tests {
    use super::*;
    use crate::upstream::Delivered;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records the highest number of deliveries in flight at once.
    struct Probe {
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Upstream for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn deliver<'a>(&'a self, _msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
            Box::pin(async move {
                let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                self.now.fetch_sub(1, Ordering::SeqCst);
                Ok(Delivered { upstream_id: None })
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn max_concurrency_bounds_requests_in_flight() {
        let probe = Arc::new(Probe {
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let paced = Paced::wrap(probe.clone(), Pacer::new(Some(2), None));
        let rcpt = vec!["b@example.net".to_string()];
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let paced = Arc::clone(&paced);
            let rcpt = rcpt.clone();
            tasks.push(tokio::spawn(async move {
                let msg = OutboundMessage {
                    id: "ID",
                    mail_from: "a@example.com",
                    rcpt_to: &rcpt,
                    data: b"x",
                };
                paced.deliver(&msg).await.is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert!(
            probe.peak.load(Ordering::SeqCst) <= 2,
            "peak {}",
            probe.peak.load(Ordering::SeqCst)
        );
        assert!(probe.peak.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn unbounded_pacer_is_not_wrapped() {
        let probe: Arc<dyn Upstream> = Arc::new(Probe {
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let wrapped = Paced::wrap(Arc::clone(&probe), Pacer::new(None, None));
        assert!(Arc::ptr_eq(&probe, &wrapped));
    }
}
