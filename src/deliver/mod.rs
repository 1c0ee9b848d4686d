//! Delivery workers: take spooled messages, hand them to upstreams, and
//! decide between done, try-again-later and dead letter.
//!
//! The spool file is removed only after an upstream accepted the message,
//! and only the worker holding a message (see `scheduler`) touches it, so a
//! message is delivered at least once and, barring a crash between the
//! upstream's 2xx and the unlink, exactly once. Retry state goes to the
//! spool's sidecar so back-off survives restarts. This module knows nothing
//! about SMTP; upstreams know nothing about the spool.
//!
//! Which upstream an attempt uses is the router's and the circuit breakers'
//! decision (`router`, `breaker`); a message whose upstreams all have open
//! breakers waits without it counting as a failed attempt. The router can be
//! swapped while workers run (config reload); breaker state survives by
//! upstream name.

mod breaker;
mod control;
mod paced;
mod rate;
mod retry;
mod router;
mod scheduler;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::observe::audit;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use breaker::{BreakerSettings, BreakerState, Breakers, Outcome, Permit};
pub use control::{ControlError, MessageState, QueueControl, QueueCounts, Retried, UpstreamStatus};
pub use paced::Paced;
pub use rate::{Meter, Rates};
pub use retry::RetryPolicy;
pub use router::{
    AcceptPolicies, AcceptPolicy, BuildError, Choice, DEFAULT_ROUTE, OnAmbiguous, Resolved, Router,
    RouterError, UpstreamPolicy, build_router,
};

use crate::clock::{SharedClock, SystemClock};
use crate::spool::{
    DeadReason, HistoryEntry, RetryState, Spool, SpoolError, StoredMessage, unix_now,
};
use crate::upstream::{DeliveryError, OutboundMessage};
use retry::random_jitter;
use scheduler::{Job, Scheduler};

/// Longest a message waits for breakers before it is looked at again (it is
/// woken earlier when a breaker closes); also keeps `Instant` math in range.
const MAX_BREAKER_WAIT: Duration = Duration::from_secs(3600);
/// Shortest such wait, so a zero cool-down with a probe in flight does not
/// make waiting messages spin.
const MIN_BREAKER_WAIT: Duration = Duration::from_secs(1);

/// What `[delivery]` configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Delivery tasks running at once.
    pub workers: usize,
    pub retry: RetryPolicy,
}

