//! Secret hashing and verification (argon2id), login cache, token minting.
//!
//! Kept apart from the policy code because it is the only place that sees
//! plaintext secrets; nothing here logs or formats them.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// A valid argon2id hash of a random string, verified against when the
/// username is unknown so both paths cost the same.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4Ev0PV6eZ3+vPhXGsyC5XFYIU0Cdh8I3c7B6fpEZg5Q";

/// Hashes a secret as an argon2id PHC string with the crate's defaults
/// (OWASP-recommended m=19456 KiB, t=2, p=1).
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "system random generator failed".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A fresh 256-bit token, URL-safe, with a recognisable prefix so secret
/// scanners and humans can tell what leaked.
pub fn new_token() -> Result<String, String> {
    let mut raw = [0u8; 32];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| "system random generator failed".to_string())?;
    Ok(format!(
        "pst_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// Verifies `password` against `phc` (or the dummy hash when `None`,
/// returning false). The comparison inside argon2 is constant-time.
pub fn check(phc: Option<&str>, password: &str) -> bool {
    let (text, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY_PHC, false),
    };
    let Ok(hash) = PasswordHash::new(text) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok();
    ok && real
}

pub fn cache_key(username: &str, password: &str, phc: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [username, password, phc] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Checks in progress, by sha256(username NUL password NUL NUL): each
/// entry is the one result every session presenting that pair awaits.
pub type InFlight = Mutex<HashMap<[u8; 32], Arc<OnceCell<Option<String>>>>>;

/// One session's share of a check in progress (see `InFlight`). The last
/// share dropped removes the entry, finished or not, so abandoned checks
/// cannot pile up in the map.
pub struct Flight<'a> {
    map: &'a InFlight,
    key: [u8; 32],
    cell: Option<Arc<OnceCell<Option<String>>>>,
}

impl<'a> Flight<'a> {
    pub fn join(map: &'a InFlight, username: &str, password: &str) -> Flight<'a> {
        let key = cache_key(username, password, "");
        let cell = Arc::clone(lock(map).entry(key).or_default());
        Flight {
            map,
            key,
            cell: Some(cell),
        }
    }

    /// The shared result; `None` only inside `drop`.
    pub fn result(&self) -> Option<&OnceCell<Option<String>>> {
        self.cell.as_deref()
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        // Every clone and drop of an entry's Arc happens under the lock,
        // so the count read here is exact.
        let mut map = lock(self.map);
        drop(self.cell.take());
        if map
            .get(&self.key)
            .is_some_and(|c| Arc::strong_count(c) == 1)
        {
            map.remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bounded set of recent successful login digests (FIFO eviction).
pub struct Cache {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    cap: usize,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.set.contains(key)
    }

    pub fn insert(&mut self, key: [u8; 32]) {
        if self.set.insert(key) {
            self.order.push_back(key);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
