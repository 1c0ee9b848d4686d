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
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_from_initial_up_to_max() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (1..=9).map(|n| p.backoff(n, 0.0).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(p.backoff(u32::MAX, 0.0), S(3600));
        assert_eq!(p.backoff(0, 0.0), S(30));
    }

    #[test]
    fn jitter_is_plus_minus_twenty_percent_and_never_above_max() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, -1.0), S(24));
        assert_eq!(p.backoff(1, 1.0), S(36));
        assert_eq!(p.backoff(2, 0.5), S(66));
        assert_eq!(p.backoff(20, 1.0), S(3600));
        assert_eq!(p.backoff(20, -1.0), S(2880));
        // Out-of-range jitter is clamped rather than producing odd delays.
        assert_eq!(p.backoff(1, 7.0), S(36));
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((-1.0..=1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.after_transient(1, Some(S(600)), S(0), 0.0), Some(S(600)));
        // Shorter than our own back-off: ours wins.
        assert_eq!(p.after_transient(3, Some(S(5)), S(0), 0.0), Some(S(120)));
        // Absurd values are capped by the message's remaining lifetime.
        let age = S(4 * 24 * 3600);
        assert_eq!(
            p.after_transient(1, Some(S(u64::MAX / 4)), age, 0.0),
            Some(S(24 * 3600))
        );
    }

    #[test]
    fn gives_up_once_max_age_is_reached_and_retries_at_expiry() {
        let p = RetryPolicy {
            initial: S(30),
            max: S(3600),
            max_age: S(1000),
        };
        assert_eq!(p.after_transient(1, None, S(0), 0.0), Some(S(30)));
        // Next back-off would overshoot expiry: last attempt at expiry.
        assert_eq!(p.after_transient(8, None, S(990), 0.0), Some(S(10)));
        assert_eq!(p.after_transient(9, None, S(1000), 0.0), None);
        assert_eq!(p.after_transient(1, None, S(5000), 0.0), None);
    }
}
