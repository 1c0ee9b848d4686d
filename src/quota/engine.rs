//! The quota tables and the all-or-nothing check across keys.
//!
//! Why not one governor `DefaultKeyedRateLimiter` per limit: a message is
//! checked against up to four keys (credential, sender, domain, IP), and a
//! refusal by the fourth must not have consumed the first three, but
//! governor's limiters consume on success and offer neither a dry run nor a
//! refund. Their state is also tied to one `Quota` and one start instant, so
//! a reload that changes a limit would have to throw it away.
//!
//! So the state lives here, one [`KeyState`] per key, and governor is used
//! for what it is good at, the GCRA arithmetic of minute limits and bursts:
//! each minute check builds a direct governor limiter over a one-key
//! [`Slot`] (a `StateStore` that holds the key's absolute theoretical
//! arrival time and records, rather than writes, the new one), so every key
//! can be evaluated first and committed only when all pass. Hour and day
//! limits are rolling bucket counters ([`super::window`]), which are exact
//! about "N per day" where a token bucket is not, and which persist.

use super::persist::{Record, Snap, live, restore_window};
use super::window::{Day, Hour, Window};
use super::{Limits, Settings, Windows};
use super::{Refusal, Subject};
use crate::clock::{At, nanos};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

mod shared;
pub(crate) use shared::{share_limits, share_settings};

/// What a key identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dim {
    Credential,
    Sender,
    Domain,
    Ip,
    /// All senders of one `shared = true` rule.
    Rule,
}

impl Dim {
    const ALL: [Dim; 5] = [
        Dim::Credential,
        Dim::Sender,
        Dim::Domain,
        Dim::Ip,
        Dim::Rule,
    ];
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            Dim::Credential => "credential",
            Dim::Sender => "sender",
            Dim::Domain => "domain",
            Dim::Ip => "ip",
            Dim::Rule => "rule",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Messages,
    Recipients,
}

/// Which window of a unit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    Minute,
    Hour,
    Day,
}

/// One unit's counters for one key.
#[derive(Debug, Default)]
struct Counter {
    /// GCRA theoretical arrival time, ns since the epoch; in the past (or 0)
    /// means a full bucket.
    tat: u64,
    hour: Option<Window<Hour>>,
    day: Option<Window<Day>>,
}

impl Counter {
    fn is_idle(&mut self, now: u64) -> bool {
        self.tat <= now
            && self.hour.as_mut().is_none_or(|w| w.is_empty(now))
            && self.day.as_mut().is_none_or(|w| w.is_empty(now))
    }
}

#[derive(Debug, Default)]
pub(crate) struct KeyState {
    messages: Counter,
    recipients: Counter,
}

impl KeyState {
    fn counter(&mut self, u: Unit) -> &mut Counter {
        match u {
            Unit::Messages => &mut self.messages,
            Unit::Recipients => &mut self.recipients,
        }
    }
}

/// A one-key governor state store over postern's own stored TAT.
struct Slot {
    tat: u64,
    now: u64,
    next: Cell<u64>,
}

impl StateStore for Slot {
    type Key = NotKeyed;
    fn measure_and_replace<T, F, E>(&self, _: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The limiter is created at `now`, so governor's times are relative
        // to it; a TAT at or before now is the same as a fresh key.
        let prev = (self.tat > self.now).then(|| Nanos::from(self.tat - self.now));
        let (out, next) = f(prev)?;
        self.next.set(self.now.saturating_add(next.as_u64()));
        Ok(out)
    }
}

fn minute_quota(max: NonZeroU32, burst: Option<NonZeroU32>) -> Quota {
    let q = Quota::per_minute(max);
    match burst {
        Some(b) => q.allow_burst(b),
        None => q,
    }
}

/// One GCRA step: the new TAT, or nanoseconds to wait.
fn gcra(tat: u64, now: u64, quota: Quota) -> Result<u64, u64> {
    let slot = Slot {
        tat,
        now,
        next: Cell::new(tat),
    };
    let limiter: RateLimiter<NotKeyed, Slot, At, NoOpMiddleware<Nanos>> =
        RateLimiter::new(quota, slot, At(now));
    match limiter.check() {
        Ok(()) => Ok(limiter.into_state_store().next.get()),
        Err(not_until) => Err(nanos(not_until.wait_time_from(Nanos::from(now)))),
    }
}

/// Which layer a key's limits came from, for naming the rule in a refusal.
#[derive(Debug, Clone, Copy)]
enum Layer<'a> {
    Default(Dim),
    Credential(&'a str, &'a Limits),
    Rule(usize),
}

