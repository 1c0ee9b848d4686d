//! RFC 5321 envelope paths (`<local@domain>`), checked strictly and brought
//! into the one form postern stores and forwards.
//!
//! smtp-proto's address parsing is deliberately lenient (it drops source
//! routes and quote marks and refuses address literals), which is right for
//! splitting a command but wrong for deciding what an address *is*: the
//! session therefore hands the raw path text, angle brackets included, to
//! [`parse_path`]. Internationalized domains are converted to A-labels here,
//! so everything downstream (policy, DNS, spool, upstream APIs) sees one
//! ASCII spelling of a domain. Old routing tricks that let a relay be
//! steered elsewhere (source routes, `%` hacks, `!` UUCP paths) are refused
//! outright rather than interpreted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3, counting the angle brackets.
pub const MAX_PATH: usize = 256;

/// Why a path is not an acceptable mailbox. The text is written to be read
/// by whoever configured the client, after "Invalid address: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("path is longer than {MAX_PATH} octets")]
    PathTooLong,
    #[error("address is not valid UTF-8")]
    NotUtf8,
    #[error("address must be enclosed in <>")]
    NoBrackets,
    #[error("source routes (<@host,...:user@domain>) are not accepted")]
    SourceRoute,
    #[error("address has no @domain")]
    NoDomain,
    #[error("local part is longer than {MAX_LOCAL_PART} octets")]
    LocalPartTooLong,
    #[error("domain is longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("'%' in the local part (percent-hack routing) is not accepted")]
    PercentHack,
    #[error("'!' in the local part (UUCP bang path) is not accepted")]
    BangPath,
    #[error("invalid local part: {0}")]
    LocalPart(&'static str),
    #[error("invalid domain: {0}")]
    Domain(String),
    #[error("invalid address literal: {0}")]
    Literal(&'static str),
    #[error("unexpected characters after the domain")]
    TrailingJunk,
}

/// The domain of a mailbox: an ASCII (A-label) name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// Lower-case, A-labels only, no trailing dot.
    Name(String),
    Literal(IpAddr),
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(IpAddr::V4(a)) => write!(f, "[{a}]"),
            Domain::Literal(IpAddr::V6(a)) => write!(f, "[IPv6:{a}]"),
        }
    }
}

/// A mailbox in the form postern stores: the local part exactly as the
/// client wrote it (quoted or not), the domain normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    local: String,
    domain: Domain,
}

impl Address {
    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The domain name, or None for an address literal.
    pub fn domain_name(&self) -> Option<&str> {
        match &self.domain {
            Domain::Name(n) => Some(n),
            Domain::Literal(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// A reverse-path or forward-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`: the null reverse-path of bounces.
    Null,
    Mailbox(Address),
}

/// Parses `<...>` as written on the wire.
pub fn parse_path(raw: &[u8]) -> Result<Path, AddressError> {
    if raw.len() > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| AddressError::NotUtf8)?;
    let inner = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or(AddressError::NoBrackets)?;
    if inner.is_empty() {
        return Ok(Path::Null);
    }
    if inner.starts_with('@') {
        return Err(AddressError::SourceRoute);
    }
    let (local, rest) = split_local_part(inner)?;
    let domain_text = rest.strip_prefix('@').ok_or(if rest.is_empty() {
        AddressError::NoDomain
    } else {
        AddressError::LocalPart("characters not allowed outside quotes")
    })?;
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    if local.contains('%') {
        return Err(AddressError::PercentHack);
    }
    if local.contains('!') {
        return Err(AddressError::BangPath);
    }
    let domain = parse_domain(domain_text)?;
    let address = Address {
        local: local.to_string(),
        domain,
    };
    // A-labels are longer than the U-labels they replace.
    if address.to_string().len() + 2 > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    Ok(Path::Mailbox(address))
}

/// Returns (local part as written, rest starting at the `@`).
fn split_local_part(s: &str) -> Result<(&str, &str), AddressError> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            if escaped {
                // quoted-pairSMTP = %d92 %d32-126
                if !(' '..='~').contains(&c) {
                    return Err(AddressError::LocalPart("invalid quoted character"));
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                let end = 1 + i + 1;
                if end == 2 {
                    return Err(AddressError::LocalPart("empty quoted string"));
                }
                return Ok((&s[..end], &s[end..]));
            } else if !is_qtext(c) {
                return Err(AddressError::LocalPart(
                    "invalid character in quoted string",
                ));
            }
        }
        return Err(AddressError::LocalPart("unterminated quoted string"));
    }
    let end = s.find('@').unwrap_or(s.len());
    let local = &s[..end];
    if local.is_empty() {
        return Err(AddressError::LocalPart("empty local part"));
    }
    for atom in local.split('.') {
        if atom.is_empty() {
            return Err(AddressError::LocalPart(
                "leading, trailing or consecutive dots (quote it if you must)",
            ));
        }
        if !atom.chars().all(is_atext) {
            return Err(AddressError::LocalPart(
                "characters not allowed outside quotes",
            ));
        }
    }
    Ok((local, &s[end..]))
}

