//! Envelope address validation: what MAIL FROM and RCPT TO may say.
//!
//! Three layers, cheapest first, so that a client learns about a typo
//! without postern touching the network:
//! - [`address`]: RFC 5321 syntax, length limits, IDNA (pure);
//! - [`Rules`]: `[validation]` allowed / denied recipient domains (pure,
//!   evaluated inside the sans-IO session);
//! - [`Validator::check_recipient`]: the recipient domain's MX or A/AAAA
//!   records ([`dns`]) and the optional HTTPS verification [`hook`] (async,
//!   carried out by the connection handler when the session asks with
//!   `Step::CheckRecipient`).
//!
//! Errors are typed here and turned into SMTP replies once, in the session.

pub mod address;
pub mod dns;
pub mod domains;
pub mod hook;
mod settings;

use std::sync::Arc;

pub use address::{Address, AddressError, Domain, Path, parse_path};
pub use domains::DomainPattern;

pub use settings::{
    DEFAULT_DNS_TIMEOUT, DEFAULT_HOOK_TIMEOUT, HookSettings, OnError, Settings, parse_resolver,
};

/// A recipient refused by domain policy (`550 5.7.1`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("recipient domain {domain} is not in allowed_recipient_domains")]
    NotAllowed { domain: String },
    #[error("recipient domain {domain} is denied by policy")]
    Denied { domain: String },
}

/// A quoted local part with characters that could split an address list
/// (`553 5.1.3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quoted local parts may not contain spaces or any of , @ < > ; : \\")]
pub struct QuotedLocalPart;

/// RFC 5321 qtextSMTP (printable ASCII but `"` and `\`) without the
/// characters address lists and routing syntax give meaning to. The
/// closing quote is part of the stored local part, so `"` passes here.
fn is_plain_qtext(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '\\' | ',' | '@' | '<' | '>' | ';' | ':')
}

/// Why an asynchronous recipient check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// NXDOMAIN.
    #[error("domain {domain} does not exist")]
    NoSuchDomain { domain: String },
    /// The name exists but has neither MX nor A/AAAA records.
    #[error("domain {domain} has no MX or A/AAAA records")]
    NoMailHost { domain: String },
    /// RFC 7505 null MX: the domain says it accepts no mail.
    #[error("domain {domain} does not accept mail (null MX)")]
    NullMx { domain: String },
    /// Timeout, SERVFAIL, no resolver reachable: nothing known.
    #[error("cannot look up domain {domain}: {reason}")]
    DnsUnavailable { domain: String, reason: String },
    /// The verification hook said the address is invalid.
    #[error("{reason}")]
    Invalid { reason: String },
    /// The hook failed and `on_error = "tempfail"`.
    #[error("recipient verification is unavailable: {reason}")]
    HookUnavailable { reason: String },
}

/// The pure part of `[validation]`, evaluated inside the session.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    allowed: Vec<DomainPattern>,
    denied: Vec<DomainPattern>,
    /// A DNS check or hook is configured: recipients need
    /// [`Validator::check_recipient`] before they are accepted.
    pub needs_check: bool,
    /// `[validation] allow_quoted_local_parts`.
    allow_quoted_local_parts: bool,
}

impl Rules {
    pub fn new(cfg: &Settings) -> Rules {
        Rules {
            allowed: cfg.allowed_recipient_domains.clone(),
            denied: cfg.denied_recipient_domains.clone(),
            needs_check: cfg.check_recipient_domain || cfg.hook.is_some(),
            allow_quoted_local_parts: cfg.allow_quoted_local_parts,
        }
    }

    /// A recipient's quoted local part may only hold characters that no
    /// address-list parser splits on: `"x, evil@attacker.example, y"@ok.example`
    /// passes a domain scope as one address and reaches a receiver that
    /// splits on commas as three. Refused unless the operator allows it.
    pub fn check_local_part(&self, address: &Address) -> Result<(), QuotedLocalPart> {
        if self.allow_quoted_local_parts {
            return Ok(());
        }
        match address.local_part().strip_prefix('"') {
            Some(quoted) if !quoted.chars().all(is_plain_qtext) => Err(QuotedLocalPart),
            _ => Ok(()),
        }
    }

    /// Denied wins over allowed; an empty allow-list allows every domain.
    /// Address literals match no pattern.
    pub fn check_domain(&self, domain: &Domain) -> Result<(), PolicyError> {
        let name = match domain {
            Domain::Name(n) => Some(n.as_str()),
            Domain::Literal(_) => None,
        };
        let matches =
            |list: &[DomainPattern]| name.is_some_and(|n| list.iter().any(|p| p.matches(n)));
        if matches(&self.denied) {
            return Err(PolicyError::Denied {
                domain: domain.to_string(),
            });
        }
        if !self.allowed.is_empty() && !matches(&self.allowed) {
            return Err(PolicyError::NotAllowed {
                domain: domain.to_string(),
            });
        }
        Ok(())
    }
}

/// Everything `[validation]` needs at run time; one per daemon.
pub struct Validator {
    rules: Arc<Rules>,
    dns: Option<dns::DomainChecker>,
    hook: Option<(hook::Hook, OnError)>,
}

impl Validator {
    /// Problems that only show at run time (no system resolver config, an
    /// unusable CA file) are logged here and then answered per recipient
    /// (450 for DNS, `on_error` for the hook), so they never stop the daemon.
    pub fn new(cfg: &Settings) -> Validator {
        let dns = cfg
            .check_recipient_domain
            .then(|| dns::DomainChecker::new(cfg.resolver, cfg.dns_timeout));
        let hook = cfg.hook.as_ref().and_then(|h| match hook::Hook::new(h) {
            Ok(hook) => Some((hook, h.on_error)),
            Err(e) => {
                tracing::error!(error = %e, "validation hook disabled");
                None
            }
        });
        Validator {
            rules: Arc::new(Rules::new(cfg)),
            dns,
            hook,
        }
    }

    /// The pure rules, for the session.
    pub fn rules(&self) -> Arc<Rules> {
        Arc::clone(&self.rules)
    }

    /// DNS first (a domain that does not exist needs no verifier), then the
    /// hook. Address literals have no DNS to check.
    pub async fn check_recipient(&self, address: &Address) -> Result<(), CheckError> {
        if let (Some(dns), Some(domain)) = (&self.dns, address.domain_name()) {
            dns.check(domain).await?;
        }
        let Some((hook, on_error)) = &self.hook else {
            return Ok(());
        };
        let shown = address.to_string();
        match hook.verify(&shown).await {
            Ok(hook::Verdict::Valid) => Ok(()),
            Ok(hook::Verdict::Invalid { reason }) => Err(CheckError::Invalid { reason }),
            Err(reason) => {
                tracing::warn!(address = %shown, error = %reason, on_error = ?on_error, "validation hook failed");
                match on_error {
                    OnError::Accept => Ok(()),
                    OnError::Tempfail => Err(CheckError::HookUnavailable { reason }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
