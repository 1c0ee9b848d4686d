//! Rate limits (quotas) per credential, sender, domain and client IP.
//!
//! A compromised or runaway application must not be able to send without
//! bound, so every message (at MAIL FROM) and every recipient (at RCPT TO) is
//! counted against the limits that apply to its credential, its envelope
//! sender (or the shared pool of a `[[quota.rules]]` entry), its sender
//! domain and its client IP, per minute, hour and day. A check is
//! all-or-nothing: a refusal by one key counts against none of the others.
//!
//! Minute limits (with burst) use governor's GCRA; hour and day limits are
//! rolling bucket counters that are written to `state_dir` so they survive a
//! restart (see `engine` and `window` for why). The [`Quotas`] object is kept
//! by the daemon across reloads; [`Quotas::reconfigure`] swaps the limits and
//! keeps every counter.
//!
//! Also here: the per-IP new-connection limiter ([`ConnectionRate`]) and
//! outbound pacing per upstream ([`Pacer`]).

mod engine;
pub mod pacer;
pub(crate) mod persist;
mod settings;
mod window;

use crate::clock::{SharedClock, SystemClock};
pub use pacer::{Pacer, PacerPermit, Rate};
pub use persist::{LoadError, STATE_FILE_NAME};
pub use settings::{Limits, Rule, Setting, Settings, Windows};

use crate::cluster::quota::Op;
use engine::{Engine, Unit};
use ipnet::IpNet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often [`persist_every`] saves state (hour and day counters, known
/// clients) at most.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(5);

/// Keys copied per lock hold while saving.
const SNAPSHOT_CHUNK: usize = 1024;

/// Who is sending: everything a limit can be keyed on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Credential name; empty to skip credential limits.
    pub credential: &'a str,
    /// The credential's `quota = { ... }` override, if it has one.
    pub credential_quota: Option<&'a Limits>,
    /// Envelope sender; empty (null sender) skips sender limits.
    pub sender: &'a str,
    /// From-header domain once known; empty means the sender's domain.
    pub from_domain: &'a str,
    /// The client's network, for `[quota.ip]`.
    pub client: ClientKey,
}

/// A limit was reached. Display gives the SMTP reply text for
/// `451 4.7.1`: `Rate limit "quota.sender.per_hour" exceeded for sender
/// a@example.com; retry in 42 s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The configuration key that set the limit, e.g.
    /// `credentials.erp.quota.per_day` or `quota.rules.newsletters.per_hour`.
    pub rule: String,
    /// What was counted: `credential erp`, `sender a@example.com`,
    /// `domain example.com`, `ip 192.0.2.1`, `rule newsletters`.
    pub key: String,
    pub retry_after: Duration,
    /// Not a limit reached: `[cluster] on_redis_down = "tempfail"` while
    /// Redis is down (`451 4.3.0`).
    pub unavailable: bool,
}

impl Refusal {
    /// The refusal while shared limits cannot be checked.
    pub fn unavailable() -> Refusal {
        Refusal {
            rule: "cluster.on_redis_down".to_string(),
            key: "shared limits".to_string(),
            retry_after: Duration::from_secs(60),
            unavailable: true,
        }
    }

    /// Whole seconds to wait, rounded up, at least 1.
    pub fn retry_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unavailable {
            return f.write_str("Rate limits cannot be checked right now; try again later");
        }
        write!(
            f,
            "Rate limit \"{}\" exceeded for {}; retry in {} s",
            self.rule,
            self.key,
            self.retry_secs()
        )
    }
}

impl std::error::Error for Refusal {}

/// The unit a client address is counted as, everywhere postern counts
/// clients (connection limits, connection rate, AUTH lockout, quotas by IP,
/// known clients): the address itself for IPv4 (and IPv4-mapped IPv6), the
/// network of `[abuse] ipv6_prefix` bits (default /64) for IPv6, since one
/// IPv6 host usually owns a whole /64 and could otherwise rotate addresses
/// to escape every limit. The prefix is passed in by whoever holds the
/// configuration, so every counter groups the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpNet);

/// `[abuse] ipv6_prefix` when not configured.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

impl ClientKey {
    /// The network `ip` belongs to when IPv6 clients are grouped by
    /// `ipv6_prefix` bits (clamped to 0..=128).
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> ClientKey {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let prefix = if ip.is_ipv4() {
            32
        } else {
            ipv6_prefix.min(128)
        };
        // Both prefixes are valid for their address family.
        let net = IpNet::new(ip, prefix).map_or(IpNet::from(ip), |n| n.trunc());
        ClientKey(net)
    }

