//! Circuit breakers, routing choice and failover: the state machine on a
//! manual clock, then workers against a real spool and scripted upstreams
//! (which upstream each attempt reached, and what is left in queue/ and
//! dead/). Cool-downs pass by advancing the clock; nothing sleeps.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Call, envelope, fast, names, router_with, scripted, stop, temp_spool};
use crate::clock::ManualClock;
use crate::deliver::*;
use crate::spool::new_id;
use crate::upstream::{DeliverFuture, Delivered, Upstream};

const COOLDOWN: Duration = Duration::from_secs(30);

fn manual() -> (Arc<ManualClock>, Arc<Breakers>) {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_000_000)));
    let breakers = Breakers::new(clock.clone());
    (clock, breakers)
}

fn settings(failures: u32, cooldown: Duration) -> BreakerSettings {
    BreakerSettings { failures, cooldown }
}

/// One delivery through `name`'s breaker with the given outcome.
fn run(b: &Arc<Breakers>, name: &str, outcome: Outcome) -> Option<BreakerState> {
    b.admit(name).expect("admitted").record(outcome)
}

#[test]
fn opens_after_consecutive_transient_failures_only() {
    let (_clock, b) = manual();
    b.configure([("api".to_string(), settings(3, COOLDOWN))]);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    // A refused message says nothing about the upstream's health.
    assert_eq!(run(&b, "api", Outcome::Permanent), None);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    assert_eq!(run(&b, "api", Outcome::Success), None);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    assert_eq!(run(&b, "api", Outcome::Transient), None);
    assert_eq!(b.state("api"), BreakerState::Closed);
    assert_eq!(run(&b, "api", Outcome::Transient), Some(BreakerState::Open));
    assert_eq!(b.state("api"), BreakerState::Open);
}

#[test]
fn cooldown_then_exactly_one_probe_decides() {
    let (clock, b) = manual();
    b.configure([("api".to_string(), settings(1, COOLDOWN))]);
    let opened_at = b.now();
    assert_eq!(run(&b, "api", Outcome::Transient), Some(BreakerState::Open));
    let reopen = opened_at + COOLDOWN.as_nanos() as u64;
    assert_eq!(b.admit("api").unwrap_err(), reopen);
    clock.advance(COOLDOWN - Duration::from_millis(1));
    assert_eq!(b.admit("api").unwrap_err(), reopen);
    clock.advance(Duration::from_millis(1));
    assert_eq!(b.state("api"), BreakerState::HalfOpen);

    let probe = b.admit("api").expect("probe");
    assert!(probe.is_probe());
    // Everyone else keeps skipping it while the probe is out.
    let later = b.admit("api").unwrap_err();
    assert_eq!(later, b.now() + COOLDOWN.as_nanos() as u64);
    assert_eq!(b.state("api"), BreakerState::HalfOpen);

    // Failed probe: open for another full cool-down from now.
    clock.advance(Duration::from_secs(5));
    assert_eq!(probe.record(Outcome::Transient), Some(BreakerState::Open));
    assert_eq!(
        b.admit("api").unwrap_err(),
        b.now() + COOLDOWN.as_nanos() as u64
    );
    clock.advance(COOLDOWN);
    let probe = b.admit("api").expect("second probe");
    assert_eq!(probe.record(Outcome::Success), Some(BreakerState::Closed));
    let normal = b.admit("api").expect("closed");
    assert!(!normal.is_probe());
    assert_eq!(b.state("api"), BreakerState::Closed);
}

#[test]
fn permanent_answer_to_the_probe_closes_and_a_lost_probe_frees_the_slot() {
    let (clock, b) = manual();
    b.configure([("api".to_string(), settings(1, COOLDOWN))]);
    run(&b, "api", Outcome::Transient);
    clock.advance(COOLDOWN);
    let probe = b.admit("api").unwrap();
    assert!(b.admit("api").is_err());
    // The probe's task died without an answer: the next delivery probes.
    drop(probe);
    let probe = b.admit("api").expect("slot freed");
    assert!(probe.is_probe());
    assert_eq!(probe.record(Outcome::Permanent), Some(BreakerState::Closed));
}

#[test]
fn outcomes_of_requests_started_before_a_state_change_are_ignored() {
    let (clock, b) = manual();
    b.configure([("api".to_string(), settings(2, COOLDOWN))]);
    let slow_success = b.admit("api").unwrap();
    let slow_failure = b.admit("api").unwrap();
    run(&b, "api", Outcome::Transient);
    assert_eq!(run(&b, "api", Outcome::Transient), Some(BreakerState::Open));
    assert_eq!(slow_success.record(Outcome::Success), None);
    assert_eq!(b.state("api"), BreakerState::Open);
    clock.advance(COOLDOWN);
    let probe = b.admit("api").unwrap();
    // An old failure arriving while the probe is out does not re-open.
    assert_eq!(slow_failure.record(Outcome::Transient), None);
    assert_eq!(probe.record(Outcome::Success), Some(BreakerState::Closed));
}

