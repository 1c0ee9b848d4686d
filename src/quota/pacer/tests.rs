use super::*;
use crate::clock::{Clock, ManualClock};
use std::sync::Mutex;

/// Sleeping moves the manual clock and records the wait.
struct Jump(Arc<ManualClock>, Mutex<Vec<Duration>>);

impl Sleep for Jump {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.0.advance(d);
        self.1.lock().unwrap().push(d);
        Box::pin(std::future::ready(()))
    }
}

fn paced(conc: Option<usize>, rate: &str) -> (Pacer, Arc<ManualClock>, Arc<Jump>) {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000)));
    let jump = Arc::new(Jump(Arc::clone(&clock), Mutex::new(vec![])));
    let pacer = Pacer::with_time(
        conc,
        Some(Rate::parse(rate).unwrap()),
        clock.clone(),
        jump.clone(),
    );
    (pacer, clock, jump)
}

#[test]
fn parses_rates() {
    let r = |s: &str| Rate::parse(s).map(|r| (r.count.get(), r.per.as_secs()));
    assert_eq!(r("30/min"), Ok((30, 60)));
    assert_eq!(r("5/s"), Ok((5, 1)));
    assert_eq!(r("1000/h"), Ok((1000, 3600)));
    assert_eq!(r(" 20000 / day "), Ok((20000, 86400)));
    assert_eq!(r("10/90s"), Ok((10, 90)));
    assert_eq!(
        Rate::parse("30/min").unwrap().interval(),
        Duration::from_secs(2)
    );
    for bad in [
        "30",
        "0/min",
        "-1/s",
        "x/min",
        "30/fortnight",
        "30/",
        "4294967296/s",
    ] {
        assert!(Rate::parse(bad).is_err(), "{bad}");
    }
    assert!(
        Rate::parse("30/fortnight")
            .unwrap_err()
            .contains("\"30/fortnight\"")
    );
    assert_eq!(Rate::parse("30/minute").unwrap().to_string(), "30/min");
    assert_eq!(Rate::parse("10/90s").unwrap().to_string(), "10/1m 30s");
}

#[tokio::test]
async fn rate_spaces_sends_evenly_by_waiting() {
    let (pacer, clock, jump) = paced(None, "30/min");
    let start = clock.now();
    for _ in 0..4 {
        pacer.acquire().await;
    }
    // First immediately, then one every 2 s: 6 s for four sends.
    assert_eq!(clock.now() - start, 6_000_000_000);
    assert_eq!(*jump.1.lock().unwrap(), vec![Duration::from_secs(2); 3]);
    // After a quiet period there is no debt, but no burst either.
    clock.advance(Duration::from_secs(60));
    pacer.acquire().await;
    assert_eq!(jump.1.lock().unwrap().len(), 3);
    pacer.acquire().await;
    assert_eq!(jump.1.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn concurrency_is_bounded_until_a_permit_drops() {
    let (pacer, _clock, _jump) = paced(Some(2), "1000/s");
    let a = pacer.acquire().await;
    let _b = pacer.acquire().await;
    let third = pacer.acquire();
    tokio::pin!(third);
    let pending = futures_poll_once(third.as_mut()).await;
    assert!(pending, "third acquire must wait for a slot");
    drop(a);
    let _c = third.await;
}

/// Polls once; true if the future is still pending.
async fn futures_poll_once<F: Future + Unpin>(mut f: F) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(Pin::new(&mut f).poll(cx).is_pending())).await
}

#[tokio::test]
async fn unbounded_pacer_never_waits() {
    let p = Pacer::new(None, None);
    assert!(p.is_unbounded());
    for _ in 0..100 {
        p.acquire().await;
    }
}
