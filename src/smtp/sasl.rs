//! SASL PLAIN (RFC 4616) and LOGIN exchanges for SMTP AUTH (RFC 4954).
//!
//! Only the encoding lives here: base64 lines in, either the next challenge,
//! a username/secret pair to verify, or a refusal out. *Whether* AUTH is
//! allowed at all (TLS, EHLO, no transaction) is the session's decision, and
//! checking the secret is the access layer's, so this stays a small pure
//! function of its input that cannot grant anything by itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64;

use super::reply::Reply;

/// "Username:" and "Password:", the customary AUTH LOGIN prompts.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// Which base64 line an exchange expects next.
#[derive(Debug)]
pub enum Wait {
    PlainResponse,
    LoginUsername,
    LoginPassword { username: String },
}

/// What the session does with the client's last AUTH input.
pub enum SaslStep {
    /// Send the challenge and wait for the next line.
    Continue(Wait, Reply),
    /// A complete, well-formed credential pair to check.
    Verify { username: String, secret: String },
    /// The exchange is over without credentials.
    Refuse(Reply),
}

/// The `AUTH mechanism [initial-response]` command.
pub fn start(mechanism: u64, initial_response: &str) -> SaslStep {
    let initial = initial_response.trim();
    match mechanism {
        smtp_proto::AUTH_PLAIN if initial.is_empty() => {
            SaslStep::Continue(Wait::PlainResponse, Reply::bare(334, ""))
        }
        smtp_proto::AUTH_PLAIN => match decode_base64(initial) {
            Ok(response) => plain(&response),
            Err(reply) => SaslStep::Refuse(reply),
        },
        smtp_proto::AUTH_LOGIN if initial.is_empty() => {
            SaslStep::Continue(Wait::LoginUsername, Reply::bare(334, LOGIN_USERNAME))
        }
        smtp_proto::AUTH_LOGIN => match decode_base64(initial).and_then(utf8) {
            Ok(username) => SaslStep::Continue(
                Wait::LoginPassword { username },
                Reply::bare(334, LOGIN_PASSWORD),
            ),
            Err(reply) => SaslStep::Refuse(reply),
        },
        _ => SaslStep::Refuse(Reply::new(
            504,
            "5.5.4",
            "Unrecognized authentication mechanism",
        )),
    }
}

/// A base64 line inside an exchange (RFC 4954 §4).
pub fn respond(wait: Wait, line: &[u8]) -> SaslStep {
    let text = line.trim_ascii();
    if text == b"*" {
        return SaslStep::Refuse(Reply::new(501, "5.7.0", "Authentication cancelled"));
    }
    let decoded = match std::str::from_utf8(text) {
        Ok(text) => decode_base64(text),
        Err(_) => Err(bad_base64()),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(reply) => return SaslStep::Refuse(reply),
    };
    match wait {
        Wait::PlainResponse => plain(&decoded),
        Wait::LoginUsername => match utf8(decoded) {
            Ok(username) => SaslStep::Continue(
                Wait::LoginPassword { username },
                Reply::bare(334, LOGIN_PASSWORD),
            ),
            Err(reply) => SaslStep::Refuse(reply),
        },
        Wait::LoginPassword { username } => match utf8(decoded) {
            Ok(secret) => verify(username, secret),
            Err(reply) => SaslStep::Refuse(reply),
        },
    }
}

/// RFC 4616 message: authzid NUL authcid NUL passwd.
fn plain(response: &[u8]) -> SaslStep {
    let mut parts = response.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return SaslStep::Refuse(Reply::new(501, "5.5.2", "Malformed PLAIN response"));
    };
    let (Ok(authzid), Ok(username), Ok(secret)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(authcid),
        std::str::from_utf8(passwd),
    ) else {
        return SaslStep::Refuse(not_utf8());
    };
    // We cannot act on behalf of another identity.
    if !authzid.is_empty() && authzid != username {
        return SaslStep::Refuse(invalid());
    }
    verify(username.to_string(), secret.to_string())
}

fn verify(username: String, secret: String) -> SaslStep {
    let clean = !username
        .chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER);
    if username.is_empty() || secret.is_empty() || !clean {
        return SaslStep::Refuse(invalid());
    }
    SaslStep::Verify { username, secret }
}

fn invalid() -> Reply {
    Reply::new(535, "5.7.8", "Authentication credentials invalid")
}

fn not_utf8() -> Reply {
    Reply::new(501, "5.5.2", "Credentials are not valid UTF-8")
}

fn bad_base64() -> Reply {
    Reply::new(501, "5.5.2", "Invalid base64 data")
}

/// RFC 4954: a lone "=" is an empty response.
fn decode_base64(text: &str) -> Result<Vec<u8>, Reply> {
    if text == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(text).map_err(|_| bad_base64())
}

fn utf8(bytes: Vec<u8>) -> Result<String, Reply> {
    String::from_utf8(bytes).map_err(|_| not_utf8())
}
