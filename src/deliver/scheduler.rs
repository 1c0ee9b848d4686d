//! In-memory timer queue of spooled message ids.
//!
//! Exists so workers take messages in due order and so one message is never
//! held by two workers: an id is either waiting (in the heap) or in flight,
//! and a second `add` of a known id is ignored. The spool on disk stays the
//! source of truth; this is rebuilt from it on every start.
//!
//! A message whose route has every circuit breaker open is "parked": it
//! waits like a retry, but `wake_parked` makes it due at once when a breaker
//! closes or the routes change, so it does not sit out a whole cool-down.
//!
//! A message an operator holds stays known (so it is not added twice) but
//! is never handed to a worker until it is released. Holding, purging or
//! expediting a message in flight is refused rather than raced: the worker
//! that has it decides its fate, and the operator asks again a moment later.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A message a worker should attempt now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub id: String,
    /// Failed attempts so far.
    pub failures: u32,
    /// The upstream of the last failed attempt (failover continues after it).
    pub last_upstream: Option<String>,
    /// Unix seconds when an operator requeued it from the dead letters
    /// (`max_age` counts from then).
    pub requeued_at: Option<u64>,
}

/// Why the scheduler refused an operator's change to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not waiting or in flight (delivered, dead, or never queued).
    Unknown,
    /// A worker is delivering it right now.
    InFlight,
    /// An operator holds it.
    Held,
}

/// Where one message stands, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting for its attempt at `due`.
    Waiting {
        due: Instant,
    },
    /// Waiting for a circuit breaker, until `due` at the latest.
    Parked {
        due: Instant,
    },
    InFlight,
    Held,
}

/// How many messages are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub waiting: usize,
    pub parked: usize,
    pub in_flight: usize,
    pub held: usize,
}

struct Entry {
    /// Matches the heap item that is current for this id; older heap items
    /// (superseded by a retry) are skipped when popped.
    seq: u64,
    in_flight: bool,
    /// Waiting for a circuit breaker rather than for a retry delay.
    parked: bool,
    /// Held by an operator: never handed out.
    held: bool,
    /// When the current heap item is due.
    due: Instant,
    failures: u32,
    last_upstream: Option<String>,
    requeued_at: Option<u64>,
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<(Instant, u64, String)>>,
    entries: HashMap<String, Entry>,
    next_seq: u64,
}

