//! The small parsers that take client or operator text: SASL PLAIN/LOGIN
//! decoding, envelope addresses and the TOML configuration.

use std::path::Path as FsPath;

use crate::smtp::sasl::{self, SaslStep};
use crate::validate::address::{Path, parse_path};

/// AUTH PLAIN or LOGIN (first byte) with the initial response on the first
/// line and each further line one response of the exchange.
pub fn sasl(input: &[u8]) {
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let mechanism = if flags & 1 == 0 {
        smtp_proto::AUTH_PLAIN
    } else {
        smtp_proto::AUTH_LOGIN
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let mut step = sasl::start(mechanism, &first);
    loop {
        match step {
            SaslStep::Continue(wait, reply) => {
                assert_eq!(reply.code, 334, "challenge {reply}");
                let Some(line) = lines.next() else { return };
                step = sasl::respond(wait, line);
            }
            SaslStep::Verify { username, secret } => {
                // Only a complete, clean pair is ever handed to the check.
                assert!(!username.is_empty() && !secret.is_empty());
                assert!(!username.chars().any(char::is_control), "{username:?}");
                return;
            }
            SaslStep::Refuse(reply) => {
                assert!((500..600).contains(&reply.code), "refusal {reply}");
                return;
            }
        }
    }
}

/// An envelope path as written on the wire. What parses prints back to a
/// path that parses to the same thing, without a byte that could end an
/// SMTP line or a header field.
pub fn address(input: &[u8]) {
    let Ok(path) = parse_path(input) else {
        return;
    };
    let Path::Mailbox(a) = &path else {
        return;
    };
    let shown = a.to_string();
    assert!(
        !shown.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
        "{shown:?}"
    );
    let again = parse_path(format!("<{shown}>").as_bytes())
        .unwrap_or_else(|e| panic!("<{shown}> does not parse back: {e}"));
    assert_eq!(again, path, "<{shown}> parses to something else");
}

/// A configuration file. Loading never panics, and a refusal always says
/// what is wrong.
pub fn config(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    // A directory that does not exist, so relative includes and key files
    // resolve to nothing.
    let path = FsPath::new("/nonexistent/postern-fuzz/postern.toml");
    if let Err(errors) = crate::config::load_str(path, text) {
        assert!(!errors.to_string().trim().is_empty(), "an empty error");
    }
}