struct Target<'a> {
    dim: Dim,
    key: Cow<'a, str>,
    limits: Limits,
    layer: Layer<'a>,
}

/// `Settings` arranged for lookups.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    cfg: Settings,
    /// Each rule's limits on top of the sender defaults.
    rule_limits: Vec<Limits>,
    exact: HashMap<String, usize>,
    by_domain: HashMap<String, usize>,
    any: Option<usize>,
}

impl Compiled {
    pub fn new(cfg: &Settings) -> Compiled {
        let mut c = Compiled {
            cfg: cfg.clone(),
            ..Compiled::default()
        };
        for (i, rule) in cfg.rules.iter().enumerate() {
            c.rule_limits.push(rule.limits.over(&cfg.sender));
            for p in &rule.senders {
                // The first rule listing a pattern wins.
                if p == "*" {
                    c.any.get_or_insert(i);
                } else if let Some(domain) = p.strip_prefix("*@") {
                    c.by_domain.entry(domain.to_string()).or_insert(i);
                } else {
                    c.exact.entry(p.clone()).or_insert(i);
                }
            }
        }
        c
    }

    /// The most specific rule for a lower-cased sender: exact address, then
    /// `*@domain`, then `*`.
    fn rule_for(&self, sender: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(sender) {
            return Some(i);
        }
        let by_domain = sender
            .rsplit_once('@')
            .and_then(|(_, d)| self.by_domain.get(d).copied());
        by_domain.or(self.any)
    }

    fn targets<'a>(&'a self, s: &'a Subject<'a>) -> [Option<Target<'a>>; 4] {
        let lower = |t: &'a str| -> Cow<'a, str> {
            if t.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(t.to_ascii_lowercase())
            } else {
                Cow::Borrowed(t)
            }
        };
        let credential = (!s.credential.is_empty()).then(|| {
            let (limits, layer) = match s.credential_quota {
                Some(q) => (
                    q.over(&self.cfg.credential),
                    Layer::Credential(s.credential, q),
                ),
                None => (self.cfg.credential, Layer::Default(Dim::Credential)),
            };
            Target {
                dim: Dim::Credential,
                key: Cow::Borrowed(s.credential),
                limits,
                layer,
            }
        });
        let sender_key = lower(s.sender.trim());
        let sender = (!sender_key.is_empty()).then(move || match self.rule_for(&sender_key) {
            Some(i) if self.cfg.rules[i].shared => Target {
                dim: Dim::Rule,
                key: Cow::Borrowed(self.cfg.rules[i].name.as_str()),
                limits: self.rule_limits[i],
                layer: Layer::Rule(i),
            },
            Some(i) => Target {
                dim: Dim::Sender,
                key: sender_key,
                limits: self.rule_limits[i],
                layer: Layer::Rule(i),
            },
            None => Target {
                dim: Dim::Sender,
                key: sender_key,
                limits: self.cfg.sender,
                layer: Layer::Default(Dim::Sender),
            },
        });
        let domain_text = match s.from_domain.trim() {
            "" => s.sender.trim().rsplit_once('@').map_or("", |(_, d)| d),
            d => d,
        };
        let domain = (!domain_text.is_empty()).then(|| Target {
            dim: Dim::Domain,
            key: lower(domain_text),
            limits: self.cfg.domain,
            layer: Layer::Default(Dim::Domain),
        });
        let ip = Some(Target {
            dim: Dim::Ip,
            key: Cow::Owned(s.client.to_string()),
            limits: self.cfg.ip,
            layer: Layer::Default(Dim::Ip),
        });
        [credential, sender, domain, ip]
    }

    fn rule_name(&self, layer: Layer<'_>, unit: Unit, span: Span) -> String {
        let window = match (unit, span) {
            (Unit::Messages, Span::Minute) => "per_minute",
            (Unit::Messages, Span::Hour) => "per_hour",
            (Unit::Messages, Span::Day) => "per_day",
            (Unit::Recipients, Span::Minute) => "recipients_per_minute",
            (Unit::Recipients, Span::Hour) => "recipients_per_hour",
            (Unit::Recipients, Span::Day) => "recipients_per_day",
        };
        // A key the override left out came from the defaults.
        let set_in = |l: &Limits| {
            let w = match unit {
                Unit::Messages => l.messages,
                Unit::Recipients => l.recipients,
            };
            let s = match span {
                Span::Minute => w.per_minute,
                Span::Hour => w.per_hour,
                Span::Day => w.per_day,
            };
            s != super::Setting::Inherit
        };
        let prefix = match layer {
            Layer::Credential(name, q) if set_in(q) => format!("credentials.{name}.quota"),
            Layer::Rule(i) if set_in(&self.cfg.rules[i].limits) => {
                format!("quota.rules.{}", self.cfg.rules[i].name)
            }
            Layer::Default(d) => format!("quota.{}", d.name()),
            Layer::Credential(..) => "quota.credential".to_string(),
            Layer::Rule(_) => "quota.sender".to_string(),
        };
        format!("{prefix}.{window}")
    }
}