#[derive(Default)]
pub(crate) struct Scheduler {
    state: Mutex<State>,
    wake: Notify,
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover anyway rather than
        // stop delivering mail.
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Schedules a new message unless it is already known (waiting or in
    /// flight). Returns whether it was added.
    pub fn add(&self, id: String, due: Instant, failures: u32) -> bool {
        self.add_job(
            Job {
                id,
                failures,
                last_upstream: None,
                requeued_at: None,
            },
            due,
        )
    }

    /// Like `add`, for a message recovered with its retry state.
    pub fn add_job(&self, job: Job, due: Instant) -> bool {
        let mut st = self.lock();
        if st.entries.contains_key(&job.id) {
            return false;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.entries.insert(
            job.id.clone(),
            Entry {
                seq,
                in_flight: false,
                parked: false,
                held: false,
                due,
                failures: job.failures,
                last_upstream: job.last_upstream,
                requeued_at: job.requeued_at,
            },
        );
        st.heap.push(Reverse((due, seq, job.id)));
        drop(st);
        self.wake.notify_waiters();
        true
    }

    /// Puts an in-flight message back to wait until `due`, keeping the
    /// upstream it last failed on.
    pub fn retry(&self, id: &str, due: Instant, failures: u32) {
        self.requeue(id, due, |e| {
            e.failures = failures;
        });
    }

    /// Puts an in-flight message back after it failed on `upstream`.
    pub fn failed_on(&self, id: &str, due: Instant, failures: u32, upstream: &str) {
        self.requeue(id, due, |e| {
            e.failures = failures;
            e.last_upstream = Some(upstream.to_string());
        });
    }

    /// Puts an in-flight message back to wait for a circuit breaker, until
    /// `due` at the latest (see `wake_parked`). Not a failure.
    pub fn park(&self, id: &str, due: Instant) {
        self.requeue(id, due, |e| e.parked = true);
    }

    /// Makes every parked message due now.
    pub fn wake_parked(&self) {
        let mut st = self.lock();
        let now = Instant::now();
        let parked: Vec<String> = st
            .entries
            .iter()
            .filter(|(_, e)| e.parked && !e.in_flight && !e.held)
            .map(|(id, _)| id.clone())
            .collect();
        if parked.is_empty() {
            return;
        }
        for id in parked {
            let seq = st.next_seq;
            st.next_seq += 1;
            if let Some(e) = st.entries.get_mut(&id) {
                e.seq = seq;
                e.parked = false;
                e.due = now;
            }
            st.heap.push(Reverse((now, seq, id)));
        }
        drop(st);
        self.wake.notify_waiters();
    }

    /// Messages waiting for a circuit breaker.
    pub fn parked(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| e.parked && !e.in_flight && !e.held)
            .count()
    }

    /// Stops handing `id` out until [`Scheduler::release`]. Refused while
    /// it is in flight.
    pub fn hold(&self, id: &str) -> Result<(), Refused> {
        let mut st = self.lock();
        let e = st.entries.get_mut(id).ok_or(Refused::Unknown)?;
        if e.in_flight {
            return Err(Refused::InFlight);
        }
        e.held = true;
        e.parked = false;
        Ok(())
    }

    /// Ends a hold: the message is due at `due`.
    pub fn release(&self, id: &str, due: Instant) -> Result<(), Refused> {
        let mut st = self.lock();
        if !push(&mut st, id, due, |e| e.held = false) {
            return Err(Refused::Unknown);
        }
        drop(st);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Makes a waiting (or parked) message due now: an operator's
    /// `spool retry` of a queued message.
    pub fn expedite(&self, id: &str) -> Result<(), Refused> {
        let mut st = self.lock();
        let e = st.entries.get(id).ok_or(Refused::Unknown)?;
        if e.in_flight {
            return Err(Refused::InFlight);
        }
        if e.held {
            return Err(Refused::Held);
        }
        push(&mut st, id, Instant::now(), |_| {});
        drop(st);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Forgets `id` so no worker takes it (before an operator deletes its
    /// file). Refused while it is in flight; unknown ids are fine.
    pub fn take(&self, id: &str) -> Result<(), Refused> {
        let mut st = self.lock();
        if st.entries.get(id).is_some_and(|e| e.in_flight) {
            return Err(Refused::InFlight);
        }
        st.entries.remove(id);
        Ok(())
    }

    /// Whether `id` is waiting, held or in flight.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().entries.contains_key(id)
    }

    /// Every known message's state.
    pub fn states(&self) -> HashMap<String, JobState> {
        self.lock()
            .entries
            .iter()
            .map(|(id, e)| {
                let state = if e.held {
                    JobState::Held
                } else if e.in_flight {
                    JobState::InFlight
                } else if e.parked {
                    JobState::Parked { due: e.due }
                } else {
                    JobState::Waiting { due: e.due }
                };
                (id.clone(), state)
            })
            .collect()
    }

    /// How many messages are in each state.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for e in self.lock().entries.values() {
            if e.held {
                c.held += 1;
            } else if e.in_flight {
                c.in_flight += 1;
            } else if e.parked {
                c.parked += 1;
            } else {
                c.waiting += 1;
            }
        }
        c
    }

    fn requeue(&self, id: &str, due: Instant, update: impl FnOnce(&mut Entry)) {
        let mut st = self.lock();
        if push(&mut st, id, due, update) {
            drop(st);
            self.wake.notify_waiters();
        }
    }

    /// Forgets a message (delivered, dead-lettered or gone from disk).
    pub fn remove(&self, id: &str) {
        self.lock().entries.remove(id);
    }

    /// Messages waiting or in flight.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Waits for the earliest due message and marks it in flight.
    /// Cancel-safe: a job is only taken in the same poll that returns it.
    pub async fn next(&self) -> Job {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before looking, so an add between the look and
            // the wait still wakes us.
            notified.as_mut().enable();
            let wait_until = {
                let mut st = self.lock();
                match pop_due(&mut st, Instant::now()) {
                    Ok(job) => return job,
                    Err(next) => next,
                }
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Makes `id` wait (not in flight, not parked) until `due`, after
/// `update`; false if it is not known.
fn push(st: &mut State, id: &str, due: Instant, update: impl FnOnce(&mut Entry)) -> bool {
    let seq = st.next_seq;
    st.next_seq += 1;
    let Some(entry) = st.entries.get_mut(id) else {
        return false;
    };
    entry.seq = seq;
    entry.in_flight = false;
    entry.parked = false;
    entry.due = due;
    update(entry);
    st.heap.push(Reverse((due, seq, id.to_string())));
    true
}

/// Takes the first due, current, waiting item; otherwise returns when the
/// earliest one is due (None if nothing waits).
fn pop_due(st: &mut State, now: Instant) -> Result<Job, Option<Instant>> {
    while let Some(Reverse((due, seq, id))) = st.heap.peek() {
        let current = st
            .entries
            .get(id)
            .is_some_and(|e| e.seq == *seq && !e.in_flight && !e.held);
        if !current {
            st.heap.pop();
            continue;
        }
        if *due > now {
            return Err(Some(*due));
        }
        let Some(Reverse((_, _, id))) = st.heap.pop() else {
            break;
        };
        let Some(entry) = st.entries.get_mut(&id) else {
            continue;
        };
        entry.in_flight = true;
        entry.parked = false;
        return Ok(Job {
            failures: entry.failures,
            last_upstream: entry.last_upstream.clone(),
            requeued_at: entry.requeued_at,
            id,
        });
    }
    Err(None)
}

#[cfg(test)]
mod tests;
