//! Known clients: which client networks logged in as which username, and
//! when.
//!
//! Brute-force protection must not be a switch anyone can flip to lock out
//! the real application. A botnet spraying wrong passwords for `erp` still
//! locks the username `erp` (see `lockout`), but a network that logged in as
//! `erp` within `[abuse] known_client_ttl` (default 30 days) is still served.
//! The same record lifts the per-address connection rate for clients that
//! have proven a credential, so a batch job that opens one connection per
//! message is not taken for a flood. Only a successful login adds to it: an
//! attacker cannot make a network known without a valid secret.
//!
//! The record lives in `state_dir/known-clients.json`, so the application's
//! usual address is still known after a restart. It is written like the
//! quota state (temporary file, fsync, rename) by
//! [`crate::quota::persist_every`]: only after a change, at most every few
//! seconds, and once more at shutdown; a login that merely confirms a known
//! pair counts as a change at most once an hour.
//! Bounded: beyond [`MAX_PAIRS`] (network, username) pairs the least
//! recently seen are evicted. The object is daemon-owned and reconfigured in
//! place on reload; time comes from an injectable clock.

use super::abuse::Settings as AbuseSettings;
use crate::clock::{SharedClock, SystemClock, nanos};
use crate::quota::ClientKey;
use crate::quota::persist::{side_path, write_atomically};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The file name under `[server] state_dir`.
pub const FILE_NAME: &str = "known-clients.json";

/// (network, username) pairs kept at most. Each needs a valid login, so
/// this is reached only by a credential used from very many networks (or a
/// leaked one used by a botnet); the least recently seen go first.
pub const MAX_PAIRS: usize = 100_000;

const VERSION: u32 = 1;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// How stale a pair's last-login time may get before a login refreshes it
/// (and so marks the record for saving): an hour, or a sixteenth of the TTL
/// if that is shorter. Known-ness therefore ends within this much of
/// `known_client_ttl` after the last login.
fn refresh(ttl: u64) -> u64 {
    (ttl / 16).min(3600 * NANOS_PER_SEC)
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// Unix seconds; informational.
    saved_at: u64,
    clients: Vec<SavedClient>,
}

#[derive(Serialize, Deserialize)]
struct SavedClient {
    network: IpNet,
    /// Username → Unix seconds of its last login from this network.
    users: BTreeMap<String, u64>,
}

/// Why the saved record could not be used (postern starts with an empty
/// one: refusing to start over it would stop all mail).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not a known-clients file ({reason}); moved it to {moved} and started with no known clients"
    )]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved: PathBuf,
    },
}

struct State {
    /// `known_client_ttl` in nanoseconds.
    ttl: u64,
    ipv6_prefix: u8,
    cap: usize,
    /// Network → username → time of the last login (clock nanoseconds).
    clients: HashMap<ClientKey, HashMap<String, u64>>,
    pairs: usize,
    /// Bumped on every change worth saving.
    changes: u64,
}

impl State {
    fn live(&self, t: u64, now: u64) -> bool {
        t.saturating_add(self.ttl) > now
    }

    /// Adds a pair (or moves its time forward) without any bookkeeping of
    /// changes; for `record`, loading and regrouping.
    fn put(&mut self, client: ClientKey, username: &str, at: u64, now: u64) {
        if let Some(t) = self
            .clients
            .get_mut(&client)
            .and_then(|u| u.get_mut(username))
        {
            *t = (*t).max(at);
            return;
        }
        if self.pairs >= self.cap {
            self.make_room(now);
        }
        self.clients
            .entry(client)
            .or_default()
            .insert(username.to_string(), at);
        self.pairs += 1;
    }

    /// Drops expired pairs; returns how many.
    fn prune(&mut self, now: u64) -> usize {
        let before = self.pairs;
        let ttl = self.ttl;
        self.clients.retain(|_, users| {
            users.retain(|_, t| t.saturating_add(ttl) > now);
            !users.is_empty()
        });
        self.pairs = self.clients.values().map(HashMap::len).sum();
        before - self.pairs
    }

    /// At the cap: expired pairs go first, then the least recently seen
    /// sixteenth of the cap at once, so a stream of new pairs does not scan
    /// the whole table for each one.
    fn make_room(&mut self, now: u64) {
        self.prune(now);
        if self.pairs < self.cap {
            return;
        }
        let mut all: Vec<(u64, ClientKey, String)> = self
            .clients
            .iter()
            .flat_map(|(c, users)| users.iter().map(|(u, &t)| (t, *c, u.clone())))
            .collect();
        let evict = (self.cap / 16).clamp(1, all.len());
        all.select_nth_unstable_by_key(evict - 1, |e| e.0);
        for (_, client, user) in &all[..evict] {
            if let Some(users) = self.clients.get_mut(client) {
                users.remove(user);
                if users.is_empty() {
                    self.clients.remove(client);
                }
            }
        }
        self.pairs -= evict;
        tracing::warn!(
            evicted = evict,
            cap = self.cap,
            "known clients: record full, forgot the least recently seen"
        );
    }

    /// Groups every network again under a new `ipv6_prefix` (a coarser
    /// prefix merges networks; a finer one keeps the first sub-network of
    /// each, the only one that can be named).
    fn regroup(&mut self, ipv6_prefix: u8, now: u64) {
        self.ipv6_prefix = ipv6_prefix;
        let old = std::mem::take(&mut self.clients);
        self.pairs = 0;
        for (client, users) in old {
            let key = ClientKey::of(client.network().addr(), ipv6_prefix);
            for (user, t) in users {
                self.put(key, &user, t, now);
            }
        }
    }
}