fn windows(l: &Limits, u: Unit) -> Windows {
    match u {
        Unit::Messages => l.messages,
        Unit::Recipients => l.recipients,
    }
}

/// Every key's counters plus the compiled limits; guarded by one mutex in
/// [`super::Quotas`].
#[derive(Debug, Default)]
pub(crate) struct Engine {
    pub compiled: Compiled,
    /// `Arc<str>` keys: a snapshot copies a key with a reference count,
    /// not an allocation, while the lock is held.
    tables: [HashMap<Arc<str>, KeyState>; 5],
    /// Bumped whenever an hour or day counter changes, so the persister
    /// writes only when there is something new.
    pub changes: u64,
}

impl Engine {
    pub fn new(cfg: &Settings) -> Engine {
        Engine {
            compiled: Compiled::new(cfg),
            ..Engine::default()
        }
    }

    /// Counts `n` units against every applicable limit, or none of them.
    pub fn check(&mut self, s: &Subject<'_>, unit: Unit, n: u32, now: u64) -> Result<(), Refusal> {
        let Engine {
            compiled: c,
            tables,
            changes,
        } = self;
        let targets = c.targets(s);
        let mut next_tat: [Option<u64>; 4] = [None; 4];
        let mut worst: Option<(u64, usize, Span)> = None;
        let mut note = |wait: u64, i: usize, span: Span| {
            if worst.is_none_or(|(w, _, _)| wait > w) {
                worst = Some((wait, i, span));
            }
        };
        // Phase 1: evaluate every key without counting anything.
        for (i, t) in targets.iter().enumerate() {
            let Some(t) = t else { continue };
            let w = windows(&t.limits, unit);
            if w.is_unlimited() {
                continue;
            }
            let mut fresh = KeyState::default();
            let state = tables[t.dim.index()]
                .get_mut(t.key.as_ref())
                .unwrap_or(&mut fresh);
            let counter = state.counter(unit);
            if let Some(max) = w.per_minute.max() {
                let quota = minute_quota(max, w.burst.max());
                let mut tat = Ok(counter.tat);
                for _ in 0..n {
                    tat = tat.and_then(|t| gcra(t, now, quota));
                }
                match tat {
                    Ok(t) => next_tat[i] = Some(t),
                    Err(wait) => note(wait, i, Span::Minute),
                }
            }
            if let Some(max) = w.per_hour.max() {
                let win = counter.hour.get_or_insert_with(Window::new);
                if let Err(wait) = win.check(now, n, max.get()) {
                    note(wait, i, Span::Hour);
                }
            }
            if let Some(max) = w.per_day.max() {
                let win = counter.day.get_or_insert_with(Window::new);
                if let Err(wait) = win.check(now, n, max.get()) {
                    note(wait, i, Span::Day);
                }
            }
        }
        if let Some((wait, i, span)) = worst
            && let Some(t) = &targets[i]
        {
            return Err(Refusal {
                rule: c.rule_name(t.layer, unit, span),
                key: format!("{} {}", t.dim.name(), t.key),
                retry_after: Duration::from_nanos(wait),
                unavailable: false,
            });
        }
        // Phase 2: every key passed; count in all of them.
        for (i, t) in targets.into_iter().enumerate() {
            let Some(t) = t else { continue };
            let w = windows(&t.limits, unit);
            if w.is_unlimited() {
                continue;
            }
            let table = &mut tables[t.dim.index()];
            let commit = |state: &mut KeyState| {
                let counter = state.counter(unit);
                if let Some(tat) = next_tat[i] {
                    counter.tat = tat;
                }
                let mut windows_changed = false;
                if w.per_hour.max().is_some() {
                    counter.hour.get_or_insert_with(Window::new).add(now, n);
                    windows_changed = true;
                }
                if w.per_day.max().is_some() {
                    counter.day.get_or_insert_with(Window::new).add(now, n);
                    windows_changed = true;
                }
                windows_changed
            };
            let changed = match table.get_mut(t.key.as_ref()) {
                Some(state) => commit(state),
                None => {
                    let mut state = KeyState::default();
                    let changed = commit(&mut state);
                    table.insert(Arc::from(t.key.as_ref()), state);
                    changed
                }
            };
            if changed {
                *changes += 1;
            }
        }
        Ok(())
    }

