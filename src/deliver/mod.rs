//! Delivery workers: take spooled messages, hand them to upstreams, and
//! decide between done, try-again-later and dead letter.
//!
//! The spool file is removed only after an upstream accepted the message,
//! and only the worker holding a message (see `scheduler`) touches it, so a
//! message is delivered at least once and, barring a crash between the
//! upstream's 2xx and the unlink, exactly once. Retry state goes to the
//! spool's sidecar so back-off survives restarts. This module knows nothing
//! about SMTP; upstreams know nothing about the spool.

mod paced;
mod retry;
mod router;
mod scheduler;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use paced::Paced;
pub use retry::RetryPolicy;
pub use router::{DEFAULT_ROUTE, Resolved, Router, RouterError, build_router};

use crate::spool::{DeadReason, RetryState, Spool, SpoolError, StoredMessage, unix_now};
use crate::upstream::{DeliveryError, OutboundMessage};
use retry::random_jitter;
use scheduler::{Job, Scheduler};

/// Running delivery: workers plus the task feeding them. Dropping it does
/// not stop delivery; call `wait` after triggering the shutdown future.
pub struct Delivery {
    scheduler: Arc<Scheduler>,
    stopping: watch::Receiver<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

/// What every worker needs.
struct Ctx {
    spool: Arc<Spool>,
    router: Router,
    retry: RetryPolicy,
    scheduler: Arc<Scheduler>,
}

impl Delivery {
    /// Schedules everything already in the spool, then runs `workers`
    /// delivery tasks until `shutdown` completes. Must be called inside a
    /// tokio runtime. Fails only if the queue cannot be read.
    pub async fn start(
        spool: Arc<Spool>,
        router: Router,
        retry: RetryPolicy,
        workers: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Delivery, SpoolError> {
        let scheduler = Arc::new(Scheduler::default());
        // Subscribe before listing queue/, so a message queued in between
        // is seen by one or both (the scheduler ignores the duplicate).
        let mut queued = spool.subscribe();
        let recovered = spool.recover().await?;
        let now_unix = unix_now();
        let now = Instant::now();
        for r in &recovered {
            let (due, failures) = match &r.retry {
                Some(state) => {
                    let wait = state.next_attempt.saturating_sub(now_unix);
                    (now + Duration::from_secs(wait), state.attempts)
                }
                None => (now, 0),
            };
            scheduler.add(r.envelope.id.clone(), due, failures);
        }
        if !recovered.is_empty() {
            tracing::info!(
                messages = recovered.len(),
                "recovered queued messages from the spool"
            );
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            spool,
            router,
            retry,
            scheduler: scheduler.clone(),
        });
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            tasks.spawn(worker(ctx.clone(), stop_rx.clone()));
        }
        let feed_scheduler = scheduler.clone();
        let mut feed_stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = feed_stop.wait_for(|s| *s) => return,
                    id = queued.recv() => match id {
                        Some(id) => { feed_scheduler.add(id, Instant::now(), 0); }
                        None => return,
                    },
                }
            }
        });
        let supervisor = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // Workers finish their current delivery, then return. Aborting
            // this task (grace expired) drops the JoinSet, which aborts them.
            while tasks.join_next().await.is_some() {}
        });
        Ok(Delivery {
            scheduler,
            stopping: stop_rx,
            supervisor,
        })
    }

    /// Messages waiting or being delivered.
    pub fn pending(&self) -> usize {
        self.scheduler.len()
    }

    /// Whether shutdown has begun (no new deliveries start).
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until the shutdown future has fired, then up to `grace` for
    /// in-flight deliveries to finish. Anything unfinished stays in queue/
    /// and is retried on the next start (possibly delivered twice).
    pub async fn wait(mut self, grace: Duration) {
        let _ = self.stopping.wait_for(|s| *s).await;
        if tokio::time::timeout(grace, &mut self.supervisor)
            .await
            .is_err()
        {
            tracing::warn!(
                grace = %humantime::format_duration(grace),
                "delivery still busy at shutdown; unfinished messages stay queued"
            );
            self.supervisor.abort();
            let _ = self.supervisor.await;
        }
    }
}

/// Aborts the wrapped task when dropped, so aborting a worker also stops
/// the delivery it is waiting on.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn worker(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            job = ctx.scheduler.next() => job,
        };
        let (id, failures) = (job.id.clone(), job.failures);
        // Own task: a panic in an upstream becomes a JoinError here instead
        // of killing the worker and stranding the message in flight.
        let mut handle = AbortOnDrop(tokio::spawn(attempt(ctx.clone(), job)));
        if let Err(e) = (&mut handle.0).await {
            tracing::error!(queue_id = %id, error = %e, "delivery task failed; will retry");
            let delay = ctx.retry.backoff(failures + 1, random_jitter());
            ctx.scheduler
                .retry(&id, Instant::now() + delay, failures + 1);
        }
    }
}

