//! The one time source shared by quotas, lockout, connection rate and pacing.
//!
//! Two needs pull in different directions: hour and day counters are
//! persisted, so their time must mean the same thing after a restart (wall
//! time), while a GCRA "theoretical arrival time" must never jump when an
//! administrator or NTP steps the wall clock (a step back of one hour would
//! refuse every busy key for an hour). [`SystemClock`] reads wall time once
//! at start and advances it with the monotonic clock, which gives both.
//! Tests use [`ManualClock`], so no test sleeps.

use governor::nanos::Nanos;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch; never decreases within one process.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> u64;
}

/// A clock handle that can be stored and cloned cheaply.
pub type SharedClock = Arc<dyn Clock>;

/// Wall time at construction, advanced by the monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    anchor_unix: u64,
    anchor: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let anchor_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        SystemClock {
            anchor_unix,
            anchor: Instant::now(),
        }
    }

    pub fn shared() -> SharedClock {
        Arc::new(SystemClock::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.anchor.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.anchor_unix.saturating_add(elapsed)
    }
}

/// A clock that moves only when told to, for deterministic tests.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Starts at `since_epoch` after the Unix epoch.
    pub fn new(since_epoch: Duration) -> Self {
        ManualClock(AtomicU64::new(nanos(since_epoch)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(nanos(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A duration in nanoseconds, saturating instead of panicking.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Adapts a [`SharedClock`] to governor's clock trait so governor's own
/// limiters run on the same (injectable) time as everything else.
#[derive(Debug, Clone)]
pub(crate) struct GovernorClock(pub SharedClock);

impl governor::clock::Clock for GovernorClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now())
    }
}

/// A governor clock frozen at one instant: used to evaluate GCRA state that
/// postern stores itself (see `engine`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct At(pub u64);

impl governor::clock::Clock for At {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0)
    }
}

#[cfg(test)]
mod tests;