#[test]
fn configure_keeps_state_by_name_with_new_settings_and_forgets_removed() {
    let (clock, b) = manual();
    b.configure([("api".to_string(), settings(1, COOLDOWN))]);
    run(&b, "api", Outcome::Transient);
    let short = Duration::from_secs(10);
    b.configure([
        ("api".to_string(), settings(1, short)),
        ("backup".to_string(), settings(1, short)),
    ]);
    assert_eq!(b.state("api"), BreakerState::Open);
    clock.advance(short);
    assert_eq!(b.state("api"), BreakerState::HalfOpen, "new cool-down");
    b.configure([("backup".to_string(), settings(1, short))]);
    assert_eq!(b.state("api"), BreakerState::Closed, "removed, forgotten");
}

struct Named(&'static str);

impl Upstream for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn deliver<'a>(&'a self, _: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(async { Ok(Delivered::default()) })
    }
}

fn three() -> Router {
    let mut r = Router::new();
    let ups: Vec<Arc<dyn Upstream>> = vec![
        Arc::new(Named("a")),
        Arc::new(Named("b")),
        Arc::new(Named("c")),
    ];
    r.add_route("default", ups).unwrap();
    r
}

fn chosen(r: &Resolved<'_>, start: usize, b: &Arc<Breakers>) -> Result<(usize, bool), u64> {
    match r.choose(start, b) {
        Choice::Deliver { index, permit, .. } => Ok((index, permit.is_probe())),
        Choice::Wait { until } => Err(until),
    }
}

#[test]
fn failover_order_starts_after_the_upstream_that_failed() {
    let router = three();
    let r = router.resolve("default").unwrap();
    assert_eq!(r.start(0, None), 0, "a new message starts at the primary");
    assert_eq!(r.start(0, Some("b")), 0);
    assert_eq!(r.start(1, Some("a")), 1);
    assert_eq!(r.start(4, Some("b")), 2);
    assert_eq!(r.start(5, Some("c")), 0);
    // The upstream that failed was removed by a reload: attempt order.
    assert_eq!(r.start(4, Some("gone")), 1);
    assert_eq!(r.start(2, None), 2);
}

#[test]
fn choice_skips_open_breakers_waits_when_all_are_open_and_returns_to_the_primary() {
    let (clock, b) = manual();
    let router = three();
    b.configure(router.breaker_settings());
    let r = router.resolve("default").unwrap();
    assert_eq!(chosen(&r, 0, &b), Ok((0, false)));
    assert_eq!(chosen(&r, 2, &b), Ok((2, false)));

    let a_open_at = b.now();
    run(&b, "a", Outcome::Transient);
    for _ in 0..4 {
        run(&b, "a", Outcome::Transient);
    }
    assert_eq!(b.state("a"), BreakerState::Open);
    assert_eq!(chosen(&r, 0, &b), Ok((1, false)), "a skipped");
    clock.advance(Duration::from_secs(10));
    for _ in 0..5 {
        run(&b, "b", Outcome::Transient);
    }
    assert_eq!(chosen(&r, 0, &b), Ok((2, false)));
    assert_eq!(chosen(&r, 1, &b), Ok((2, false)));
    for _ in 0..5 {
        run(&b, "c", Outcome::Transient);
    }
    // All open: wait for the earliest cool-down (a's), not a failure.
    let a_reopens = a_open_at + COOLDOWN.as_nanos() as u64;
    assert_eq!(chosen(&r, 1, &b), Err(a_reopens));

    // After a's cool-down a new message probes the primary...
    clock.advance(COOLDOWN - Duration::from_secs(10));
    let probe = match r.choose(0, &b) {
        Choice::Deliver { index, permit, .. } => {
            assert_eq!(index, 0);
            permit
        }
        Choice::Wait { .. } => panic!("the primary must be probed"),
    };
    assert!(probe.is_probe());
    // ...while the probe is out the others still wait (b and c are open).
    assert!(chosen(&r, 0, &b).is_err());
    assert_eq!(probe.record(Outcome::Success), Some(BreakerState::Closed));
    assert_eq!(chosen(&r, 0, &b), Ok((0, false)), "traffic is back on a");
}

/// Delivery with a manual breaker clock.
async fn start_manual(
    spool: &Arc<Spool>,
    router: Router,
    clock: Arc<ManualClock>,
) -> (Delivery, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let d = Delivery::start_with_clock(spool.clone(), router, fast(), 1, clock, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (d, tx)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Duration::from_secs(1_000_000)))
}

