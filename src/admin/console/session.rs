//! Console sessions: a random id in the `__Host-postern_session` cookie,
//! the state on the server. A session ends after `idle_timeout` without
//! use, `absolute_timeout` after sign-in, or at sign-out. Each carries
//! its own CSRF token, which every form sends back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::admin::settings::Role;

/// The cookie's name; `__Host-` makes browsers insist on Secure, Path=/
/// and no Domain.
pub const COOKIE: &str = "__Host-postern_session";
/// Sessions at once; past that the least recently used one ends.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub name_id: String,
    pub role: Role,
    /// How the person signed in: "saml", "local" (break-glass), "demo".
    pub via: &'static str,
    pub csrf: String,
    created: Instant,
    used: Instant,
}

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    absolute: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            absolute,
        }
    }

    /// Starts a session; returns its id (the cookie value).
    pub fn start(&self, name_id: &str, role: Role, via: &'static str) -> String {
        let id = super::random_token();
        let now = Instant::now();
        let s = Session {
            name_id: name_id.to_string(),
            role,
            via,
            csrf: super::random_token(),
            created: now,
            used: now,
        };
        if let Ok(mut map) = self.map.lock() {
            self.expire(&mut map, now);
            if map.len() >= MAX_SESSIONS
                && let Some(k) = map
                    .iter()
                    .min_by_key(|(_, s)| s.used)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
            map.insert(id.clone(), s);
        }
        id
    }

    fn expire(&self, map: &mut HashMap<String, Session>, now: Instant) {
        map.retain(|_, s| {
            now.duration_since(s.used) < self.idle && now.duration_since(s.created) < self.absolute
        });
    }

    /// The live session the request's cookie names, marked used.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers)?;
        let now = Instant::now();
        let mut map = self.map.lock().ok()?;
        self.expire(&mut map, now);
        let s = map.get_mut(&id)?;
        s.used = now;
        Some((id, s.clone()))
    }

    pub fn end(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn set_cookie(&self, id: &str) -> String {
        format!(
            "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
            self.absolute.as_secs()
        )
    }
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    token_cookie(headers, COOKIE)
}

/// The value of cookie `name` if it has the shape of a [`super::random_token`].
pub fn token_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Compares CSRF tokens by digest, in the same time wherever they differ.
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    tokens_match(&session.csrf, presented)
}

/// `presented` is `expected`, compared by digest (same time wherever they differ).
pub fn tokens_match(expected: &str, presented: Option<&str>) -> bool {
    let Some(p) = presented else { return false };
    let d = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d(p).as_ref() == d(expected).as_ref()
}

#[cfg(test)]
mod tests;