    /// The network this key stands for (a /32 for an IPv4 client).
    pub fn network(&self) -> IpNet {
        self.0
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// One quota key's counts, as `postern status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyUsage {
    /// What the key is: `credential erp`, `sender a@example.com`,
    /// `domain example.com`, `ip 192.0.2.1`, `rule NAME`.
    pub key: String,
    pub messages_hour: u64,
    pub messages_day: u64,
    pub recipients_hour: u64,
    pub recipients_day: u64,
}

/// All quota state; shared as `Arc<Quotas>` by every session, kept across
/// reloads.
pub struct Quotas {
    engine: Mutex<Engine>,
    /// False when no `[quota]` limit exists at all, so unlimited setups skip
    /// the lock (a credential override still counts).
    any_limit: AtomicBool,
    clock: SharedClock,
    path: PathBuf,
    /// `Engine::changes` at the last save; also serialises writers.
    saved: Mutex<u64>,
    /// `[cluster]`: counters in Redis; the local engine then only counts
    /// while Redis is down, at each node's share of every limit.
    cluster: Option<Shared>,
}

/// The shared counters and the local stand-in for when Redis is down.
struct Shared {
    cluster: Arc<crate::cluster::Cluster>,
    /// Each limit at max(1, ceil(limit / expected_nodes)).
    fallback: Mutex<Engine>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave counters inconsistent in
    // a way that matters more than stopping all mail would.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn has_limits(cfg: &Settings) -> bool {
    let set = |l: &Limits| l != &Limits::default();
    set(&cfg.credential)
        || set(&cfg.sender)
        || set(&cfg.domain)
        || set(&cfg.ip)
        || cfg.rules.iter().any(|r| set(&r.limits))
}

impl Quotas {
    /// Loads saved hour/day counters from `state_file` (normally
    /// `state_dir/quota-state.json`); a problem with the file is logged and
    /// counting starts empty.
    pub fn new(cfg: &Settings, state_file: PathBuf) -> Quotas {
        let (q, err) = Quotas::with_clock(cfg, state_file, SystemClock::shared());
        if let Some(e) = err {
            tracing::warn!(error = %e, "quota state not restored");
        }
        q
    }

    /// Like [`Quotas::new`] on a given clock; returns the load problem
    /// instead of logging it.
    pub fn with_clock(
        cfg: &Settings,
        state_file: PathBuf,
        clock: SharedClock,
    ) -> (Quotas, Option<LoadError>) {
        let mut engine = Engine::new(cfg);
        let err = match persist::load(&state_file) {
            Ok(records) => {
                let skipped = engine.restore(&records);
                if skipped > 0 {
                    tracing::warn!(skipped, "quota state: ignored counters of an unknown shape");
                }
                None
            }
            Err(e) => Some(e),
        };
        let saved = engine.changes;
        let q = Quotas {
            engine: Mutex::new(engine),
            any_limit: AtomicBool::new(has_limits(cfg)),
            clock,
            path: state_file,
            saved: Mutex::new(saved),
            cluster: None,
        };
        (q, err)
    }

    /// Counts in Redis through `cluster` from now on (`[cluster]`).
    pub fn with_cluster(mut self, cluster: Arc<crate::cluster::Cluster>, cfg: &Settings) -> Quotas {
        let nodes = cluster.settings().expected_nodes;
        self.cluster = Some(Shared {
            fallback: Mutex::new(Engine::new(&engine::share_settings(cfg, nodes))),
            cluster,
        });
        self
    }

    /// The shared check; None when Redis did not decide (down).
    fn check_shared(
        &self,
        shared: &Shared,
        s: &Subject<'_>,
        unit: Unit,
    ) -> Option<Result<(), Refusal>> {
        let Some(cmd) = self.command(shared, s, unit, Op::Check, 1) else {
            return Some(Ok(()));
        };
        match crate::cluster::quota::check(&shared.cluster, cmd)? {
            Ok(()) => Some(Ok(())),
            Err(over) => Some(Err(lock(&self.engine).compiled.refusal(s, unit, over))),
        }
    }

