//! Workers against a real spool on a tempdir and scripted upstreams: the
//! files left in queue/ and dead/ after each outcome.
//!
//! No timing assertions: tests wait for the upstream to be called, then
//! shut delivery down, which lets the in-flight attempt finish, so the spool
//! state is final when checked.

mod breaker;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::spool::{Envelope, new_id};
use crate::upstream::{DeliverFuture, Delivered, Upstream};

/// What a scripted upstream was given.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) upstream: &'static str,
    pub(super) id: String,
    pub(super) mail_from: String,
    pub(super) rcpt_to: Vec<String>,
    pub(super) data: Vec<u8>,
}

/// Answers from a script (then Ok), reports every call, and can hold the
/// first call until released.
pub(super) struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Result<Delivered, DeliveryError>>>,
    calls: mpsc::UnboundedSender<Call>,
    pub(super) gate: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Upstream for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    fn deliver<'a>(&'a self, msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(async move {
            let _ = self.calls.send(Call {
                upstream: self.name,
                id: msg.id.to_string(),
                mail_from: msg.mail_from.to_string(),
                rcpt_to: msg.rcpt_to.to_vec(),
                data: msg.data.to_vec(),
            });
            let gate = self.gate.lock().unwrap().take();
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            let next = self.script.lock().unwrap().pop_front();
            next.unwrap_or_else(|| {
                Ok(Delivered {
                    upstream_id: Some(format!("{}-ok", self.name)),
                })
            })
        })
    }
}

pub(super) fn scripted(
    name: &'static str,
    script: Vec<Result<Delivered, DeliveryError>>,
    calls: &mpsc::UnboundedSender<Call>,
) -> Arc<Scripted> {
    Arc::new(Scripted {
        name,
        script: Mutex::new(script.into()),
        calls: calls.clone(),
        gate: Mutex::new(None),
    })
}

pub(super) fn envelope(id: &str, route: &str) -> Envelope {
    Envelope {
        id: id.to_string(),
        received_at: unix_now(),
        credential: "erp".to_string(),
        mail_from: "app@example.com".to_string(),
        rcpt_to: vec!["x@example.net".to_string()],
        route: route.to_string(),
        size: 0,
    }
}

/// A spool in a fresh temporary directory (kept alive by the `TempDir`).
pub(super) fn temp_spool() -> (tempfile::TempDir, Arc<Spool>) {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(tmp.path().to_path_buf()).unwrap());
    (tmp, spool)
}

pub(super) fn fast() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
        max_age: Duration::from_secs(3600),
    }
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Starts delivery with a shutdown trigger.
pub(super) async fn start(
    spool: &Arc<Spool>,
    router: Router,
    retry: RetryPolicy,
    workers: usize,
) -> (Delivery, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let d = Delivery::start(spool.clone(), router, retry, workers, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    (d, tx)
}

pub(super) async fn stop(d: Delivery, trigger: oneshot::Sender<()>) {
    let _ = trigger.send(());
    d.wait(Duration::from_secs(3600)).await;
}

pub(super) fn router_with(route: &str, ups: Vec<Arc<Scripted>>) -> Router {
    let mut r = Router::new();
    r.add_route(
        route,
        ups.into_iter().map(|u| u as Arc<dyn Upstream>).collect(),
    )
    .unwrap();
    r
}

#[tokio::test]
async fn new_and_recovered_messages_are_delivered_and_removed() {
    let (tmp, spool) = temp_spool();
    let old = new_id();
    spool
        .put(envelope(&old, "default"), b"old message".to_vec())
        .await
        .unwrap();

    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted("api", vec![], &calls_tx);
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 2).await;
    let fresh = new_id();
    spool
        .put(envelope(&fresh, "default"), b"fresh message".to_vec())
        .await
        .unwrap();

    let mut seen = [calls.recv().await.unwrap(), calls.recv().await.unwrap()];
    seen.sort_by(|a, b| a.id.cmp(&b.id));
    stop(d, trigger).await;

    assert_eq!(
        (seen[0].id.as_str(), seen[0].data.as_slice()),
        (old.as_str(), &b"old message"[..])
    );
    assert_eq!(
        (seen[1].id.as_str(), seen[1].data.as_slice()),
        (fresh.as_str(), &b"fresh message"[..])
    );
    assert_eq!(seen[1].mail_from, "app@example.com");
    assert_eq!(seen[1].rcpt_to, ["x@example.net"]);
    assert!(names(&tmp.path().join("queue")).is_empty());
    assert!(names(&tmp.path().join("dead")).is_empty());
    assert!(calls.try_recv().is_err(), "each message delivered once");
}

