//! SMTP replies as values, so the session state machine can return them and
//! tests can compare them without a socket.
//!
//! Every reply carries an RFC 3463 enhanced status code except where RFC 2034
//! §3 and RFC 4954 say it must not: the greeting, the HELO/EHLO response (its
//! extension lines are bare keywords that clients match literally), and 3xx
//! intermediate replies (`334` carries a base64 challenge, `354` has no
//! enhanced class). Text is sanitized when the reply is built *and* when it
//! is written, because reply text often echoes client input (addresses) and a
//! CR/LF in it would let a client forge extra reply lines.

use std::fmt;

/// RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets including the code
/// and CRLF; this leaves room for "NNN-x.y.z " and the line ending.
const MAX_TEXT_BYTES: usize = 480;

/// One SMTP reply, possibly multi-line.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// RFC 3463 enhanced status code written after the reply code on every
    /// line, e.g. `"2.0.0"`; `None` for the replies that must not carry one.
    pub enhanced: Option<String>,
    /// Text of each line, without code or line ending. Never empty when built
    /// through the constructors.
    pub lines: Vec<String>,
    /// The rule that refused, for the `refused` audit event and the
    /// `postern_messages_refused_total` metric (`reason` label); never
    /// written to the client. Set with [`Reply::because`].
    pub rule: Option<&'static str>,
}

/// Replies are equal when they say the same thing on the wire; the rule
/// is bookkeeping.
impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        self.code == other.code && self.enhanced == other.enhanced && self.lines == other.lines
    }
}

impl Eq for Reply {}

impl Reply {
    /// A single-line reply with an enhanced status code: `250 2.0.0 Ok`.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(sanitize(enhanced)),
            lines: vec![sanitize(&text.into())],
            rule: None,
        }
    }

    /// A reply without enhanced status code (greeting, HELO, 334, 354).
    pub fn bare(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![sanitize(&text.into())],
            rule: None,
        }
    }

    /// A multi-line reply; `enhanced`, when given, is repeated on every line.
    pub fn multiline(code: u16, enhanced: Option<&str>, lines: Vec<String>) -> Reply {
        let mut lines: Vec<String> = lines.iter().map(|l| sanitize(l)).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code,
            enhanced: enhanced.map(sanitize),
            lines,
            rule: None,
        }
    }

    /// Tags a refusal with the rule that made it (a bounded name such as
    /// `"quota"` or `"attachment_blocked"`).
    pub fn because(mut self, rule: &'static str) -> Reply {
        self.rule = Some(rule);
        self
    }

    /// Appends the wire form (`250-a\r\n250 b\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // The code is written digit by digit so an out-of-range value set
        // through the public field still yields exactly three digits.
        let code = self.code.min(999);
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(&digits);
            out.push(if i + 1 == lines.len() { b' ' } else { b'-' });
            if let Some(enhanced) = &self.enhanced {
                out.extend_from_slice(sanitize(enhanced).as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(sanitize(line).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        out
    }

    /// 2xx and 3xx: the client's command was accepted (so far).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 5xx: permanent failure.
    pub fn is_permanent_failure(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

/// One-line summary for logs: `550 5.7.1 text` (multi-line replies joined
/// with " / ").
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = &self.enhanced {
            write!(f, " {e}")?;
        }
        for (i, line) in self.lines.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " / " })?;
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// Replaces control characters (CR, LF, NUL, C1 ...) with spaces and caps the
/// length at a char boundary, so echoed client input cannot break the
/// reply framing. Tab is allowed by RFC 5321's textstring.
fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_BYTES));
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_TEXT_BYTES {
            break;
        }
        out.push(if c.is_control() && c != '\t' { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests;