/// One delivery attempt of one message, start to finish.
async fn attempt(ctx: Arc<Ctx>, job: Job) {
    let Job { id, failures } = job;
    let attempt = failures + 1;
    let msg = match ctx.spool.read(&id).await {
        Ok(m) => m,
        Err(SpoolError::NotFound(_)) => {
            // Delivered or purged meanwhile; a late duplicate notification.
            ctx.scheduler.remove(&id);
            return;
        }
        Err(SpoolError::Corrupt { reason, .. }) => {
            let reason = format!("corrupt spool file: {reason}");
            dead(&ctx, &id, attempt, None, reason).await;
            return;
        }
        Err(e) => {
            // Local trouble (I/O): try again later, the file is still there.
            let delay = ctx.retry.backoff(attempt, random_jitter());
            tracing::error!(queue_id = %id, error = %e, retry_in = %secs(delay), "cannot read spooled message");
            ctx.scheduler.retry(&id, Instant::now() + delay, failures);
            return;
        }
    };
    let Some(resolved) = ctx.router.resolve(&msg.envelope.route) else {
        let reason = format!(
            "no route {:?} and no {DEFAULT_ROUTE:?} route configured",
            msg.envelope.route
        );
        dead(&ctx, &id, attempt, None, reason).await;
        return;
    };
    if resolved.route != msg.envelope.route {
        tracing::warn!(queue_id = %id, route = %msg.envelope.route, "route no longer configured; using the default route");
    }
    let upstream = resolved.pick(failures).clone();
    let StoredMessage { envelope, data } = msg;
    let out = OutboundMessage {
        id: &id,
        mail_from: &envelope.mail_from,
        rcpt_to: &envelope.rcpt_to,
        data: &data,
    };
    let result = upstream.deliver(&out).await;
    let up = upstream.name();
    match result {
        Ok(delivered) => {
            // Right after the 2xx, before anything else can fail.
            let completed = ctx.spool.complete(&id).await;
            ctx.scheduler.remove(&id);
            let upstream_id = delivered.upstream_id.as_deref().unwrap_or("");
            tracing::info!(queue_id = %id, upstream = up, outcome = "delivered", upstream_id, attempt, "delivered");
            if let Err(e) = completed {
                tracing::error!(queue_id = %id, error = %e, "delivered but cannot remove from spool; it may be delivered again after a restart");
            }
        }
        Err(DeliveryError::Permanent { reason }) => {
            dead(&ctx, &id, attempt, Some(up), reason).await;
        }
        Err(DeliveryError::Transient {
            reason,
            retry_after,
        }) => {
            let age = age_of(envelope.received_at);
            match ctx
                .retry
                .after_transient(attempt, retry_after, age, random_jitter())
            {
                Some(delay) => {
                    let next_at = SystemTime::now() + delay;
                    let state = RetryState {
                        attempts: attempt,
                        next_attempt: next_at
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs()),
                        last_error: reason.clone(),
                        last_upstream: Some(up.to_string()),
                    };
                    if let Err(e) = ctx.spool.record_attempt(&id, state).await {
                        // Only back-off state is lost; keep going.
                        tracing::warn!(queue_id = %id, error = %e, "cannot save retry state");
                    }
                    ctx.scheduler.retry(&id, Instant::now() + delay, attempt);
                    let next_retry = humantime::format_rfc3339_seconds(next_at);
                    tracing::warn!(queue_id = %id, upstream = up, outcome = "deferred", attempt, reason = %reason, %next_retry, retry_in = %secs(delay), "deferred");
                }
                None => {
                    let reason = format!(
                        "gave up after {attempt} attempts over {}: {reason}",
                        secs(age)
                    );
                    dead(&ctx, &id, attempt, Some(up), reason).await;
                }
            }
        }
    }
}

/// Moves a message to the dead letters; if even that fails it stays queued
/// and is tried again later.
async fn dead(ctx: &Ctx, id: &str, attempt: u32, upstream: Option<&str>, reason: String) {
    let record = DeadReason {
        reason: reason.clone(),
        attempts: attempt,
        time: unix_now(),
        last_upstream: upstream.map(str::to_string),
    };
    let up = upstream.unwrap_or("");
    match ctx.spool.dead_letter(id, record).await {
        Ok(()) => {
            ctx.scheduler.remove(id);
            tracing::error!(queue_id = %id, upstream = up, outcome = "dead", attempt, reason = %reason, "dead-lettered");
        }
        Err(SpoolError::NotFound(_)) => ctx.scheduler.remove(id),
        Err(e) => {
            let delay = ctx.retry.backoff(attempt, random_jitter());
            tracing::error!(queue_id = %id, error = %e, reason = %reason, retry_in = %secs(delay), "cannot move message to dead letters; keeping it queued");
            ctx.scheduler.retry(id, Instant::now() + delay, attempt);
        }
    }
}

fn age_of(received_at: u64) -> Duration {
    Duration::from_secs(unix_now().saturating_sub(received_at))
}

/// Whole seconds, human readable ("1h 30m").
fn secs(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}
