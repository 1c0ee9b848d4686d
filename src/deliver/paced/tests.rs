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
