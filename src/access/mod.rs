//! Access control: who may send, from where, and as whom.
//!
//! Built from the `[credentials.*]` tables. Answers three questions the SMTP
//! session asks: is this peer trusted by its network, is this AUTH login
//! valid, and may this credential use this envelope sender. Password checks
//! use argon2id off the async runtime; successful checks are cached so a
//! client that logs in for every message does not pay ~40 ms each time.

pub mod lockout;
mod verify;

pub use verify::{hash_secret, new_token};

use crate::config::{Config, Credential};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The compiled credential table for one configuration generation.
pub struct Access {
    by_name: HashMap<String, Arc<Credential>>,
    by_username: HashMap<String, Arc<Credential>>,
    names: HashMap<String, Arc<str>>,
    /// sha256(username NUL password NUL phc) of recent successful logins.
    /// Keyed on the PHC string too, so a changed hash invalidates entries.
    cache: Mutex<verify::Cache>,
    /// argon2id needs ~19 MiB per check; bounding concurrent checks to the
    /// CPU count keeps a burst of logins (or a password-guessing flood)
    /// from turning into gigabytes of memory.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Rate limits; owned by the daemon so counters outlive a config
    /// generation.
    quotas: Option<Arc<crate::quota::Quotas>>,
}

impl Access {
    pub fn new(config: &Config) -> Access {
        let mut by_name = HashMap::new();
        let mut by_username = HashMap::new();
        let mut names = HashMap::new();
        for (name, cred) in &config.credentials {
            let cred = Arc::new(cred.clone());
            if let Some(login) = &cred.login {
                by_username.insert(login.username.clone(), Arc::clone(&cred));
            }
            names.insert(name.clone(), Arc::from(name.as_str()));
            by_name.insert(name.clone(), cred);
        }
        Access {
            by_name,
            by_username,
            names,
            cache: Mutex::new(verify::Cache::new(4096)),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            quotas: None,
        }
    }

    /// Enforces `quotas` on MAIL FROM and RCPT TO.
    pub fn with_quotas(mut self, quotas: Arc<crate::quota::Quotas>) -> Access {
        self.quotas = Some(quotas);
        self
    }

    /// Runs one quota check and turns a refusal into the SMTP reply.
    fn admit(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
        check: impl Fn(
            &crate::quota::Quotas,
            &crate::quota::Subject<'_>,
        ) -> Result<(), crate::quota::Refusal>,
    ) -> Result<(), crate::smtp::reply::Reply> {
        let Some(quotas) = &self.quotas else {
            return Ok(());
        };
        let subject = crate::quota::Subject {
            credential,
            credential_quota: self.by_name.get(credential).and_then(|c| c.quota.as_ref()),
            sender: mail_from,
            from_domain: "",
            ip: canonical_ip(peer),
        };
        check(quotas, &subject).map_err(|refusal| {
            tracing::warn!(
                credential,
                rule = %refusal.rule,
                key = %refusal.key,
                retry_after_s = refusal.retry_secs(),
                "rate limit refusal"
            );
            crate::smtp::reply::Reply::new(451, "4.7.1", refusal.to_string())
        })
    }

    pub fn credential(&self, name: &str) -> Option<&Arc<Credential>> {
        self.by_name.get(name)
    }

