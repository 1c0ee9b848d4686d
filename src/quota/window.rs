//! Rolling hour and day counters that can be written to disk.
//!
//! A GCRA bucket with `per_day = 5000` lets 5000 through at once and then
//! refills continuously, so up to ~10,000 can pass within 24 hours; operators
//! who write `per_day = 5000` mean "never more than 5000 in any 24 hours".
//! So hour and day limits are counted in fixed-width buckets (5 minutes for
//! the hour, 1 hour for the day) in a ring, one bucket more than the window
//! needs: the sum then always covers at least the whole window, and a limit
//! is never exceeded in any window of that length (at the price of
//! forgetting an old count up to one bucket late). Bucket numbers are
//! absolute (Unix time / width), so a saved ring means the same after a
//! restart.

use serde::{Deserialize, Serialize};

/// Window length in seconds, bucket width in seconds, ring length.
pub(crate) trait Span: Clone {
    const WIDTH: u64;
    const SLOTS: usize;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hour;
impl Span for Hour {
    const WIDTH: u64 = 300;
    const SLOTS: usize = 13;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Day;
impl Span for Day {
    const WIDTH: u64 = 3600;
    const SLOTS: usize = MAX_SLOTS;
}

const NS: u64 = 1_000_000_000;

/// Ring capacity shared by both spans; counts are stored inline (no
/// allocation per key) so that a lookup or a snapshot touches one place.
const MAX_SLOTS: usize = 25;

/// One rolling counter. `counts[b % SLOTS]` holds bucket `b` for
/// `head - SLOTS < b <= head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window<S: Span> {
    head: u64,
    counts: [u32; MAX_SLOTS],
    _span: std::marker::PhantomData<S>,
}

/// A window as stored on disk: newest bucket number and the counts from
/// oldest to newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub head: u64,
    pub counts: Vec<u32>,
}

impl<S: Span> Window<S> {
    pub fn new() -> Self {
        Window {
            head: 0,
            counts: [0; MAX_SLOTS],
            _span: std::marker::PhantomData,
        }
    }

    fn bucket(now: u64) -> u64 {
        now / NS / S::WIDTH
    }

    fn slot(b: u64) -> usize {
        // SLOTS is tiny, so the remainder always fits.
        (b % S::SLOTS as u64) as usize
    }

    /// Drops buckets that have left the window. A clock that went back
    /// (wall time stepped between runs) keeps counting into the head bucket.
    fn advance(&mut self, now: u64) {
        let b = Self::bucket(now);
        if b <= self.head {
            return;
        }
        if b - self.head >= S::SLOTS as u64 {
            self.counts.fill(0);
        } else {
            for x in self.head + 1..=b {
                self.counts[Self::slot(x)] = 0;
            }
        }
        self.head = b;
    }

    pub fn total(&mut self, now: u64) -> u64 {
        self.advance(now);
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Whether `n` more fit under `limit`; if not, nanoseconds until enough
    /// old buckets have left the window.
    pub fn check(&mut self, now: u64, n: u32, limit: u32) -> Result<(), u64> {
        if n > limit {
            // Can never pass; answer with the whole window so the client
            // backs off for long.
            return Err((S::SLOTS as u64) * S::WIDTH * NS);
        }
        let total = self.total(now);
        let allowed = u64::from(limit - n);
        if total <= allowed {
            return Ok(());
        }
        let mut excess = total - allowed;
        let oldest = self.head.saturating_sub(S::SLOTS as u64 - 1);
        for b in oldest..=self.head {
            let c = u64::from(self.counts[Self::slot(b)]);
            if c == 0 {
                continue;
            }
            if c >= excess {
                // Bucket b leaves the window when bucket b + SLOTS begins.
                let free_at = (b + S::SLOTS as u64)
                    .saturating_mul(S::WIDTH)
                    .saturating_mul(NS);
                return Err(free_at.saturating_sub(now));
            }
            excess -= c;
        }
        // Unreachable in practice: the buckets summed to more than `excess`.
        Err((S::SLOTS as u64) * S::WIDTH * NS)
    }

    pub fn add(&mut self, now: u64, n: u32) {
        self.advance(now);
        let s = Self::slot(self.head);
        self.counts[s] = self.counts[s].saturating_add(n);
    }

    /// Gives back `n` counted earlier, newest buckets first.
    pub fn remove(&mut self, now: u64, mut n: u32) {
        self.advance(now);
        let oldest = self.head.saturating_sub(S::SLOTS as u64 - 1);
        for b in (oldest..=self.head).rev() {
            let c = &mut self.counts[Self::slot(b)];
            let take = (*c).min(n);
            *c -= take;
            n -= take;
            if n == 0 {
                return;
            }
        }
    }

    pub fn is_empty(&mut self, now: u64) -> bool {
        self.total(now) == 0
    }

    /// The counts from the oldest non-zero bucket to the head (leading
    /// zeros left out: most keys are active for a short while only).
    pub fn save(&self) -> Saved {
        let oldest = self.head.saturating_sub(S::SLOTS as u64 - 1);
        let first = (oldest..=self.head)
            .find(|&b| self.counts[Self::slot(b)] != 0)
            .unwrap_or(self.head);
        Saved {
            head: self.head,
            counts: (first..=self.head)
                .map(|b| self.counts[Self::slot(b)])
                .collect(),
        }
    }

    /// Rebuilds a saved window; `None` if it was saved with another shape.
    /// The file is input: a bucket number no clock can produce is refused
    /// so that later arithmetic on it cannot overflow.
    pub fn restore(saved: &Saved) -> Option<Self> {
        let len = saved.counts.len();
        if len == 0 || len > S::SLOTS || saved.head > u64::MAX / NS / S::WIDTH {
            return None;
        }
        let oldest = (saved.head + 1).checked_sub(len as u64)?;
        let mut w = Self::new();
        w.head = saved.head;
        for (i, &c) in saved.counts.iter().enumerate() {
            w.counts[Self::slot(oldest + i as u64)] = c;
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests;
