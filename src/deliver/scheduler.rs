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
}

struct Entry {
    /// Matches the heap item that is current for this id; older heap items
    /// (superseded by a retry) are skipped when popped.
    seq: u64,
    in_flight: bool,
    /// Waiting for a circuit breaker rather than for a retry delay.
    parked: bool,
    failures: u32,
    last_upstream: Option<String>,
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
                failures: job.failures,
                last_upstream: job.last_upstream,
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
            .filter(|(_, e)| e.parked && !e.in_flight)
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
            .filter(|e| e.parked && !e.in_flight)
            .count()
    }

    fn requeue(&self, id: &str, due: Instant, update: impl FnOnce(&mut Entry)) {
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let Some(entry) = st.entries.get_mut(id) else {
            return;
        };
        entry.seq = seq;
        entry.in_flight = false;
        entry.parked = false;
        update(entry);
        st.heap.push(Reverse((due, seq, id.to_string())));
        drop(st);
        self.wake.notify_waiters();
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

/// Takes the first due, current, waiting item; otherwise returns when the
/// earliest one is due (None if nothing waits).
fn pop_due(st: &mut State, now: Instant) -> Result<Job, Option<Instant>> {
    while let Some(Reverse((due, seq, id))) = st.heap.peek() {
        let current = st
            .entries
            .get(id)
            .is_some_and(|e| e.seq == *seq && !e.in_flight);
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
            id,
        });
    }
    Err(None)
}

#[cfg(test)]
mod tests;