#[tokio::test]
async fn transient_failure_retries_on_the_next_upstream() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let a = scripted(
        "a",
        vec![Err(DeliveryError::transient("HTTP 503"))],
        &calls_tx,
    );
    let b = scripted("b", vec![], &calls_tx);
    let (d, trigger) = start(&spool, router_with("default", vec![a, b]), fast(), 1).await;
    let id = new_id();
    spool
        .put(envelope(&id, "default"), b"m".to_vec())
        .await
        .unwrap();

    let first = calls.recv().await.unwrap();
    let second = calls.recv().await.unwrap();
    stop(d, trigger).await;
    assert_eq!((first.upstream, second.upstream), ("a", "b"));
    assert_eq!(second.id, id);
    assert!(
        names(&tmp.path().join("queue")).is_empty(),
        "sidecar removed too"
    );
}

#[tokio::test]
async fn deferred_message_keeps_retry_state_across_restart() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let slow_retry = RetryPolicy {
        initial: Duration::from_secs(3000),
        max: Duration::from_secs(3600),
        max_age: Duration::from_secs(86400),
    };
    let failing = DeliveryError::Transient {
        reason: "HTTP 429: slow down".to_string(),
        retry_after: None,
    };
    let up = scripted("api", vec![Err(failing)], &calls_tx);
    // A second message, queued behind the first on the single worker, tells
    // us the first attempt (including its bookkeeping) is over.
    let marker = scripted("marker", vec![], &calls_tx);
    let mut router = router_with("default", vec![up]);
    router
        .add_route("marker", vec![marker as Arc<dyn Upstream>])
        .unwrap();
    let id = new_id();
    spool
        .put(envelope(&id, "default"), b"m".to_vec())
        .await
        .unwrap();
    let second = new_id();
    spool
        .put(envelope(&second, "marker"), b"n".to_vec())
        .await
        .unwrap();
    let (d, trigger) = start(&spool, router, slow_retry, 1).await;
    assert_eq!(calls.recv().await.unwrap().id, id);
    assert_eq!(calls.recv().await.unwrap().id, second);
    stop(d, trigger).await;

    assert_eq!(
        names(&tmp.path().join("queue")),
        [id.clone(), format!("{id}.retry")]
    );
    let recovered = spool.recover().await.unwrap();
    let state = recovered[0].retry.clone().unwrap();
    assert_eq!(state.attempts, 1);
    assert_eq!(state.last_error, "HTTP 429: slow down");
    assert_eq!(state.last_upstream.as_deref(), Some("api"));
    let wait = state.next_attempt.saturating_sub(unix_now());
    assert!((2000..=3601).contains(&wait), "{wait}");
}

#[tokio::test]
async fn permanent_failure_dead_letters_with_upstream_reason() {
    let (tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted(
        "api",
        vec![Err(DeliveryError::permanent("HTTP 400: unknown recipient"))],
        &calls_tx,
    );
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 1).await;
    let id = new_id();
    spool
        .put(envelope(&id, "default"), b"m".to_vec())
        .await
        .unwrap();
    calls.recv().await.unwrap();
    stop(d, trigger).await;

    assert!(names(&tmp.path().join("queue")).is_empty());
    assert_eq!(
        names(&tmp.path().join("dead")),
        [id.clone(), format!("{id}.reason")]
    );
    let dead = spool.list(true).await.unwrap();
    let reason = dead[0].dead_reason.clone().unwrap();
    assert_eq!(reason.reason, "HTTP 400: unknown recipient");
    assert_eq!(reason.attempts, 1);
    assert_eq!(reason.last_upstream.as_deref(), Some("api"));
}

