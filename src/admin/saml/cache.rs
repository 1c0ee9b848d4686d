//! Two bounded memories of SAML ids: the AuthnRequests postern issued
//! (each answered at most once, within [`REQUEST_LIFETIME`]) and the
//! assertions already used (kept until they expire, so a captured
//! response cannot be posted again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An AuthnRequest not answered within this is forgotten.
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// At most this many ids of each kind are remembered; past that the
/// oldest goes (a flood of sign-in starts cannot grow memory).
pub const MAX_IDS: usize = 10_000;

#[derive(Default)]
pub struct Ids {
    map: Mutex<HashMap<String, Instant>>,
}

impl Ids {
    /// Remembers `id` until `expires`; false if it is already there (and
    /// not expired).
    pub fn insert(&self, id: &str, expires: Instant) -> bool {
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        let now = Instant::now();
        map.retain(|_, e| *e > now);
        if map.contains_key(id) {
            return false;
        }
        if map.len() >= MAX_IDS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.to_string(), expires);
        true
    }

    /// Removes `id`; true if it was there and not expired.
    pub fn take(&self, id: &str) -> bool {
        let Ok(mut map) = self.map.lock() else {
            return false;
        };
        map.remove(id).is_some_and(|e| e > Instant::now())
    }

    /// The ids not expired.
    pub fn live(&self) -> Vec<String> {
        let now = Instant::now();
        self.map
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, e)| **e > now)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