/// Running delivery: workers plus the task feeding them. Dropping it does
/// not stop delivery; call `wait` after triggering the shutdown future.
pub struct Delivery {
    ctx: Arc<Ctx>,
    stopping: watch::Receiver<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

/// What every worker needs.
struct Ctx {
    spool: Arc<Spool>,
    /// Swapped whole on reload; an attempt keeps the one it started with.
    router: RwLock<Arc<Router>>,
    retry: RetryPolicy,
    scheduler: Arc<Scheduler>,
    breakers: Arc<Breakers>,
    /// Messages an upstream accepted since start (systemd's STATUS= line).
    delivered: AtomicU64,
    /// Attempt outcomes over the last minutes, for `postern status` and
    /// systemd's STATUS= line.
    meter: Meter,
}

impl Ctx {
    fn router(&self) -> Arc<Router> {
        match self.router.read() {
            Ok(r) => Arc::clone(&r),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Schedules messages found in queue/ (at start, or adopted from another
/// node's spool) with the back-off their retry sidecars record; held ones
/// are held before any worker can pick them.
pub(crate) fn schedule_recovered(scheduler: &Scheduler, recovered: &[crate::spool::Recovered]) {
    let now_unix = unix_now();
    let now = Instant::now();
    for r in recovered {
        let (due, failures, last_upstream) = match &r.retry {
            Some(state) => {
                let wait = state.next_attempt.saturating_sub(now_unix);
                let due = now + Duration::from_secs(wait);
                (due, state.attempts, state.last_upstream.clone())
            }
            None => (now, 0, None),
        };
        let job = Job {
            id: r.envelope.id.clone(),
            failures,
            last_upstream,
            requeued_at: r.retry.as_ref().and_then(|s| s.requeued_at),
        };
        scheduler.add_job(job, due);
        if r.held {
            // Before any worker runs, so a held message is never picked.
            let _ = scheduler.hold(&r.envelope.id);
        }
    }
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
        Self::start_with_clock(
            spool,
            router,
            retry,
            workers,
            SystemClock::shared(),
            shutdown,
        )
        .await
    }

    /// [`Delivery::start`] with the clock circuit breakers run on (tests
    /// use a manual clock so cool-downs pass without sleeping).
    pub async fn start_with_clock(
        spool: Arc<Spool>,
        router: Router,
        retry: RetryPolicy,
        workers: usize,
        clock: SharedClock,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Delivery, SpoolError> {
        let scheduler = Arc::new(Scheduler::default());
        // Subscribe before listing queue/, so a message queued in between
        // is seen by one or both (the scheduler ignores the duplicate).
        let mut queued = spool.subscribe();
        let recovered = spool.recover().await?;
        schedule_recovered(&scheduler, &recovered);
        if !recovered.is_empty() {
            tracing::info!(
                messages = recovered.len(),
                "recovered queued messages from the spool"
            );
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let breakers = Breakers::new(clock);
        breakers.configure(router.breaker_settings());
        let ctx = Arc::new(Ctx {
            spool,
            router: RwLock::new(Arc::new(router)),
            retry,
            scheduler: scheduler.clone(),
            breakers,
            delivered: AtomicU64::new(0),
            meter: Meter::default(),
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
            ctx,
            stopping: stop_rx,
            supervisor,
        })
    }

    /// Swaps in new routes and upstreams (config reload) while workers keep
    /// running. Deliveries in flight finish with the upstream they started
    /// with; the next attempt of every message uses `router`. Circuit
    /// breakers keep their state for upstream names that are still
    /// configured (with the new settings) and forget removed ones. Messages
    /// waiting for a breaker are looked at again at once, since the new
    /// routes may offer an upstream that is not open.
    pub fn replace_router(&self, router: Router) {
        self.ctx.breakers.configure(router.breaker_settings());
        let router = Arc::new(router);
        match self.ctx.router.write() {
            Ok(mut r) => *r = router,
            Err(poisoned) => *poisoned.into_inner() = router,
        }
        self.ctx.scheduler.wake_parked();
    }

    /// A handle for the operator's queue commands (`postern spool ...`).
    pub fn control(&self) -> QueueControl {
        QueueControl::new(Arc::clone(&self.ctx))
    }

    /// A handle that reads delivery's state for health checks and
    /// metrics; it lives as long as needed, independent of `wait`.
    pub fn status(&self) -> Status {
        Status {
            ctx: Arc::clone(&self.ctx),
        }
    }

    /// The circuit breaker state of upstream `name` (closed if unknown).
    pub fn breaker_state(&self, name: &str) -> BreakerState {
        self.ctx.breakers.state(name)
    }

    /// Messages waiting or being delivered.
    pub fn pending(&self) -> usize {
        self.ctx.scheduler.len()
    }

    /// Messages waiting because every upstream of their route has an open
    /// circuit breaker.
    pub fn waiting_for_breakers(&self) -> usize {
        self.ctx.scheduler.parked()
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
    let Job {
        id,
        failures,
        last_upstream,
        requeued_at,
    } = job;
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
    let router = ctx.router();
    let Some(resolved) = router.resolve(&msg.envelope.route) else {
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
    let start = resolved.start(failures, last_upstream.as_deref());
    let (upstream, permit) = match resolved.choose(start, &ctx.breakers) {
        Choice::Deliver {
            upstream, permit, ..
        } => (upstream, permit),
        Choice::Wait { until } => {
            // Not a failed attempt: nothing was tried, nothing is recorded.
            let wait = Duration::from_nanos(until.saturating_sub(ctx.breakers.now()))
                .clamp(MIN_BREAKER_WAIT, MAX_BREAKER_WAIT);
            tracing::debug!(queue_id = %id, route = resolved.route, wait = %secs(wait), "every upstream of the route has an open circuit breaker; waiting");
            ctx.scheduler.park(&id, Instant::now() + wait);
            return;
        }
    };
    let StoredMessage { envelope, data } = msg;
    let out = OutboundMessage {
        id: &id,
        mail_from: &envelope.mail_from,
        rcpt_to: &envelope.rcpt_to,
        data: &data,
    };
    let started = Instant::now();
    let result = upstream.deliver(&out).await;
    let up = upstream.name();
    let elapsed = started.elapsed();
    let result_word = match &result {
        Ok(_) => "delivered",
        Err(DeliveryError::Permanent { .. }) => "permanent",
        Err(DeliveryError::Transient { .. }) => "transient",
        Err(DeliveryError::Ambiguous { .. }) => "ambiguous",
        Err(DeliveryError::NotAttempted { .. }) => "not_attempted",
    };
    crate::observe::metrics::delivery_attempt(up, result_word, elapsed.as_secs_f64());
    if result_word != "not_attempted" {
        crate::alerts::delivery(up, result_word != "delivered");
    }
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    // A successful attempt is the `delivered` event below; one event per
    // step, not two.
    if let Err(e) = &result {
        tracing::info!(
            target: audit::TARGET,
            event = "attempt",
            queue_id = %id,
            upstream = up,
            attempt,
            result = result_word,
            duration_ms,
            reason = %e,
            "delivery attempt failed"
        );
    }
    let outcome = match &result {
        Ok(_) => Some(Outcome::Success),
        Err(DeliveryError::Permanent { .. }) => Some(Outcome::Permanent),
        Err(DeliveryError::Transient { .. } | DeliveryError::Ambiguous { .. }) => {
            Some(Outcome::Transient)
        }
        // Nothing reached the upstream; dropping the permit frees a probe.
        Err(DeliveryError::NotAttempted { .. }) => None,
    };
    if let Some(outcome) = outcome
        && permit.record(outcome) == Some(BreakerState::Closed)
    {
        ctx.scheduler.wake_parked();
    }
    if result_word != "not_attempted" {
        ctx.meter.record(result.is_ok());
    }
    let failed = |reason: String, retry_after: Option<Duration>| Failed {
        attempt,
        upstream: up,
        outcome: result_word,
        reason,
        retry_after,
        // An operator's requeue of a dead letter restarts the clock.
        since: requeued_at.map_or(envelope.received_at, |r| r.max(envelope.received_at)),
    };
    match result {
        Ok(delivered) => {
            // Right after the 2xx, before anything else can fail.
            let completed = ctx.spool.complete(&id).await;
            ctx.scheduler.remove(&id);
            ctx.delivered.fetch_add(1, Ordering::Relaxed);
            let upstream_id = delivered.upstream_id.as_deref().unwrap_or("");
            tracing::info!(target: audit::TARGET, event = "delivered", queue_id = %id, upstream = up, provider_id = upstream_id, attempt, duration_ms, "delivered");
            if let Err(e) = completed {
                tracing::error!(queue_id = %id, error = %e, "delivered but cannot remove from spool; it may be delivered again after a restart");
            }
        }
        Err(DeliveryError::Permanent { reason }) => {
            dead(&ctx, &id, attempt, Some((up, result_word)), reason).await;
        }
        Err(DeliveryError::Ambiguous { reason }) => match router.policy(up).on_ambiguous {
            OnAmbiguous::DeadLetter => {
                let reason = format!(
                    "{reason}; the request had been sent, so upstream {up:?} may have delivered the message; not retried because on_ambiguous = \"dead-letter\""
                );
                dead(&ctx, &id, attempt, Some((up, result_word)), reason).await;
            }
            OnAmbiguous::Retry => {
                tracing::warn!(queue_id = %id, upstream = up, attempt, reason = %reason, "possible duplicate: no answer after the request was sent, so the upstream may have delivered the message; retrying (on_ambiguous = \"retry\")");
                defer(&ctx, &id, failed(reason, None)).await;
            }
        },
        Err(DeliveryError::NotAttempted {
            reason,
            retry_after,
        }) => defer(&ctx, &id, failed(reason, Some(retry_after))).await,
        Err(DeliveryError::Transient {
            reason,
            retry_after,
        }) => defer(&ctx, &id, failed(reason, retry_after)).await,
    }
}

/// A failed attempt that may be retried.
struct Failed<'a> {
    attempt: u32,
    upstream: &'a str,
    /// The attempt's result word (`transient`, ...), for the history.
    outcome: &'a str,
    reason: String,
    retry_after: Option<Duration>,
    /// Unix seconds `max_age` counts from.
    since: u64,
}

/// Schedules the next attempt after a transient failure (failing over to
/// the route's next upstream), or dead-letters a message that is too old.
async fn defer(ctx: &Ctx, id: &str, failed: Failed<'_>) {
    let Failed {
        attempt,
        upstream: up,
        outcome,
        reason,
        retry_after,
        since,
    } = failed;
    let age = age_of(since);
    let Some(delay) = ctx
        .retry
        .after_transient(attempt, retry_after, age, random_jitter())
    else {
        let reason = format!(
            "gave up after {attempt} attempts over {}: {reason}",
            secs(age)
        );
        dead(ctx, id, attempt, Some((up, outcome)), reason).await;
        return;
    };
    let next_at = SystemTime::now() + delay;
    let state = RetryState {
        attempts: attempt,
        next_attempt: next_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        last_error: reason.clone(),
        last_upstream: Some(up.to_string()),
        requeued_at: None,
        history: vec![history_entry(Some(up), outcome, &reason)],
    };
    if let Err(e) = ctx.spool.record_attempt(id, state).await {
        // Only back-off state is lost; keep going.
        tracing::warn!(queue_id = %id, error = %e, "cannot save retry state");
    }
    ctx.scheduler
        .failed_on(id, Instant::now() + delay, attempt, up);
    let next_retry = humantime::format_rfc3339_seconds(next_at);
    tracing::warn!(target: audit::TARGET, event = "deferred", queue_id = %id, upstream = up, attempt, reason = %reason, next_attempt = %next_retry, retry_in = %secs(delay), "deferred");
}

/// One line of a message's history.
fn history_entry(upstream: Option<&str>, outcome: &str, detail: &str) -> HistoryEntry {
    HistoryEntry {
        time: unix_now(),
        upstream: upstream.map(str::to_string),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
    }
}

/// Moves a message to the dead letters; if even that fails it stays queued
/// and is tried again later. `tried` is the upstream and result of the
/// attempt that killed it, if one was made.
async fn dead(ctx: &Ctx, id: &str, attempt: u32, tried: Option<(&str, &str)>, reason: String) {
    let upstream = tried.map(|(u, _)| u);
    let history = match tried {
        Some((u, outcome)) => vec![history_entry(Some(u), outcome, &reason)],
        None => vec![history_entry(None, "dead", &reason)],
    };
    let record = DeadReason {
        reason: reason.clone(),
        attempts: attempt,
        time: unix_now(),
        last_upstream: upstream.map(str::to_string),
        history,
    };
    let up = upstream.unwrap_or("");
    match ctx.spool.dead_letter(id, record).await {
        Ok(()) => {
            ctx.scheduler.remove(id);
            tracing::error!(target: audit::TARGET, event = "dead", queue_id = %id, upstream = up, attempt, reason = %reason, "dead-lettered");
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

/// Delivery's state as health checks and metrics see it.
#[derive(Clone)]
pub struct Status {
    ctx: Arc<Ctx>,
}

impl Status {
    /// Each upstream of the current routes with its breaker state.
    pub fn breakers(&self) -> Vec<(String, BreakerState)> {
        let router = self.ctx.router();
        let mut names: Vec<&str> = router.routes().flat_map(|(_, ups)| ups).collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|n| (n.to_string(), self.ctx.breakers.state(n)))
            .collect()
    }

    /// Routes on which no upstream can take a delivery now (every breaker
    /// open), one line each.
    pub fn blocked_routes(&self) -> Vec<String> {
        let router = self.ctx.router();
        let mut out: Vec<String> = router
            .routes()
            .filter(|(_, ups)| {
                ups.iter()
                    .all(|u| self.ctx.breakers.state(u) == BreakerState::Open)
            })
            .map(|(route, ups)| {
                format!(
                    "route {route:?}: every upstream's circuit breaker is open ({})",
                    ups.join(", ")
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Messages waiting or being delivered.
    pub fn pending(&self) -> usize {
        self.ctx.scheduler.len()
    }

    /// Messages delivered since start.
    pub fn delivered(&self) -> u64 {
        self.ctx.delivered.load(Ordering::Relaxed)
    }

    /// Messages delivered in the last minute (the meter `postern status`
    /// reads too).
    pub fn delivered_last_minute(&self) -> u64 {
        self.ctx.meter.rates().delivered_1m
    }
}
