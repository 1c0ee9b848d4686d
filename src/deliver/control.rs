//! The operator's queue commands against the running delivery: hold,
//! release, retry, purge, and what `list`/`show`/`status` add to the
//! spool's own view (which messages are being delivered, when each is due,
//! breaker and token state, the delivery rate).
//!
//! Every change keeps the scheduler and the spool directory in step: a
//! hold is placed in the scheduler first (so no worker picks the message
//! while the marker is written) and undone if the marker cannot be
//! written; a purge takes the message out of the scheduler before its file
//! goes; a retried dead letter is scheduled only once it is back in
//! queue/. A message a worker holds right now is not touched: the command
//! says so and the operator asks again.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::scheduler::{Job, JobState, Refused};
use super::{Ctx, Rates};
use crate::observe::audit;
use crate::spool::{Adopted, Hold, MessageDetail, Place, SpoolEntry, SpoolError, unix_now};
use crate::upstream::oauth::TokenStatus;

/// Why a queue command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("message {0} is being delivered right now; try again in a moment")]
    InFlight(String),
    #[error("message {0} is held; `postern spool release {0}` first")]
    Held(String),
    #[error("{0}")]
    Spool(#[from] SpoolError),
}

/// Where a queued message stands in the running delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting for its next attempt (unix seconds; now or earlier: due).
    Waiting {
        due: u64,
    },
    /// Every upstream of its route has an open breaker; looked at again at
    /// `until` at the latest, or when one closes.
    WaitingForBreaker {
        until: u64,
    },
    /// A worker is delivering it now.
    Delivering,
    Held,
}

/// What `retry` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// A dead letter went back to the queue and is due now.
    Requeued,
    /// A queued message is due now instead of after its back-off.
    Expedited,
    /// It was already being delivered.
    Delivering,
}

/// How many messages delivery holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub waiting: usize,
    pub waiting_for_breakers: usize,
    pub delivering: usize,
    pub held: usize,
}

/// One upstream as `postern status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    pub name: String,
    pub breaker: String,
    pub token: Option<TokenStatus>,
}

/// Handle for the queue commands; cheap to clone.
#[derive(Clone)]
pub struct QueueControl {
    ctx: Arc<Ctx>,
}

/// `at` as unix seconds (a scheduler instant is monotonic).
fn unix_of(at: Instant) -> u64 {
    let now = Instant::now();
    if at <= now {
        unix_now().saturating_sub(now.duration_since(at).as_secs())
    } else {
        unix_now().saturating_add(at.duration_since(now).as_secs())
    }
}

fn state_of(s: JobState) -> MessageState {
    match s {
        JobState::Waiting { due } => MessageState::Waiting { due: unix_of(due) },
        JobState::Parked { due } => MessageState::WaitingForBreaker {
            until: unix_of(due),
        },
        JobState::InFlight => MessageState::Delivering,
        JobState::Held => MessageState::Held,
    }
}

impl QueueControl {
    pub(super) fn new(ctx: Arc<Ctx>) -> QueueControl {
        QueueControl { ctx }
    }

    /// The spool's listing of queue/ (or dead/).
    pub async fn list(&self, dead: bool) -> Result<Vec<SpoolEntry>, ControlError> {
        Ok(self.ctx.spool.list(dead).await?)
    }

    /// Every message delivery knows, with its state.
    pub fn states(&self) -> HashMap<String, MessageState> {
        self.ctx
            .scheduler
            .states()
            .into_iter()
            .map(|(id, s)| (id, state_of(s)))
            .collect()
    }

    /// One message's detail and, if queued, its state.
    pub async fn show(
        &self,
        id: &str,
    ) -> Result<(MessageDetail, Option<MessageState>), ControlError> {
        let detail = self.ctx.spool.show(id).await?;
        let state = self.ctx.scheduler.states().remove(id).map(state_of);
        Ok((detail, state))
    }

    /// Holds a queued message: no worker takes it until `release`, also
    /// after a restart.
    pub async fn hold(&self, id: &str) -> Result<Hold, ControlError> {
        if self.ctx.spool.locate(id).await? == Place::Dead {
            return Err(SpoolError::IsDead(id.to_string()).into());
        }
        let sched = &self.ctx.scheduler;
        match sched.hold(id) {
            Ok(()) => {}
            Err(Refused::InFlight) => return Err(ControlError::InFlight(id.to_string())),
            // Queued a moment ago and not yet announced to the scheduler:
            // add it now (the announcement is then ignored) and hold it.
            Err(Refused::Unknown | Refused::Held) => {
                sched.add(id.to_string(), Instant::now(), 0);
                if sched.hold(id) == Err(Refused::InFlight) {
                    return Err(ControlError::InFlight(id.to_string()));
                }
            }
        }
        match self.ctx.spool.hold(id).await {
            Ok(h) => {
                tracing::info!(target: audit::TARGET, event = "held", queue_id = %id, "held by an operator");
                Ok(h)
            }
            Err(SpoolError::NotFound(_)) => {
                // Gone meanwhile (delivered before the hold took): nothing
                // to hold, and nothing left for the scheduler to know.
                let _ = sched.take(id);
                Err(SpoolError::NotFound(id.to_string()).into())
            }
            Err(e) => {
                let _ = sched.release(id, Instant::now());
                Err(e.into())
            }
        }
    }

