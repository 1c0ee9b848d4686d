//! Access control: who may send, from where, and as whom.
//!
//! Built from the `[credentials.*]` tables. Answers three questions the SMTP
//! session asks: is this peer trusted by its network, is this AUTH login
//! valid, and may this credential use this envelope sender. Password checks
//! use argon2id off the async runtime; successful checks are cached so a
//! client that logs in for every message does not pay ~40 ms each time.

pub mod abuse;
mod connection_rate;
mod credential;
mod denied;
mod grant;
pub mod known;
pub mod lockout;
mod login;
pub mod suspend;
mod verify;

pub use verify::{check as check_password, hash_secret, new_token};

pub use connection_rate::{ConnectionRate, ConnectionRefusal};
pub use credential::{Credential, Login, SecretHash};
pub use denied::Denied;
pub use grant::{CredentialLimits, Grant, SizeLimit};

use crate::config::Config;
use crate::quota::ClientKey;
use crate::validate::{Address, Domain};
use known::KnownClients;
use lockout::Lockout;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use suspend::Suspensions;

/// The compiled credential table for one configuration generation.
pub struct Access {
    by_name: HashMap<String, Arc<Credential>>,
    by_username: HashMap<String, Arc<Credential>>,
    names: HashMap<String, Arc<str>>,
    /// sha256(username NUL password NUL phc) of recent successful logins.
    /// Keyed on the PHC string too, so a changed hash invalidates entries.
    cache: Mutex<verify::Cache>,
    /// argon2 checks in progress, shared by sessions presenting the same
    /// username and password at once.
    in_flight: verify::InFlight,
    /// argon2id needs ~19 MiB per check; bounding concurrent checks to the
    /// CPU count keeps a burst of logins (or a password-guessing flood)
    /// from turning into gigabytes of memory.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Rate limits; owned by the daemon so counters outlive a config
    /// generation.
    quotas: Option<Arc<crate::quota::Quotas>>,
    /// Failed-AUTH lockouts; daemon-owned like the quotas.
    lockout: Option<Arc<Lockout>>,
    /// Networks that logged in recently; daemon-owned and persisted.
    known: Option<Arc<KnownClients>>,
    /// Suspended credentials; daemon-owned and persisted.
    suspensions: Option<Arc<Suspensions>>,
    /// `[abuse] ipv6_prefix`: how client addresses are grouped.
    ipv6_prefix: u8,
    /// The most secrets any credential lists: every failed login costs
    /// this many argon2 verifications, so the cost does not tell unknown
    /// usernames (or how many secrets a credential has) apart.
    max_secrets: usize,
    /// argon2 verifications run so far (tests compare them).
    verifications: AtomicU64,
    /// Route name → the largest message all its upstreams accept.
    route_limits: BTreeMap<String, u64>,
    /// `[cluster]`: lockouts and known clients shared through Redis (the
    /// local ones above are kept as well, for when Redis is down).
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// `[abuse]`, for the shared lockout.
    abuse: abuse::Settings,
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
        let max_secrets = by_name
            .values()
            .filter_map(|c| c.login.as_ref())
            .map(|l| l.secrets.len())
            .max()
            .unwrap_or(0)
            .max(1);
        Access {
            by_name,
            by_username,
            names,
            cache: Mutex::new(verify::Cache::new(4096)),
            in_flight: verify::InFlight::default(),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            quotas: None,
            lockout: None,
            known: None,
            suspensions: None,
            ipv6_prefix: config.abuse.ipv6_prefix,
            max_secrets,
            verifications: AtomicU64::new(0),
            route_limits: BTreeMap::new(),
            cluster: None,
            abuse: config.abuse.clone(),
        }
    }

    /// Shares lockouts and known clients through Redis (`[cluster]`).
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Access {
        self.cluster = cluster;
        self
    }

    /// Enforces failed-AUTH lockouts (`[abuse]`).
    pub fn with_lockout(mut self, lockout: Arc<Lockout>) -> Access {
        self.lockout = Some(lockout);
        self
    }

    /// Records successful logins in `known`, and lets known networks
    /// through a username lockout and past the connection rate.
    pub fn with_known_clients(mut self, known: Arc<KnownClients>) -> Access {
        self.known = Some(known);
        self
    }

    /// Refuses suspended credentials (`postern credential suspend`).
    pub fn with_suspensions(mut self, suspensions: Arc<Suspensions>) -> Access {
        self.suspensions = Some(suspensions);
        self
    }

    /// At each MAIL, whether the session's credential (by AUTH or by
    /// `networks`) is suspended; also checked at AUTH.
    pub fn check_suspended(&self, credential: &str) -> Result<(), Denied> {
        match self.suspensions.as_ref().and_then(|s| s.check(credential)) {
            None => Ok(()),
            Some(s) => {
                tracing::warn!(credential, since = s.since, until = ?s.until, "refused: credential is suspended");
                Err(Denied::Suspended {
                    credential: credential.to_string(),
                })
            }
        }
    }

    /// The client network `peer` is counted as by every per-client limit.
    pub fn client_key(&self, peer: IpAddr) -> ClientKey {
        ClientKey::of(peer, self.ipv6_prefix)
    }

    /// Whether `peer` skips `[abuse] connections_per_ip_per_minute`: a
    /// `networks` credential trusts it, or its network logged in within
    /// `known_client_ttl`. Such clients are bounded by
    /// `max_connections_per_ip` only.
    pub fn trusted_or_known(&self, peer: IpAddr) -> bool {
        self.network_credential(peer).is_some()
            || self
                .known
                .as_ref()
                .is_some_and(|k| k.is_known_client(self.client_key(peer)))
    }

    /// Size limits of the routes' upstreams (see `Router::size_limits`),
    /// announced in EHLO and enforced at MAIL and DATA.
    pub fn with_route_limits(mut self, limits: BTreeMap<String, u64>) -> Access {
        self.route_limits = limits;
        self
    }

    /// Enforces `quotas` on MAIL FROM and RCPT TO.
    pub fn with_quotas(mut self, quotas: Arc<crate::quota::Quotas>) -> Access {
        self.quotas = Some(quotas);
        self
    }

    /// Quotas for one more message, checked at MAIL FROM.
    pub fn admit_message(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), Denied> {
        self.admit(credential, mail_from, peer, |q, s| q.check_message(s))
    }

    /// Quotas for one more recipient, counted as it is accepted.
    pub fn admit_recipient(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), Denied> {
        self.admit(credential, mail_from, peer, |q, s| q.check_recipient(s))
    }

    /// Whether the quotas are counted in Redis (`[cluster]`): sessions then
    /// check them through [`Access::admit_shared`].
    pub fn shared_quotas(&self) -> bool {
        self.quotas.as_ref().is_some_and(|q| q.is_shared())
    }

    /// The quotas for one more message (or recipient, `recipient`),
    /// counted in Redis without blocking the connection's thread.
    pub async fn admit_shared(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
        recipient: bool,
    ) -> Result<(), Denied> {
        let Some(quotas) = &self.quotas else {
            return Ok(());
        };
        let subject = self.subject(credential, mail_from, peer);
        quotas
            .check_shared_async(&subject, recipient)
            .await
            .map_err(|refusal| self.refused(credential, refusal))
    }

    /// Gives back what a transaction that queued nothing was counted for.
    pub fn release(&self, credential: &str, mail_from: &str, peer: IpAddr, recipients: u32) {
        if let Some(quotas) = &self.quotas {
            quotas.refund(&self.subject(credential, mail_from, peer), 1, recipients);
        }
    }

    /// Runs one quota check; a refusal is logged and returned.
    fn admit(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
        check: impl Fn(
            &crate::quota::Quotas,
            &crate::quota::Subject<'_>,
        ) -> Result<(), crate::quota::Refusal>,
    ) -> Result<(), Denied> {
        let Some(quotas) = &self.quotas else {
            return Ok(());
        };
        check(quotas, &self.subject(credential, mail_from, peer))
            .map_err(|refusal| self.refused(credential, refusal))
    }

    /// A quota refusal, logged and counted.
    fn refused(&self, credential: &str, refusal: crate::quota::Refusal) -> Denied {
        tracing::warn!(
            credential,
            rule = %refusal.rule,
            key = %refusal.key,
            retry_after_s = refusal.retry_secs(),
            "rate limit refusal"
        );
        crate::observe::metrics::quota_refused(&refusal.rule);
        Denied::RateLimited(refusal)
    }

    /// Who a quota check is about.
    fn subject<'a>(
        &'a self,
        credential: &'a str,
        mail_from: &'a str,
        peer: IpAddr,
    ) -> crate::quota::Subject<'a> {
        crate::quota::Subject {
            credential,
            credential_quota: self.by_name.get(credential).and_then(|c| c.quota.as_ref()),
            sender: mail_from,
            from_domain: "",
            client: self.client_key(peer),
        }
    }

    /// Every configured credential name, sorted.
    pub fn credential_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn credential(&self, name: &str) -> Option<&Arc<Credential>> {
        self.by_name.get(name)
    }

    /// The credential that trusts `peer` by source network. The most
    /// specific network wins, so a /32 exception can override a /8.
    pub fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        let peer = canonical_ip(peer);
        let now = SystemTime::now();
        self.by_name
            .values()
            .filter(|c| c.login.is_none() && c.is_active(now))
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

    /// The credential's recipient and size limits; the size limit is the
    /// smaller of its own `max_message_size` and its route's.
    pub fn limits(&self, credential: &str) -> CredentialLimits {
        let Some(cred) = self.by_name.get(credential) else {
            return CredentialLimits::default();
        };
        let own = cred
            .max_message_size
            .map(|b| (b, format!("credential \"{credential}\"")));
        let route = self.route_limits.get(&cred.route).map(|&b| {
            (
                b.saturating_sub(ROUTE_HEADROOM),
                format!("route \"{}\"", cred.route),
            )
        });
        let size = match (own, route) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        CredentialLimits {
            max_recipients: cred.max_recipients,
            max_message_size: size.map(|(bytes, by)| SizeLimit {
                bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                by,
            }),
        }
    }

    /// `allowed_recipient_domains` / `denied_recipient_domains`; denied
    /// wins, an empty allow-list allows every domain, address literals
    /// match no pattern.
    pub fn check_recipient(&self, credential: &str, rcpt: &Address) -> Result<(), Denied> {
        let Some(cred) = self.by_name.get(credential) else {
            return Ok(());
        };
        let name = match rcpt.domain() {
            Domain::Name(n) => Some(n.as_str()),
            Domain::Literal(_) => None,
        };
        let hit = |list: &[crate::validate::DomainPattern]| {
            name.is_some_and(|n| list.iter().any(|p| p.matches(n)))
        };
        let rule = if hit(&cred.denied_recipient_domains) {
            "denied_recipient_domains"
        } else if !cred.allowed_recipient_domains.is_empty()
            && !hit(&cred.allowed_recipient_domains)
        {
            "allowed_recipient_domains"
        } else {
            return Ok(());
        };
        tracing::info!(credential, recipient = %rcpt, rule, "recipient refused by credential scope");
        Err(Denied::Recipient {
            recipient: rcpt.to_string(),
            credential: credential.to_string(),
            rule,
        })
    }

    /// The route a credential's mail takes.
    pub fn route_of(&self, credential: &str) -> String {
        self.by_name
            .get(credential)
            .map_or_else(|| "default".to_string(), |c| c.route.clone())
    }
}

/// Room left under a route's upstream limit for what postern adds to a
/// message after DATA (Received, DKIM-Signature, Message-ID, Date).
const ROUTE_HEADROOM: u64 = 16 * 1024;

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

#[cfg(test)]
mod tests;
