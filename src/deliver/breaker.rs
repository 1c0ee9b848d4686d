//! Circuit breakers: one per upstream name, shared by every worker.
//!
//! Without them an upstream that is down makes every message pay a failed
//! attempt (often a full timeout) before it fails over. After
//! `failures` consecutive transient failures a breaker opens and routing
//! skips the upstream for `cooldown`; then it is half-open and exactly one
//! probe delivery is let through: success closes it, failure opens it for
//! another cool-down. A permanent failure says something about the message,
//! not the upstream, so it resets the count like a success (and closes a
//! half-open breaker: the upstream answered).
//!
//! State is keyed by upstream name rather than by the upstream object, so a
//! reload that rebuilds the clients keeps what was learned. Outcomes are
//! tied to the breaker's generation when the request started: a slow
//! request from before the breaker opened cannot close or re-open it later.
//! Time comes from a [`SharedClock`] so tests never sleep.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::SharedClock;
use crate::clock::nanos;

/// When a breaker opens and for how long (per upstream, from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open the breaker (at least 1).
    pub failures: u32,
    /// How long an open breaker skips the upstream before one probe.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// What routing sees of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries go through.
    Closed,
    /// The upstream is skipped until the cool-down ends.
    Open,
    /// One probe delivery decides between closed and open.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

/// How a delivery through a breaker ended, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Transient or ambiguous: the upstream may be unwell.
    Transient,
    /// The message was refused: the upstream is working.
    Permanent,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        failures: u32,
    },
    /// Opened at `since` (clock nanos); the end is computed with the current
    /// settings, so a reload that shortens the cool-down applies at once.
    Open {
        since: u64,
    },
    HalfOpen {
        probing: bool,
    },
}

#[derive(Debug)]
struct Breaker {
    settings: BreakerSettings,
    phase: Phase,
    /// Bumped on every state change; permits from an older generation no
    /// longer count.
    generation: u64,
}

impl Breaker {
    fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings,
            phase: Phase::Closed { failures: 0 },
            generation: 0,
        }
    }

    fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn cooldown(&self) -> u64 {
        nanos(self.settings.cooldown)
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
    }
}

/// Every upstream's breaker, by upstream name.
pub struct Breakers {
    clock: SharedClock,
    map: Mutex<HashMap<String, Breaker>>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, b) in self.lock().iter() {
            m.entry(name, &b.state());
        }
        m.finish()
    }
}

