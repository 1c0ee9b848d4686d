//! Checks on the raw response XML before samael verifies it: what samael
//! does not refuse itself, or refuses only in some shapes.
//!
//! - no DOCTYPE (entity expansion), no comments and no processing
//!   instructions: a comment inside a NameID (`admin@corp<!---->.evil`)
//!   leaves the signature valid (canonicalization drops comments) while a
//!   parser may read only part of the text;
//! - the root is a `samlp:Response` whose `Destination` is the ACS URL
//!   (samael checks it only when the response itself is parsed, not when
//!   only the assertion is signed);
//! - exactly one `saml:Assertion` anywhere and no `EncryptedAssertion`:
//!   every signature-wrapping variant (XSW1–XSW8) needs a second one;
//! - the Response's top-level `StatusCode` is `Success`: when only the
//!   assertion is signed, samael never looks at the status.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

const PROTOCOL: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";

/// Why the raw XML was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("a DOCTYPE is not allowed")]
    Doctype,
    #[error("XML comments are not allowed")]
    Comment,
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    #[error("the root element is not a SAML protocol Response")]
    Root,
    #[error("Destination {0:?} is not the ACS URL")]
    Destination(Option<String>),
    #[error("{0} assertions; exactly one is accepted")]
    AssertionCount(usize),
    #[error("encrypted assertions are not accepted")]
    Encrypted,
    #[error("status {0:?} is not Success")]
    Status(Option<String>),
}

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

pub fn check(xml: &str, acs_url: &str) -> Result<(), Refused> {
    let mut reader = NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut assertions = 0usize;
    let mut seen_root = false;
    // The Response's own samlp:Status (depth 1) and its StatusCode (depth 2).
    let mut in_status = false;
    let mut status: Option<Option<String>> = None;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| Refused::Malformed(e.to_string()))?;
        let bound = |ns: &ResolveResult<'_>, want: &[u8]| matches!(ns, ResolveResult::Bound(n) if n.as_ref() == want);
        match ev {
            Event::DocType(_) => return Err(Refused::Doctype),
            Event::Comment(_) => return Err(Refused::Comment),
            Event::PI(_) => return Err(Refused::ProcessingInstruction),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name();
                if depth == 0 {
                    if seen_root {
                        return Err(Refused::Root);
                    }
                    seen_root = true;
                    if !(bound(&ns, PROTOCOL) && local.as_ref() == b"Response") {
                        return Err(Refused::Root);
                    }
                    let dest = e
                        .try_get_attribute("Destination")
                        .map_err(|e| Refused::Malformed(e.to_string()))?
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        });
                    if dest.as_deref() != Some(acs_url) {
                        return Err(Refused::Destination(dest));
                    }
                }
                if depth == 1 && bound(&ns, PROTOCOL) && local.as_ref() == b"Status" {
                    in_status = matches!(ev, Event::Start(_));
                    status.get_or_insert(None);
                }
                if depth == 2
                    && in_status
                    && bound(&ns, PROTOCOL)
                    && local.as_ref() == b"StatusCode"
                    && status == Some(None)
                {
                    let v = e
                        .try_get_attribute("Value")
                        .map_err(|e| Refused::Malformed(e.to_string()))?
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        });
                    status = Some(v);
                }
                if local.as_ref() == b"EncryptedAssertion" {
                    return Err(Refused::Encrypted);
                }
                // Any namespace: an Assertion in a foreign namespace is a
                // wrapping attempt too.
                if local.as_ref() == b"Assertion" {
                    assertions += 1;
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_status = false;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(Refused::Root);
    }
    match status {
        Some(Some(v)) if v == SUCCESS => {}
        Some(v) => return Err(Refused::Status(v)),
        None => return Err(Refused::Status(None)),
    }
    if assertions != 1 {
        return Err(Refused::AssertionCount(assertions));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
