//! When to try a failed delivery again, and when to stop trying.
//!
//! Exponential back-off with jitter keeps a recovering upstream from being
//! hit by every deferred message at the same instant; `max_age` bounds how
//! long a message may wait before its sender hears about it (dead letter).

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// Back-off settings (`[delivery]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles after each further one.
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
    /// After this long since acceptance a message that still fails goes to
    /// the dead letters.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            max_age: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// Spread of the random jitter around the nominal delay (±20%).
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// Delay after the `failures`-th consecutive failure (1-based):
    /// `initial * 2^(failures-1)`, at most `max`, scaled by
    /// `1 + 0.2 * jitter` (`jitter` in [-1, 1]) and never above `max`.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let nominal = self
            .initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
        nominal.mul_f64(factor).min(self.max)
    }

    /// After a transient failure: `Some(delay)` until the next attempt, or
    /// `None` when the message is too old to keep trying. A `retry_after`
    /// from the upstream is honoured (capped at `max_age`), and no retry is
    /// scheduled past the message's expiry, so the last attempt happens at
    /// `max_age` rather than up to `max` later.
    pub fn after_transient(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        age: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if age >= self.max_age {
            return None;
        }
        let mut delay = self.backoff(failures, jitter);
        if let Some(wait) = retry_after {
            delay = delay.max(wait.min(self.max_age));
        }
        Some(delay.min(self.max_age - age))
    }
}

/// A uniformly random jitter in [-1, 1].
pub(crate) fn random_jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}

#[cfg(test)]
mod tests;
