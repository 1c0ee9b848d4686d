//! Recipient-domain patterns of `[validation]`: `example.com` (that domain)
//! and `*.example.com` (any subdomain, not the domain itself).
//!
//! Patterns are normalized the same way envelope domains are (A-labels,
//! lower case), so an operator may write `bücher.example` and it matches the
//! `xn--bcher-kva.example` that the envelope carries.

use std::fmt;

use super::address::normalize_domain;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    /// A-label form of the domain part.
    domain: String,
    /// `*.` prefix: matches strict subdomains only.
    subdomains: bool,
}

impl DomainPattern {
    /// Parses one pattern, or says why it is not one (for a config error).
    pub fn parse(text: &str) -> Result<DomainPattern, String> {
        let t = text.trim();
        let (subdomains, rest) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        if rest.contains('*') {
            return Err(format!(
                "invalid domain pattern {t:?}: `*` is only allowed as a leading `*.` (\"*.example.com\")"
            ));
        }
        let domain =
            normalize_domain(rest).map_err(|e| format!("invalid domain pattern {t:?}: {e}"))?;
        Ok(DomainPattern { domain, subdomains })
    }

    /// `domain` must already be normalized (A-labels, lower case).
    pub fn matches(&self, domain: &str) -> bool {
        if self.subdomains {
            domain.len() > self.domain.len() + 1
                && domain.ends_with(&self.domain)
                && domain.as_bytes()[domain.len() - self.domain.len() - 1] == b'.'
        } else {
            domain == self.domain
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subdomains {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

#[cfg(test)]
mod tests;
