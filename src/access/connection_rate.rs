//! `[abuse] connections_per_ip_per_minute`: new connections per client network.
//!
//! Checked by the listener right after accept, before TLS, so a client that
//! opens connections in a loop (a password sprayer, a broken cron job) costs
//! one map lookup per attempt instead of a TLS handshake. The listener skips
//! it for clients a `networks` credential trusts and for known clients
//! (`access::known`): a batch job that opens one connection per message is
//! not a flood. This is the one
//! limiter that uses governor's own keyed state store as is: nothing about it
//! needs to be all-or-nothing or persisted, and a reload that changes the
//! number may start it empty.

use super::abuse::Settings as AbuseSettings;
use crate::clock::{GovernorClock, SharedClock, SystemClock};
use crate::quota::ClientKey;
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

type Keyed =
    RateLimiter<ClientKey, HashMapStateStore<ClientKey>, GovernorClock, NoOpMiddleware<Nanos>>;

/// Idle keys are swept after this many checks, bounding the map's size
/// under a flood of distinct addresses.
const SWEEP_EVERY: u32 = 4096;

struct Inner {
    per_minute: Option<NonZeroU32>,
    limiter: Option<Keyed>,
}

/// Too many new connections from one client; reply `421 4.7.0` with the
/// Display text and close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRefusal {
    pub key: ClientKey,
    pub retry_after: Duration,
}

impl fmt::Display for ConnectionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        write!(
            f,
            "Too many connections from {}; try again in {} s",
            self.key,
            secs.max(1)
        )
    }
}

impl std::error::Error for ConnectionRefusal {}

/// The per-IP new-connection limiter; kept by the daemon across reloads.
pub struct ConnectionRate {
    inner: RwLock<Inner>,
    clock: SharedClock,
    checks: AtomicU32,
}

fn build(per_minute: Option<NonZeroU32>, clock: &SharedClock) -> Inner {
    Inner {
        per_minute,
        limiter: per_minute.map(|n| {
            RateLimiter::new(
                Quota::per_minute(n),
                HashMapStateStore::default(),
                GovernorClock(clock.clone()),
            )
        }),
    }
}

impl ConnectionRate {
    pub fn new(cfg: &AbuseSettings) -> ConnectionRate {
        ConnectionRate::with_clock(cfg, SystemClock::shared())
    }

    pub fn with_clock(cfg: &AbuseSettings, clock: SharedClock) -> ConnectionRate {
        ConnectionRate {
            inner: RwLock::new(build(cfg.connections_per_ip_per_minute, &clock)),
            clock,
            checks: AtomicU32::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one new connection from the client network `key`.
    pub fn check(&self, key: ClientKey) -> Result<(), ConnectionRefusal> {
        let inner = self.read();
        let Some(limiter) = &inner.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(GovernorClock(self.clock.clone()).now());
            tracing::info!(key = %key, retry_after_s = retry_after.as_secs(), "connection rate refused");
            ConnectionRefusal { key, retry_after }
        })
    }

    /// On reload; the counts are kept unless the limit itself changed.
    pub fn reconfigure(&self, cfg: &AbuseSettings) {
        if self.read().per_minute == cfg.connections_per_ip_per_minute {
            return;
        }
        let fresh = build(cfg.connections_per_ip_per_minute, &self.clock);
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    /// Number of client keys currently tracked.
    pub fn len(&self) -> usize {
        self.read().limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