    /// Ends a hold; the message is attempted at once.
    pub async fn release(&self, id: &str) -> Result<(), ControlError> {
        self.ctx.spool.release(id).await?;
        let sched = &self.ctx.scheduler;
        if sched.release(id, Instant::now()).is_err() {
            sched.add(id.to_string(), Instant::now(), 0);
        }
        tracing::info!(target: audit::TARGET, event = "released", queue_id = %id, "released by an operator");
        Ok(())
    }

    /// A dead letter goes back to the queue for a fresh round of attempts
    /// (its `max_age` counting from now); a queued message is attempted
    /// now instead of after its back-off.
    pub async fn retry(&self, id: &str) -> Result<Retried, ControlError> {
        let sched = &self.ctx.scheduler;
        match self.ctx.spool.locate(id).await? {
            Place::Dead => {
                // A worker that is dead-lettering it has not let go yet.
                if !self.let_go(id).await {
                    return Err(ControlError::InFlight(id.to_string()));
                }
                let state = self.ctx.spool.requeue_dead(id).await?;
                sched.add_job(
                    Job {
                        id: id.to_string(),
                        failures: 0,
                        last_upstream: None,
                        requeued_at: state.requeued_at,
                    },
                    Instant::now(),
                );
                tracing::info!(target: audit::TARGET, event = "requeued", queue_id = %id, "dead letter requeued by an operator");
                Ok(Retried::Requeued)
            }
            Place::Queue => match sched.expedite(id) {
                Ok(()) => Ok(Retried::Expedited),
                Err(Refused::InFlight) => Ok(Retried::Delivering),
                Err(Refused::Held) => Err(ControlError::Held(id.to_string())),
                Err(Refused::Unknown) => {
                    if self.ctx.spool.dir().is_held(id) {
                        return Err(ControlError::Held(id.to_string()));
                    }
                    sched.add(id.to_string(), Instant::now(), 0);
                    Ok(Retried::Expedited)
                }
            },
        }
    }

    /// Moves another node's spool into this one and schedules what it had
    /// queued with its back-off (`postern spool adopt`). Each message is
    /// in place, and the source gone, before it is scheduled.
    pub async fn adopt(&self, source: std::path::PathBuf) -> Result<Adopted, ControlError> {
        let dir = self.ctx.spool.dir().clone();
        let adopted = tokio::task::spawn_blocking(move || dir.adopt_from(&source))
            .await
            .map_err(|e| SpoolError::Adopt(format!("adoption task failed: {e}")))??;
        super::schedule_recovered(&self.ctx.scheduler, &adopted.queued);
        for r in &adopted.queued {
            tracing::info!(target: audit::TARGET, event = "adopted", queue_id = %r.envelope.id, place = "queue", "message adopted from another node's spool");
        }
        for id in &adopted.dead {
            tracing::info!(target: audit::TARGET, event = "adopted", queue_id = %id, place = "dead", "dead letter adopted from another node's spool");
        }
        Ok(adopted)
    }

    /// Whether the scheduler has let go of dead letter `id`, waiting up to
    /// a second: a worker moves the file to dead/ and forgets the id right
    /// after, so an operator who acts on the dead letter as soon as it
    /// shows up must not be told it is still being delivered.
    async fn let_go(&self, id: &str) -> bool {
        for _ in 0..100 {
            if !self.ctx.scheduler.contains(id) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    /// Deletes a queued message or a dead letter for good.
    pub async fn purge(&self, id: &str) -> Result<Place, ControlError> {
        let sched = &self.ctx.scheduler;
        let place = self.ctx.spool.locate(id).await?;
        if place == Place::Dead && !self.let_go(id).await {
            return Err(ControlError::InFlight(id.to_string()));
        }
        let states = sched.states();
        if sched.take(id) == Err(Refused::InFlight) {
            return Err(ControlError::InFlight(id.to_string()));
        }
        match self.ctx.spool.purge(id).await {
            Ok(place) => {
                tracing::warn!(target: audit::TARGET, event = "purged", queue_id = %id, dead = place == Place::Dead, "purged by an operator");
                Ok(place)
            }
            Err(e) => {
                // Still on disk: keep delivering (or holding) it.
                if place == Place::Queue && !matches!(e, SpoolError::NotFound(_)) {
                    sched.add(id.to_string(), Instant::now(), 0);
                    if states.get(id) == Some(&JobState::Held) {
                        let _ = sched.hold(id);
                    }
                }
                Err(e.into())
            }
        }
    }

    /// Ids of every dead letter (for `--all-dead`).
    pub async fn dead_ids(&self) -> Result<Vec<String>, ControlError> {
        Ok(self.ctx.spool.dead_ids().await?)
    }

    /// How many messages are in each state.
    pub fn counts(&self) -> QueueCounts {
        let c = self.ctx.scheduler.counts();
        QueueCounts {
            waiting: c.waiting,
            waiting_for_breakers: c.parked,
            delivering: c.in_flight,
            held: c.held,
        }
    }

    /// Attempts that succeeded and failed in the last minutes.
    pub fn rates(&self) -> Rates {
        self.ctx.meter.rates()
    }

    /// Each upstream of the current routes: breaker and token state.
    pub fn upstreams(&self) -> Vec<UpstreamStatus> {
        self.ctx
            .router()
            .upstreams()
            .iter()
            .map(|u| UpstreamStatus {
                name: u.name().to_string(),
                breaker: self.ctx.breakers.state(u.name()).to_string(),
                token: u.token_status(),
            })
            .collect()
    }
}