fn policy(failures: u32, cooldown: Duration, on_ambiguous: OnAmbiguous) -> UpstreamPolicy {
    UpstreamPolicy {
        on_ambiguous,
        breaker: settings(failures, cooldown),
    }
}

async fn put(spool: &Spool) -> String {
    let id = new_id();
    spool
        .put(envelope(&id, "default"), b"m".to_vec())
        .await
        .unwrap();
    id
}

fn seen(c: &Call) -> (&'static str, String) {
    (c.upstream, c.id.clone())
}

#[tokio::test]
async fn open_primary_is_skipped_then_probed_by_a_new_message_after_cooldown() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::transient("HTTP 503"))],
        &calls_tx,
    );
    let b = scripted("b", vec![], &calls_tx);
    let mut router = router_with("default", vec![a, b]);
    router.set_policy("a", policy(1, COOLDOWN, OnAmbiguous::Retry));
    let clock = clock();
    let (d, trigger) = start_manual(&spool, router, clock.clone()).await;

    let m1 = put(&spool).await;
    assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m1.clone()));
    assert_eq!(seen(&calls.recv().await.unwrap()), ("b", m1.clone()));
    assert_eq!(d.breaker_state("a"), BreakerState::Open);
    let m2 = put(&spool).await;
    assert_eq!(
        seen(&calls.recv().await.unwrap()),
        ("b", m2.clone()),
        "a new message goes straight to the backup"
    );
    clock.advance(COOLDOWN);
    let m3 = put(&spool).await;
    assert_eq!(
        seen(&calls.recv().await.unwrap()),
        ("a", m3.clone()),
        "after the cool-down a new message probes the primary"
    );
    let m4 = put(&spool).await;
    assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m4.clone()));
    stop(d, trigger).await;
    assert!(names(&tmp.path().join("queue")).is_empty());
    assert!(names(&tmp.path().join("dead")).is_empty());
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn all_breakers_open_makes_the_message_wait_without_counting_an_attempt() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::transient("HTTP 503"))],
        &calls_tx,
    );
    let mut router = router_with("default", vec![a]);
    let hour = Duration::from_secs(3600);
    router.set_policy("a", policy(1, hour, OnAmbiguous::Retry));
    let clock = clock();
    let (d, trigger) = start_manual(&spool, router.clone(), clock.clone()).await;
    let m = put(&spool).await;
    assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m.clone()));
    // The retry (due within milliseconds) finds the breaker open and parks.
    while d.waiting_for_breakers() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        names(&tmp.path().join("queue")),
        [m.clone(), format!("{m}.retry")]
    );
    assert!(names(&tmp.path().join("dead")).is_empty());
    assert!(calls.try_recv().is_err(), "not tried while open");

    // Cool-down over; a reload looks at waiting messages again at once.
    clock.advance(hour);
    d.replace_router(router);
    assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m.clone()));
    stop(d, trigger).await;
    assert!(names(&tmp.path().join("queue")).is_empty());
    assert!(names(&tmp.path().join("dead")).is_empty());
}

/// Waits for an event the test is sure will come; a generous bound turns
/// a bug into a failure instead of a hang.
async fn soon<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("event did not happen")
}

async fn parked_at_least(d: &Delivery, n: usize) {
    soon(async {
        while d.waiting_for_breakers() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_closing_breaker_wakes_messages_waiting_for_it() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::transient("HTTP 503"))],
        &calls_tx,
    );
    let hour = Duration::from_secs(3600);
    let router = || {
        let mut r = router_with("default", vec![a.clone()]);
        r.set_policy("a", policy(1, hour, OnAmbiguous::Retry));
        r
    };
    let clock = clock();
    let (tx, rx) = oneshot::channel::<()>();
    // Two workers: one holds the probe while the other finds it out.
    let d = Delivery::start_with_clock(spool.clone(), router(), fast(), 2, clock.clone(), async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    let m1 = put(&spool).await;
    assert_eq!(seen(&soon(calls.recv()).await.unwrap()), ("a", m1.clone()));
    parked_at_least(&d, 1).await;
    let m2 = put(&spool).await;
    parked_at_least(&d, 2).await;

    // The probe is held in the upstream until released.
    let (release, gate) = oneshot::channel();
    *a.gate.lock().unwrap() = Some(gate);
    clock.advance(hour);
    d.replace_router(router());
    let probe = soon(calls.recv()).await.unwrap();
    // The other message finds the probe out and waits (an hour at most)...
    parked_at_least(&d, 1).await;
    assert!(calls.try_recv().is_err());
    // ...until the probe's success closes the breaker and wakes it.
    release.send(()).unwrap();
    let other = soon(calls.recv()).await.unwrap();
    let mut ids = vec![probe.id, other.id];
    ids.sort();
    let mut want = vec![m1, m2];
    want.sort();
    assert_eq!(ids, want);
    let _ = tx.send(());
    d.wait(Duration::from_secs(3600)).await;
    assert!(names(&tmp.path().join("queue")).is_empty());
}