    /// The Redis command for `op` over the keys `s` counts against for
    /// `unit`, encoded while the engine's plan is at hand; None when none
    /// of them is limited.
    fn command(
        &self,
        shared: &Shared,
        s: &Subject<'_>,
        unit: Unit,
        op: Op,
        n: u32,
    ) -> Option<crate::cluster::quota::Command> {
        let engine = lock(&self.engine);
        let plan = engine.compiled.plan(s, unit);
        crate::cluster::quota::command(&shared.cluster, op, &plan, unit_name(unit), n)
    }

    /// Whether the counters are in Redis (`[cluster]`).
    pub fn is_shared(&self) -> bool {
        self.cluster.is_some()
    }

    /// [`Quotas::check_message`] (or `check_recipient`) against the shared
    /// counters, awaiting Redis instead of blocking the thread; the local
    /// share when Redis is down.
    pub async fn check_shared_async(
        &self,
        s: &Subject<'_>,
        recipient: bool,
    ) -> Result<(), Refusal> {
        let unit = if recipient {
            Unit::Recipients
        } else {
            Unit::Messages
        };
        let Some(shared) = &self.cluster else {
            return self.check(s, unit);
        };
        if s.credential_quota.is_none() && !self.any_limit.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(cmd) = self.command(shared, s, unit, Op::Check, 1) else {
            return Ok(());
        };
        let result = match crate::cluster::quota::check_async(&shared.cluster, cmd).await {
            Some(Ok(())) => Ok(()),
            Some(Err(over)) => Err(lock(&self.engine).compiled.refusal(s, unit, over)),
            None => self.check_fallback(shared, s, unit, self.clock.now()),
        };
        if let Err(r) = &result {
            tracing::info!(rule = %r.rule, key = %r.key, retry_after_s = r.retry_secs(), "rate limit refused");
        }
        result
    }

    /// The check on this node alone while Redis is down.
    fn check_fallback(
        &self,
        shared: &Shared,
        s: &Subject<'_>,
        unit: Unit,
        now: u64,
    ) -> Result<(), Refusal> {
        crate::observe::metrics::cluster_fallback("quota");
        if shared.cluster.refusing() {
            return Err(Refusal::unavailable());
        }
        let nodes = shared.cluster.settings().expected_nodes;
        let own = s.credential_quota.map(|l| engine::share_limits(l, nodes));
        let local = Subject {
            credential_quota: own.as_ref(),
            ..*s
        };
        lock(&shared.fallback).check(&local, unit, 1, now)
    }

    fn check(&self, s: &Subject<'_>, unit: Unit) -> Result<(), Refusal> {
        if s.credential_quota.is_none() && !self.any_limit.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = self.clock.now();
        let result = match &self.cluster {
            Some(shared) => match self.check_shared(shared, s, unit) {
                Some(r) => r,
                None => self.check_fallback(shared, s, unit, now),
            },
            None => lock(&self.engine).check(s, unit, 1, now),
        };
        if let Err(r) = &result {
            tracing::info!(rule = %r.rule, key = %r.key, retry_after_s = r.retry_secs(), "rate limit refused");
        }
        result
    }

    /// At MAIL FROM: counts one message against every applicable message
    /// limit, or refuses without counting anything.
    pub fn check_message(&self, s: &Subject<'_>) -> Result<(), Refusal> {
        self.check(s, Unit::Messages)
    }

    /// At each RCPT TO: counts one recipient, all-or-nothing likewise.
    pub fn check_recipient(&self, s: &Subject<'_>) -> Result<(), Refusal> {
        self.check(s, Unit::Recipients)
    }

    /// Gives back what a transaction counted when it ends without the
    /// message being queued (RSET, QUIT, DATA refused), so only mail that
    /// was accepted uses up the quota.
    pub fn refund(&self, s: &Subject<'_>, messages: u32, recipients: u32) {
        if messages == 0 && recipients == 0
            || s.credential_quota.is_none() && !self.any_limit.load(Ordering::Relaxed)
        {
            return;
        }
        let now = self.clock.now();
        if let Some(shared) = &self.cluster {
            // Where it was counted is not remembered: back to Redis while
            // it answers, else to the local stand-in.
            if shared.cluster.is_down() {
                let mut e = lock(&shared.fallback);
                let nodes = shared.cluster.settings().expected_nodes;
                let own = s.credential_quota.map(|l| engine::share_limits(l, nodes));
                let local = Subject {
                    credential_quota: own.as_ref(),
                    ..*s
                };
                e.refund(&local, Unit::Messages, messages, now);
                e.refund(&local, Unit::Recipients, recipients, now);
                return;
            }
            for (unit, n) in [(Unit::Messages, messages), (Unit::Recipients, recipients)] {
                if n > 0
                    && let Some(cmd) = self.command(shared, s, unit, Op::Refund, n)
                {
                    crate::cluster::quota::refund(&shared.cluster, cmd);
                }
            }
            return;
        }
        let mut e = lock(&self.engine);
        if messages > 0 {
            e.refund(s, Unit::Messages, messages, now);
        }
        if recipients > 0 {
            e.refund(s, Unit::Recipients, recipients, now);
        }
    }