/// The known-client record for the whole daemon.
pub struct KnownClients {
    state: Mutex<State>,
    clock: SharedClock,
    path: PathBuf,
    /// `State::changes` at the last save; also serialises writers.
    saved: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KnownClients {
    /// Loads `path` (normally `state_dir/known-clients.json`); a problem
    /// with the file is logged and the record starts empty.
    pub fn new(cfg: &AbuseSettings, path: PathBuf) -> KnownClients {
        let (k, err) = KnownClients::with_clock(cfg, path, SystemClock::shared(), MAX_PAIRS);
        if let Some(e) = err {
            tracing::warn!(error = %e, "known clients not restored");
        }
        k
    }

    /// Like [`KnownClients::new`] on a given clock and cap; returns the
    /// load problem instead of logging it.
    pub fn with_clock(
        cfg: &AbuseSettings,
        path: PathBuf,
        clock: SharedClock,
        cap: usize,
    ) -> (KnownClients, Option<LoadError>) {
        let now = clock.now();
        let mut state = State {
            ttl: nanos(cfg.known_client_ttl),
            ipv6_prefix: cfg.ipv6_prefix,
            cap: cap.max(1),
            clients: HashMap::new(),
            pairs: 0,
            changes: 0,
        };
        let err = match load(&path) {
            Ok(saved) => {
                for c in saved {
                    let key = ClientKey::of(c.network.addr(), state.ipv6_prefix);
                    for (user, secs) in c.users {
                        let at = secs.saturating_mul(NANOS_PER_SEC);
                        if state.live(at, now) {
                            state.put(key, &user, at, now);
                        } else {
                            // Rewrite the file without it at the next save.
                            state.changes = 1;
                        }
                    }
                }
                None
            }
            Err(e) => Some(e),
        };
        let known = KnownClients {
            state: Mutex::new(state),
            clock,
            path,
            saved: Mutex::new(0),
        };
        (known, err)
    }

    /// After a successful login as `username` from `client`.
    pub fn record(&self, client: ClientKey, username: &str) {
        let now = self.clock.now();
        let mut s = lock(&self.state);
        let refresh = refresh(s.ttl);
        let seen = s
            .clients
            .get(&client)
            .and_then(|u| u.get(username))
            .copied();
        match seen {
            Some(t) if now.saturating_sub(t) < refresh => {}
            _ => {
                s.put(client, username, now, now);
                s.changes += 1;
            }
        }
    }

    /// Whether `client` logged in as `username` within the TTL.
    pub fn is_known(&self, client: ClientKey, username: &str) -> bool {
        let now = self.clock.now();
        let s = lock(&self.state);
        s.clients
            .get(&client)
            .and_then(|u| u.get(username))
            .is_some_and(|&t| s.live(t, now))
    }

    /// Whether `client` logged in as anyone within the TTL.
    pub fn is_known_client(&self, client: ClientKey) -> bool {
        let now = self.clock.now();
        let s = lock(&self.state);
        s.clients
            .get(&client)
            .is_some_and(|u| u.values().any(|&t| s.live(t, now)))
    }

    /// On reload: the new TTL applies to every pair (from its last login);
    /// a new `ipv6_prefix` regroups the IPv6 networks.
    pub fn reconfigure(&self, cfg: &AbuseSettings) {
        let now = self.clock.now();
        let mut s = lock(&self.state);
        s.ttl = nanos(cfg.known_client_ttl);
        if s.ipv6_prefix != cfg.ipv6_prefix {
            s.regroup(cfg.ipv6_prefix, now);
            s.changes += 1;
        }
    }

    /// (network, username) pairs held, expired ones included until the
    /// next save.
    pub fn len(&self) -> usize {
        lock(&self.state).pairs
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn state_file(&self) -> &Path {
        &self.path
    }

    /// Drops expired pairs and, if anything changed since the last save,
    /// writes the file (blocking: call from `spawn_blocking`). Returns
    /// whether the file was written.
    pub fn persist(&self) -> io::Result<bool> {
        let mut saved = lock(&self.saved);
        let now = self.clock.now();
        let (clients, changes) = {
            let mut s = lock(&self.state);
            if s.prune(now) > 0 {
                // Forgotten pairs leave the file too: it names usernames
                // and addresses, and should not keep them past the TTL.
                s.changes += 1;
            }
            if s.changes == *saved {
                return Ok(false);
            }
            let clients: Vec<SavedClient> = s
                .clients
                .iter()
                .map(|(c, users)| SavedClient {
                    network: c.network(),
                    users: users
                        .iter()
                        .map(|(u, &t)| (u.clone(), t / NANOS_PER_SEC))
                        .collect(),
                })
                .collect();
            (clients, s.changes)
        };
        let file = StateFile {
            version: VERSION,
            saved_at: now / NANOS_PER_SEC,
            clients,
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        write_atomically(&self.path, &bytes)?;
        *saved = changes;
        Ok(true)
    }
}

impl crate::quota::Persist for KnownClients {
    fn persist(&self) -> io::Result<bool> {
        KnownClients::persist(self)
    }
    fn describe(&self) -> (&Path, &'static str) {
        (&self.path, "known clients")
    }
}

/// Reads the saved record; a missing file is an empty one.
fn load(path: &Path) -> Result<Vec<SavedClient>, LoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let reason = match serde_json::from_slice::<StateFile>(&bytes) {
        Ok(f) if f.version == VERSION => return Ok(f.clients),
        Ok(f) => format!("unknown version {}", f.version),
        Err(e) => e.to_string(),
    };
    let moved = side_path(path, ".corrupt");
    // If even the move fails, the next save overwrites the file.
    let _ = fs::rename(path, &moved);
    Err(LoadError::Corrupt {
        path: path.to_path_buf(),
        reason,
        moved,
    })
}

#[cfg(test)]
mod tests;