/// RFC 5322 atext, extended with UTF-8 by RFC 6531 (the session refuses
/// non-ASCII unless the client declared SMTPUTF8).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_text(c)
}

/// qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF-8.
fn is_qtext(c: char) -> bool {
    matches!(c, ' '..='!' | '#'..='[' | ']'..='~') || is_utf8_text(c)
}

fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && c != char::REPLACEMENT_CHARACTER
}

fn parse_domain(text: &str) -> Result<Domain, AddressError> {
    if let Some(literal) = text.strip_prefix('[') {
        let content = literal
            .strip_suffix(']')
            .ok_or(AddressError::Literal("missing closing ]"))?;
        return parse_literal(content).map(Domain::Literal);
    }
    normalize_domain(text).map(Domain::Name)
}

fn parse_literal(content: &str) -> Result<IpAddr, AddressError> {
    if let Some(v6) = content
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| content.get(5..))
    {
        return v6
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| AddressError::Literal("not an IPv6 address"));
    }
    if content.contains(':') {
        return Err(AddressError::Literal(
            "only IPv4 and [IPv6:...] literals are supported",
        ));
    }
    content
        .parse::<Ipv4Addr>()
        .map(IpAddr::V4)
        .map_err(|_| AddressError::Literal("not an IPv4 address"))
}

/// A domain name (U-labels allowed) in lower-case A-label form, or why it
/// is not a hostname. Shared with the domain patterns of `[validation]`.
pub fn normalize_domain(text: &str) -> Result<String, AddressError> {
    let bad = |why: &str| AddressError::Domain(why.to_string());
    if text.is_empty() {
        return Err(bad("empty domain"));
    }
    if text.ends_with('.') || text.starts_with('.') || text.contains("..") {
        return Err(bad("empty label (leading, trailing or double dot)"));
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(if c == '>' || c == ' ' || c == '<' {
            AddressError::TrailingJunk
        } else {
            AddressError::Domain(format!("character {c:?} is not allowed in a domain"))
        });
    }
    let ascii = Uts46::new()
        .to_ascii(
            text.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .map_err(|_| {
            bad(if text.is_ascii() {
                "not a valid hostname (label too long, bad hyphen or bad xn-- label)"
            } else {
                "not a valid internationalized domain name"
            })
        })?
        .into_owned();
    // UTS 46 silently maps some input (drops invisible characters, folds
    // compatibility forms): accept only names already in their canonical
    // form, so the domain a client wrote is the domain we deliver to.
    if !text.is_ascii() {
        let (unicode, result) = Uts46::new().to_unicode(
            ascii.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
        );
        if result.is_err() || unicode != text.to_lowercase() {
            return Err(bad(
                "contains characters IDNA would change or drop (not in NFC / canonical form)",
            ));
        }
    }
    if ascii.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    // RFC 3696 §2: a top-level domain is never all-numeric; this is almost
    // always an IP address that should have been a literal.
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(
            "all-numeric top-level label (write an IP address as [192.0.2.1])",
        ));
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;