#[tokio::test]
async fn too_old_message_dead_letters_after_transient_failure() {
    let (_tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted(
        "api",
        vec![Err(DeliveryError::transient("HTTP 502"))],
        &calls_tx,
    );
    let id = new_id();
    let mut env = envelope(&id, "default");
    env.received_at = unix_now() - 7200;
    spool.put(env, b"m".to_vec()).await.unwrap();
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 1).await;
    calls.recv().await.unwrap();
    stop(d, trigger).await;

    let dead = spool.list(true).await.unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0].dead_reason.clone().unwrap().reason;
    assert!(
        reason.starts_with("gave up after 1 attempts over 2h"),
        "{reason}"
    );
    assert!(reason.ends_with("HTTP 502"), "{reason}");
}

#[tokio::test]
async fn unknown_route_uses_default_or_dead_letters() {
    let (_tmp, spool) = temp_spool();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted("fallback", vec![], &calls_tx);
    let removed = new_id();
    spool
        .put(envelope(&removed, "removed"), b"m".to_vec())
        .await
        .unwrap();
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 1).await;
    let call = calls.recv().await.unwrap();
    stop(d, trigger).await;
    assert_eq!(
        (call.upstream, call.id.as_str()),
        ("fallback", removed.as_str())
    );

    // Without a default route there is nowhere to send it.
    let unroutable = new_id();
    spool
        .put(envelope(&unroutable, "removed"), b"m".to_vec())
        .await
        .unwrap();
    let marker = new_id();
    spool
        .put(envelope(&marker, "other"), b"m".to_vec())
        .await
        .unwrap();
    let up = scripted("other", vec![], &calls_tx);
    let (d, trigger) = start(&spool, router_with("other", vec![up]), fast(), 1).await;
    assert_eq!(calls.recv().await.unwrap().id, marker);
    stop(d, trigger).await;
    let dead = spool.list(true).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, unroutable);
    let reason = dead[0].dead_reason.clone().unwrap().reason;
    assert_eq!(
        reason,
        "no route \"removed\" and no \"default\" route configured"
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_leaves_the_rest_queued() {
    let (_tmp, spool) = temp_spool();
    let (first, second) = (new_id(), new_id());
    spool
        .put(envelope(&first, "default"), b"1".to_vec())
        .await
        .unwrap();
    spool
        .put(envelope(&second, "default"), b"2".to_vec())
        .await
        .unwrap();

    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted("api", vec![], &calls_tx);
    let (release, gate) = oneshot::channel();
    *up.gate.lock().unwrap() = Some(gate);
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 1).await;
    assert_eq!(calls.recv().await.unwrap().id, first);
    let _ = trigger.send(());
    while !d.is_stopping() {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    d.wait(Duration::from_secs(3600)).await;

    assert_eq!(queued_on_disk(&spool), [second]);
    assert!(calls.try_recv().is_err());
}

#[tokio::test]
async fn grace_expiry_aborts_and_keeps_the_message() {
    let (_tmp, spool) = temp_spool();
    let id = new_id();
    spool
        .put(envelope(&id, "default"), b"1".to_vec())
        .await
        .unwrap();
    let (calls_tx, mut calls) = mpsc::unbounded_channel();
    let up = scripted("api", vec![], &calls_tx);
    let (_never, gate) = oneshot::channel();
    *up.gate.lock().unwrap() = Some(gate);
    let (d, trigger) = start(&spool, router_with("default", vec![up]), fast(), 1).await;
    calls.recv().await.unwrap();
    let _ = trigger.send(());
    d.wait(Duration::ZERO).await;
    assert_eq!(queued_on_disk(&spool), [id]);
}

/// Ids of the queued messages on disk (queue/ files and the segment log's
/// live records), read from the directory as `postern spool list` does
/// with no daemon.
fn queued_on_disk(spool: &Spool) -> Vec<String> {
    spool
        .dir()
        .list(false)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}