#[tokio::test]
async fn recovered_message_fails_over_after_its_last_upstream() {
    let (_tmp, spool) = temp_spool();
    let m = put(&spool).await;
    // Attempt 1 went to "b" (the primary was skipped at the time).
    let state = RetryState {
        attempts: 1,
        next_attempt: 0,
        last_error: "HTTP 503".into(),
        last_upstream: Some("b".into()),
        ..RetryState::default()
    };
    spool.record_attempt(&m, state).await.unwrap();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let ups = ["a", "b", "c"].map(|n| scripted(n, vec![], &calls_tx));
    let router = router_with("default", ups.to_vec());
    let (d, trigger) = start_manual(&spool, router, clock()).await;
    assert_eq!(seen(&calls.recv().await.unwrap()), ("c", m));
    stop(d, trigger).await;
}

#[tokio::test]
async fn permanent_failure_does_not_fail_over() {
    let (_tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::permanent("HTTP 400: bad"))],
        &calls_tx,
    );
    let b = scripted("b", vec![], &calls_tx);
    let (d, trigger) = start_manual(&spool, router_with("default", vec![a, b]), clock()).await;
    let m = put(&spool).await;
    assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m.clone()));
    stop(d, trigger).await;
    assert!(calls.try_recv().is_err(), "backup never asked");
    let dead = spool.list(true).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_reason.clone().unwrap().reason, "HTTP 400: bad");
}

struct AmbiguousRun {
    calls: Vec<(&'static str, String)>,
    spool: Arc<Spool>,
    id: String,
    _dir: tempfile::TempDir,
}

async fn ambiguous_with(on_ambiguous: OnAmbiguous) -> AmbiguousRun {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::ambiguous("no response within 1s"))],
        &calls_tx,
    );
    let b = scripted("b", vec![], &calls_tx);
    let mut router = router_with("default", vec![a, b]);
    router.set_policy("a", policy(5, COOLDOWN, on_ambiguous));
    let (d, trigger) = start_manual(&spool, router, clock()).await;
    let id = put(&spool).await;
    let mut got = vec![seen(&calls.recv().await.unwrap())];
    if on_ambiguous == OnAmbiguous::Retry {
        got.push(seen(&calls.recv().await.unwrap()));
    }
    stop(d, trigger).await;
    while let Ok(c) = calls.try_recv() {
        got.push(seen(&c));
    }
    AmbiguousRun {
        calls: got,
        spool,
        id,
        _dir: tmp,
    }
}

#[tokio::test]
async fn ambiguous_timeout_is_retried_or_dead_lettered_per_upstream_policy() {
    let run = ambiguous_with(OnAmbiguous::Retry).await;
    let m = run.id.clone();
    assert_eq!(run.calls, [("a", m.clone()), ("b", m)]);
    assert!(run.spool.list(true).await.unwrap().is_empty());

    let run = ambiguous_with(OnAmbiguous::DeadLetter).await;
    assert_eq!(run.calls, [("a", run.id.clone())], "never sent again");
    let dead = run.spool.list(true).await.unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0].dead_reason.clone().unwrap();
    assert!(
        reason.reason.starts_with("no response within 1s"),
        "{reason:?}"
    );
    assert!(reason.reason.contains("may have delivered"), "{reason:?}");
    assert_eq!(reason.last_upstream.as_deref(), Some("a"));
    assert!(run.spool.list(false).await.unwrap().is_empty());
}

#[tokio::test]
async fn not_attempted_is_retried_without_moving_the_breaker() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let held = || {
        Err(DeliveryError::NotAttempted {
            reason: "token request: HTTP 503".into(),
            retry_after: Duration::from_millis(1),
        })
    };
    let a = scripted("a", vec![held(), held()], &calls_tx);
    let mut router = router_with("default", vec![a]);
    router.set_policy("a", policy(1, COOLDOWN, OnAmbiguous::Retry));
    let (d, trigger) = start_manual(&spool, router, clock()).await;

    let m = put(&spool).await;
    for _ in 0..3 {
        assert_eq!(seen(&calls.recv().await.unwrap()), ("a", m.clone()));
        // With breaker_failures = 1, one counted failure would have opened it.
        assert_eq!(d.breaker_state("a"), BreakerState::Closed);
    }
    stop(d, trigger).await;
    assert!(names(&tmp.path().join("queue")).is_empty());
    assert!(names(&tmp.path().join("dead")).is_empty());
}
