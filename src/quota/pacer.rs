//! Outbound pacing per upstream: `max_concurrency` and `rate = "30/min"`.
//!
//! Provider APIs publish their own limits (Microsoft Graph: 30 messages a
//! minute per mailbox, 4 concurrent requests); going over them earns 429s,
//! retries and sometimes a temporary block. A delivery worker therefore
//! waits for a [`Pacer`] permit instead of failing. Sends are spaced evenly
//! (burst of one): `"30/min"` means one every two seconds, which never puts
//! more than 30 into any minute, whereas a bucket that allowed 30 at once
//! could put nearly 60 into one minute.

use crate::clock::{GovernorClock, SharedClock, SystemClock};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A number of sends per period, written `"30/min"`, `"5/s"`, `"1000/h"`,
/// `"20000/day"` or with a duration, `"10/90s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = |why: &str| {
            format!("invalid rate {text:?}: {why} (examples: \"30/min\", \"5/s\", \"1000/h\")")
        };
        let (n, unit) = text
            .split_once('/')
            .ok_or_else(|| bad("expected COUNT/PERIOD"))?;
        let count = n
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| bad("the count must be a positive integer"))?;
        let unit = unit.trim().to_ascii_lowercase();
        let per = match unit.as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
            "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86400),
            other if other.starts_with(|c: char| c.is_ascii_digit()) => {
                humantime::parse_duration(other).map_err(|e| bad(&e.to_string()))?
            }
            _ => {
                return Err(bad(
                    "the period must be s, min, h, day or a duration like 90s",
                ));
            }
        };
        let rate = Rate { count, per };
        if rate.interval().is_zero() {
            return Err(bad("more than one per nanosecond"));
        }
        Ok(rate)
    }

    /// Time between two sends.
    pub fn interval(&self) -> Duration {
        self.per / self.count.get()
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Rate, String> {
        Rate::parse(s)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => "s".to_string(),
            60 if self.per.subsec_nanos() == 0 => "min".to_string(),
            3600 if self.per.subsec_nanos() == 0 => "h".to_string(),
            86400 if self.per.subsec_nanos() == 0 => "day".to_string(),
            _ => humantime::format_duration(self.per).to_string(),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// How a pacer waits; tokio's timer in the daemon, a clock jump in tests.
pub trait Sleep: Send + Sync {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Bounds concurrent requests to one upstream and spaces them to a rate.
/// Shared by all delivery workers of that upstream (`Arc<Pacer>`).
pub struct Pacer {
    slots: Option<Arc<Semaphore>>,
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<Nanos>>>,
    clock: GovernorClock,
    sleeper: Arc<dyn Sleep>,
}

/// Held for the duration of one upstream request; dropping it frees the
/// concurrency slot.
#[derive(Debug)]
pub struct PacerPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Pacer {
    /// A pacer on real time; `None` for either setting means no bound.
    pub fn new(max_concurrency: Option<usize>, rate: Option<Rate>) -> Pacer {
        Pacer::with_time(
            max_concurrency,
            rate,
            SystemClock::shared(),
            Arc::new(TokioSleep),
        )
    }

    pub fn with_time(
        max_concurrency: Option<usize>,
        rate: Option<Rate>,
        clock: SharedClock,
        sleeper: Arc<dyn Sleep>,
    ) -> Pacer {
        let clock = GovernorClock(clock);
        let limiter = rate
            .and_then(|r| Quota::with_period(r.interval()))
            .map(|q| RateLimiter::direct_with_clock(q, clock.clone()));
        Pacer {
            slots: max_concurrency.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            limiter,
            clock,
            sleeper,
        }
    }

    /// Whether this pacer ever makes anyone wait.
    pub fn is_unbounded(&self) -> bool {
        self.slots.is_none() && self.limiter.is_none()
    }

    /// Waits for a concurrency slot, then for the rate. The slot is taken
    /// first: a worker waiting for the rate could not use a free slot anyway,
    /// and this way waiting workers are served in order.
    pub async fn acquire(&self) -> PacerPermit {
        let slot = match &self.slots {
            // acquire_owned fails only on a closed semaphore; this one never is.
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        };
        if let Some(limiter) = &self.limiter {
            while let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                self.sleeper.sleep(wait).await;
            }
        }
        PacerPermit { _slot: slot }
    }
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("slots", &self.slots.as_ref().map(|s| s.available_permits()))
            .field("rate", &self.limiter.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