    /// Gives back `n` units counted earlier (a transaction that was not
    /// completed). Best effort: a limit changed by a reload in between
    /// gives back at the new rate.
    pub fn refund(&mut self, s: &Subject<'_>, unit: Unit, n: u32, now: u64) {
        let Engine {
            compiled,
            tables,
            changes,
        } = self;
        for t in compiled.targets(s).iter().flatten() {
            let w = windows(&t.limits, unit);
            let Some(state) = tables[t.dim.index()].get_mut(t.key.as_ref()) else {
                continue;
            };
            let counter = state.counter(unit);
            if let Some(max) = w.per_minute.max() {
                let step = nanos(minute_quota(max, None).replenish_interval());
                let back = counter
                    .tat
                    .saturating_sub(step.saturating_mul(u64::from(n)));
                counter.tat = back.max(now.min(counter.tat));
            }
            if let Some(win) = &mut counter.hour {
                win.remove(now, n);
                *changes += 1;
            }
            if let Some(win) = &mut counter.day {
                win.remove(now, n);
                *changes += 1;
            }
        }
    }

    /// Forgets keys whose counters are all back to nothing.
    pub fn prune(&mut self, now: u64) {
        for t in &mut self.tables {
            t.retain(|_, k| !(k.messages.is_idle(now) && k.recipients.is_idle(now)));
        }
    }

    pub fn len(&self) -> usize {
        self.tables.iter().map(HashMap::len).sum()
    }

    /// Every key whose hour or day counters count something now, with
    /// those counts (keys limited per minute only have none to show).
    pub fn usage(&mut self, now: u64) -> Vec<super::KeyUsage> {
        let mut out = Vec::new();
        for dim in Dim::ALL {
            for (key, k) in self.tables[dim.index()].iter_mut() {
                let hour = |w: &mut Option<Window<Hour>>| w.as_mut().map_or(0, |w| w.total(now));
                let day = |w: &mut Option<Window<Day>>| w.as_mut().map_or(0, |w| w.total(now));
                let (mh, rh) = (hour(&mut k.messages.hour), hour(&mut k.recipients.hour));
                let (md, rd) = (day(&mut k.messages.day), day(&mut k.recipients.day));
                if mh + rh + md + rd > 0 {
                    out.push(super::KeyUsage {
                        key: format!("{} {key}", dim.name()),
                        messages_hour: mh,
                        messages_day: md,
                        recipients_hour: rh,
                        recipients_day: rd,
                    });
                }
            }
        }
        out
    }

    /// Every key, for [`Engine::snapshot`] in chunks.
    pub fn keys(&self) -> Vec<(Dim, Arc<str>)> {
        let mut out = Vec::with_capacity(self.len());
        for dim in Dim::ALL {
            out.extend(
                self.tables[dim.index()]
                    .keys()
                    .map(|k| (dim, Arc::clone(k))),
            );
        }
        out
    }

    /// Copies the hour and day counters of `keys` that still count
    /// something, without allocating per key; [`Snap::record`] turns them
    /// into file records after the lock is released.
    pub fn snapshot(&mut self, keys: &[(Dim, Arc<str>)], now: u64, out: &mut Vec<Snap>) {
        for (dim, key) in keys {
            let Some(k) = self.tables[dim.index()].get_mut(key.as_ref()) else {
                continue;
            };
            let snap = Snap {
                dim: *dim,
                key: Arc::clone(key),
                messages_hour: live(&mut k.messages.hour, now),
                messages_day: live(&mut k.messages.day, now),
                recipients_hour: live(&mut k.recipients.hour, now),
                recipients_day: live(&mut k.recipients.day, now),
            };
            if snap.messages_hour.is_some()
                || snap.messages_day.is_some()
                || snap.recipients_hour.is_some()
                || snap.recipients_day.is_some()
            {
                out.push(snap);
            }
        }
    }

    /// Puts saved counters back; records of another shape are skipped.
    pub fn restore(&mut self, records: &[Record]) -> usize {
        let mut skipped = 0;
        for r in records {
            let k = self.tables[r.dim.index()]
                .entry(Arc::from(r.key.as_str()))
                .or_default();
            let ok = restore_window(&mut k.messages.hour, &r.messages_hour)
                & restore_window(&mut k.recipients.hour, &r.recipients_hour)
                & restore_window(&mut k.messages.day, &r.messages_day)
                & restore_window(&mut k.recipients.day, &r.recipients_day);
            if !ok {
                skipped += 1;
            }
        }
        skipped
    }
}