impl Breakers {
    pub fn new(clock: SharedClock) -> Arc<Breakers> {
        Arc::new(Breakers {
            clock,
            map: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Breaker>> {
        // Nothing panics while holding the lock; recover anyway rather than
        // stop delivering mail.
        match self.map.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The clock breakers run on (nanoseconds, see [`crate::quota::Clock`]).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Takes the settings of the upstreams now configured: known names keep
    /// their state with the new settings, new names start closed, names no
    /// longer configured are forgotten.
    pub fn configure(&self, upstreams: impl IntoIterator<Item = (String, BreakerSettings)>) {
        let mut map = self.lock();
        let mut keep = HashMap::new();
        for (name, settings) in upstreams {
            let mut b = map.remove(&name).unwrap_or_else(|| Breaker::new(settings));
            b.settings = settings;
            keep.insert(name, b);
        }
        *map = keep;
    }

    /// The state of `name` right now (closed when unknown). An open breaker
    /// whose cool-down is over reads as half-open: the next delivery probes.
    pub fn state(&self, name: &str) -> BreakerState {
        let now = self.now();
        match self.lock().get(name) {
            None => BreakerState::Closed,
            Some(b) => match b.phase {
                Phase::Open { since } if now >= since.saturating_add(b.cooldown()) => {
                    BreakerState::HalfOpen
                }
                _ => b.state(),
            },
        }
    }

    /// Asks to send one delivery to `name`. `Err(at)` when the breaker is
    /// open (or half-open with its probe in flight): `at` is the clock time
    /// when asking again may succeed. An open breaker whose cool-down is
    /// over becomes half-open here and the caller's delivery is the probe.
    pub fn admit(self: &Arc<Self>, name: &str) -> Result<Permit, u64> {
        let now = self.now();
        let mut map = self.lock();
        let b = map
            .entry(name.to_string())
            .or_insert_with(|| Breaker::new(BreakerSettings::default()));
        let probe = match b.phase {
            Phase::Closed { .. } => false,
            Phase::Open { since } => {
                let at = since.saturating_add(b.cooldown());
                if now < at {
                    return Err(at);
                }
                b.enter(Phase::HalfOpen { probing: true });
                log_change(name, BreakerState::HalfOpen, b.settings);
                true
            }
            Phase::HalfOpen { probing: false } => {
                b.phase = Phase::HalfOpen { probing: true };
                true
            }
            // The probe decides soon; closing wakes waiting messages early
            // (see `Delivery`), so this is only the latest time to look again.
            Phase::HalfOpen { probing: true } => return Err(now.saturating_add(b.cooldown())),
        };
        Ok(Permit {
            breakers: Arc::clone(self),
            name: name.to_string(),
            generation: b.generation,
            probe,
            done: false,
        })
    }

    /// Applies an outcome; returns the new state if it changed.
    fn record(
        &self,
        name: &str,
        generation: u64,
        probe: bool,
        outcome: Outcome,
    ) -> Option<BreakerState> {
        let now = self.now();
        let mut map = self.lock();
        let b = map.get_mut(name)?;
        if b.generation != generation {
            return None;
        }
        let next = match (b.phase, outcome) {
            (Phase::Closed { failures }, Outcome::Transient) => {
                let failures = failures.saturating_add(1);
                if failures >= b.settings.failures {
                    Phase::Open { since: now }
                } else {
                    b.phase = Phase::Closed { failures };
                    return None;
                }
            }
            (Phase::Closed { .. }, Outcome::Success | Outcome::Permanent) => {
                b.phase = Phase::Closed { failures: 0 };
                return None;
            }
            (Phase::HalfOpen { probing: true }, Outcome::Transient) if probe => {
                Phase::Open { since: now }
            }
            (Phase::HalfOpen { probing: true }, Outcome::Success | Outcome::Permanent) if probe => {
                Phase::Closed { failures: 0 }
            }
            _ => return None,
        };
        b.enter(next);
        let state = b.state();
        log_change(name, state, b.settings);
        Some(state)
    }

    /// A probe that ended without an outcome (its task panicked or was
    /// cancelled): let the next delivery probe instead.
    fn release(&self, name: &str, generation: u64) {
        if let Some(b) = self.lock().get_mut(name)
            && b.generation == generation
            && matches!(b.phase, Phase::HalfOpen { probing: true })
        {
            b.phase = Phase::HalfOpen { probing: false };
        }
    }
}

fn log_change(name: &str, state: BreakerState, settings: BreakerSettings) {
    let state_text = state.to_string();
    match state {
        BreakerState::Open => tracing::warn!(
            upstream = name,
            state = %state_text,
            failures = settings.failures,
            cooldown = %humantime::format_duration(settings.cooldown),
            "circuit breaker open: upstream keeps failing; skipping it until the cool-down ends"
        ),
        BreakerState::HalfOpen => tracing::info!(
            upstream = name,
            state = %state_text,
            "circuit breaker half-open: letting one probe delivery through"
        ),
        BreakerState::Closed => tracing::info!(
            upstream = name,
            state = %state_text,
            "circuit breaker closed: upstream answered the probe; delivering to it again"
        ),
    }
}

/// Leave to send one delivery through a breaker; report how it ended with
/// [`Permit::record`]. Dropping a probe's permit unrecorded frees the probe
/// slot for another delivery.
pub struct Permit {
    breakers: Arc<Breakers>,
    name: String,
    generation: u64,
    probe: bool,
    done: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("name", &self.name)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl Permit {
    /// Whether this delivery is the half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Reports the delivery's outcome; returns the breaker's new state if
    /// it changed.
    pub fn record(mut self, outcome: Outcome) -> Option<BreakerState> {
        self.done = true;
        self.breakers
            .record(&self.name, self.generation, self.probe, outcome)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breakers.release(&self.name, self.generation);
        }
    }
}