    /// On reload: new limits, same counters.
    pub fn reconfigure(&self, cfg: &Settings) {
        let compiled = engine::Compiled::new(cfg);
        lock(&self.engine).compiled = compiled;
        if let Some(shared) = &self.cluster {
            let nodes = shared.cluster.settings().expected_nodes;
            lock(&shared.fallback).compiled =
                engine::Compiled::new(&engine::share_settings(cfg, nodes));
        }
        self.any_limit.store(has_limits(cfg), Ordering::Relaxed);
    }

    /// The `n` keys that counted the most messages in the last hour (then
    /// day), for `postern status`. Only hour and day counters are kept per
    /// key, so keys limited per minute alone do not appear.
    pub fn busiest(&self, n: usize) -> Vec<KeyUsage> {
        let now = self.clock.now();
        let mut all = lock(&self.engine).usage(now);
        all.sort_by(|a, b| {
            (b.messages_hour, b.messages_day, b.recipients_day)
                .cmp(&(a.messages_hour, a.messages_day, a.recipients_day))
                .then_with(|| a.key.cmp(&b.key))
        });
        all.truncate(n);
        all
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        lock(&self.engine).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn state_file(&self) -> &Path {
        &self.path
    }

    /// Drops idle keys and, if any hour or day counter changed since the
    /// last save, writes them (blocking: call from `spawn_blocking`).
    /// Returns whether the file was written.
    pub fn persist(&self) -> io::Result<bool> {
        let mut saved = lock(&self.saved);
        let now = self.clock.now();
        let (keys, changes) = {
            let mut e = lock(&self.engine);
            e.prune(now);
            if e.changes == *saved {
                return Ok(false);
            }
            (e.keys(), e.changes)
        };
        // Copy in chunks so a session never waits for the whole table: each
        // key's counters are consistent on their own, and a change made
        // between chunks is saved next time (`changes` was read first).
        let mut snaps = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SNAPSHOT_CHUNK) {
            lock(&self.engine).snapshot(chunk, now, &mut snaps);
            // std's mutex is not fair: without a pause this loop would take
            // the lock straight back from a session that is waiting for it.
            std::thread::yield_now();
        }
        let records = snaps.iter().map(persist::Snap::record).collect();
        persist::save(&self.path, records, now / 1_000_000_000)?;
        *saved = changes;
        Ok(true)
    }
}

fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Messages => "m",
        Unit::Recipients => "r",
    }
}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quotas").field("path", &self.path).finish()
    }
}

/// State that a background task saves to a file in `state_dir`: the quota
/// counters and the known-client record.
pub trait Persist: Send + Sync + 'static {
    /// Saves if anything changed since the last save (blocking: called on
    /// the blocking pool). Returns whether the file was written.
    fn persist(&self) -> io::Result<bool>;
    /// The file, and what it holds, for log lines.
    fn describe(&self) -> (&Path, &'static str);
}

impl Persist for Quotas {
    fn persist(&self) -> io::Result<bool> {
        Quotas::persist(self)
    }
    fn describe(&self) -> (&Path, &'static str) {
        (&self.path, "quota state")
    }
}

/// Saves `state` every `every` until `shutdown` completes, then once more.
/// Spawn it once: `tokio::spawn(persist_every(q, PERSIST_INTERVAL, stop))`.
pub async fn persist_every<P: Persist>(
    state: Arc<P>,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            _ = &mut shutdown => true,
        };
        let s = Arc::clone(&state);
        let (path, what) = state.describe();
        match tokio::task::spawn_blocking(move || s.persist()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot save {what}"
            ),
            Err(e) => tracing::warn!(error = %e, "{what} save task failed"),
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