    /// The credential that trusts `peer` by source network. The most
    /// specific network wins, so a /32 exception can override a /8.
    pub fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        let peer = canonical_ip(peer);
        self.by_name
            .values()
            .filter(|c| c.login.is_none())
            .filter_map(|c| {
                c.networks
                    .iter()
                    .filter(|n| n.contains(&peer))
                    .map(|n| n.prefix_len())
                    .max()
                    .map(|len| (len, c))
            })
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.name.cmp(&a.1.name)))
            .and_then(|(_, c)| self.names.get(&c.name).cloned())
    }

    /// Checks an AUTH login. Runs argon2 on the blocking pool; unknown
    /// usernames are verified against a dummy hash so timing does not reveal
    /// which usernames exist.
    pub async fn verify_login(
        self: &Arc<Self>,
        username: &str,
        password: &str,
    ) -> Option<Arc<str>> {
        let cred = self.by_username.get(username).cloned();
        let phc = cred
            .as_ref()
            .and_then(|c| c.login.as_ref())
            .map(|l| l.secret_hash.clone());
        let key = verify::cache_key(username, password, phc.as_deref().unwrap_or(""));
        if let Some(cred) = &cred
            && self.cache.lock().map(|c| c.contains(&key)).unwrap_or(false)
        {
            return self.names.get(&cred.name).cloned();
        }
        let password = password.to_string();
        let Ok(_permit) = self.hashing.acquire().await else {
            return None;
        };
        let ok = tokio::task::spawn_blocking(move || verify::check(phc.as_deref(), &password))
            .await
            .unwrap_or(false);
        let cred = cred.filter(|_| ok)?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key);
        }
        self.names.get(&cred.name).cloned()
    }

    /// Whether `credential` may use `mail_from` as envelope sender.
    pub fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        let Some(cred) = self.by_name.get(credential) else {
            return Err(format!("Credential \"{credential}\" no longer exists"));
        };
        if sender_allowed(&cred.allowed_senders, mail_from) {
            Ok(())
        } else {
            let shown = if mail_from.is_empty() {
                "<>".to_string()
            } else {
                format!("<{mail_from}>")
            };
            Err(format!(
                "Sender {shown} not allowed for credential \"{credential}\""
            ))
        }
    }

    /// The route a credential's mail takes.
    pub fn route_of(&self, credential: &str) -> String {
        self.by_name
            .get(credential)
            .map_or_else(|| "default".to_string(), |c| c.route.clone())
    }
}

/// IPv4-mapped IPv6 peers (from a dual-stack `[::]` listener) are matched
/// as IPv4 so `192.168.0.0/16` works on every listener.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Pattern match on the envelope sender: `*`, `*@domain` or an exact
/// address; case-insensitive (domains are, and local parts are in practice).
pub fn sender_allowed(patterns: &[String], mail_from: &str) -> bool {
    if mail_from.is_empty() {
        return patterns.iter().any(|p| p == "*");
    }
    let addr = mail_from.to_ascii_lowercase();
    let domain = addr.rsplit_once('@').map(|(_, d)| d);
    patterns
        .iter()
        .any(|p| p == "*" || *p == addr || p.strip_prefix("*@").is_some_and(|d| Some(d) == domain))
}

/// The SMTP session asks these questions without knowing about config.
impl crate::smtp::session::Policy for Access {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        Access::network_credential(self, peer)
    }

    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        Access::check_sender(self, credential, mail_from)
    }

    fn admit_message(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), crate::smtp::reply::Reply> {
        self.admit(credential, mail_from, peer, |q, s| q.check_message(s))
    }

    fn admit_recipient(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), crate::smtp::reply::Reply> {
        self.admit(credential, mail_from, peer, |q, s| q.check_recipient(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_patterns() {
        let p = vec![
            "billing@example.com".to_string(),
            "*@erp.example.com".to_string(),
        ];
        assert!(sender_allowed(&p, "Billing@Example.com"));
        assert!(sender_allowed(&p, "x@erp.example.com"));
        assert!(!sender_allowed(&p, "x@sub.erp.example.com"));
        assert!(!sender_allowed(&p, "x@example.com"));
        assert!(!sender_allowed(&p, ""));
        assert!(!sender_allowed(&p, "billing@example.com.evil"));
        assert!(sender_allowed(&["*".to_string()], "anyone@any.where"));
    }

    #[test]
    fn mapped_ipv4_is_canonicalised() {
        let ip: IpAddr = "::ffff:192.168.1.5".parse().unwrap();
        assert_eq!(canonical_ip(ip), "192.168.1.5".parse::<IpAddr>().unwrap());
    }
}
