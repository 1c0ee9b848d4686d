//! The SMTP session driven by an arbitrary byte stream, the way the
//! listener drives it: lines split at LF under the length limit, DATA fed
//! through the decoder, STARTTLS, AUTH, recipient checks and queueing
//! answered as a real connection would.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::access::Grant;
use crate::smtp::data::BareNewline;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Policy, Session, SessionConfig, Step};

const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const MAX_LINE: usize = 1000;
const MAX_SIZE: usize = 4096;
const MAX_RECIPIENTS: usize = 5;

/// Trusts TRUSTED as "lan"; allows senders at example.com only.
struct FuzzPolicy;

impl Policy for FuzzPolicy {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        (peer == TRUSTED).then(|| Arc::from("lan"))
    }

    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        if mail_from.is_empty() || mail_from.ends_with("@example.com") {
            Ok(())
        } else {
            Err(format!("Sender <{mail_from}> not allowed for {credential}"))
        }
    }
}

/// What the stream has done so far, to check the replies against.
struct Run {
    session: Session,
    /// Messages answered 250 queued.
    queued: usize,
    /// 250 "queued as" replies since the last DATA began.
    queued_in_data: usize,
    /// Inside a DATA phase (between 354 and its final reply).
    in_data: bool,
}

/// The first byte picks the listener (STARTTLS offered, TLS already up,
/// trusted peer, bare newline policy); the rest is what the client sends.
pub fn smtp_session(input: &[u8]) {
    run_session(input);
}

/// [`smtp_session`], returning how many messages were queued.
pub(super) fn run_session(input: &[u8]) -> usize {
    let Some((&flags, mut rest)) = input.split_first() else {
        return 0;
    };
    let cfg = SessionConfig {
        hostname: "relay.fuzz".into(),
        max_message_size: MAX_SIZE,
        max_recipients: MAX_RECIPIENTS,
        max_bad_commands: 20,
        max_junk_commands: 100,
        max_rcpt_commands: 50,
        starttls: flags & 1 != 0,
        bare_newline: if flags & 2 != 0 {
            BareNewline::Normalize
        } else {
            BareNewline::Reject
        },
        max_auth_attempts: Some(3),
        validation: Arc::default(),
    };
    let peer = if flags & 4 != 0 { TRUSTED } else { STRANGER };
    let mut run = Run {
        session: Session::new(Arc::new(cfg), Arc::new(FuzzPolicy), peer, flags & 8 != 0),
        queued: 0,
        queued_in_data: 0,
        in_data: false,
    };
    check_reply(&run.session.greeting());
    while !rest.is_empty() {
        let step = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i < MAX_LINE => {
                let (line, tail) = rest.split_at(i + 1);
                rest = tail;
                run.session.command(line)
            }
            Some(i) => {
                rest = &rest[i + 1..];
                run.session.line_too_long()
            }
            // An unterminated last line: the client never finished it.
            None => break,
        };
        if !run.carry_out(step, &mut rest) {
            break;
        }
    }
    run.queued
}

impl Run {
    /// Answers `step` as the listener would; false once the session closed
    /// or the input ran out mid-DATA.
    fn carry_out(&mut self, mut step: Step, rest: &mut &[u8]) -> bool {
        loop {
            step = match step {
                Step::Reply(r) => {
                    self.saw(&r);
                    return true;
                }
                Step::Close(r) => {
                    self.saw(&r);
                    assert!(self.session.is_closed(), "Close left the session open");
                    return false;
                }
                Step::StartTls(r) => {
                    check_reply(&r);
                    assert_eq!(r.code, 220, "STARTTLS step with {r}");
                    // What follows arrived after the handshake (what was
                    // buffered before it is dropped by the listener).
                    self.session.tls_started();
                    assert!(!self.session.is_authenticated(), "AUTH survived STARTTLS");
                    return true;
                }
                Step::Auth { username, secret } => {
                    assert!(self.session.tls_active(), "AUTH verified without TLS");
                    let result = if secret == "secret" {
                        Ok(Grant::named(&username))
                    } else {
                        Err(Reply::new(
                            535,
                            "5.7.8",
                            "Authentication credentials invalid",
                        ))
                    };
                    self.session.auth_result(result)
                }
                Step::CheckRecipient { .. } => self.session.recipient_checked(Ok(())),
                Step::AdmitMessage { .. } => self.session.message_admitted(Ok(())),
                Step::AdmitRecipient { .. } => self.session.recipient_admitted(Ok(())),
                Step::Data(r) => {
                    check_reply(&r);
                    assert_eq!(r.code, 354, "DATA step with {r}");
                    self.in_data = true;
                    self.queued_in_data = 0;
                    let mut decoder = self.session.new_data_decoder();
                    let used = decoder.feed(rest);
                    *rest = &rest[used..];
                    if !decoder.is_done() {
                        return false;
                    }
                    let outcome = decoder.finish();
                    self.session.data_finished(outcome)
                }
                Step::Queue(tx) => {
                    assert!(self.in_data, "a message queued outside DATA");
                    assert!(!tx.rcpt_to.is_empty(), "queued without recipients");
                    assert!(tx.rcpt_to.len() <= MAX_RECIPIENTS, "over max_recipients");
                    let mut unique = tx.rcpt_to.clone();
                    unique.sort();
                    unique.dedup();
                    assert_eq!(unique.len(), tx.rcpt_to.len(), "a recipient twice");
                    assert!(tx.data.len() <= MAX_SIZE, "over max_message_size");
                    assert_eq!(
                        super::bare_newline(&tx.data),
                        None,
                        "bare CR or LF in a queued message"
                    );
                    assert!(
                        tx.authenticated || self.session.peer() == TRUSTED,
                        "relayed for a stranger"
                    );
                    self.session.queued(Ok("FUZZ1".into()))
                }
            };
        }
    }

    fn saw(&mut self, r: &Reply) {
        check_reply(r);
        if r.code == 250 && r.to_string().contains("queued as") {
            self.queued += 1;
            self.queued_in_data += 1;
            assert!(self.in_data, "250 queued outside DATA");
            assert_eq!(self.queued_in_data, 1, "two 250 queued for one DATA");
        }
        if r.code != 354 {
            self.in_data = false;
        }
    }
}

/// A reply is three digits and text on CRLF-terminated lines, nothing else.
fn check_reply(r: &Reply) {
    assert!((200..=599).contains(&r.code), "reply code {}", r.code);
    let bytes = r.to_bytes();
    assert!(bytes.ends_with(b"\r\n"), "unterminated reply");
    assert_eq!(super::bare_newline(&bytes), None, "bare newline in a reply");
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 4, "short reply line");
        assert!(line[..3].iter().all(u8::is_ascii_digit), "reply line");
        assert!(matches!(line[3], b' ' | b'-' | b'\r'), "reply separator");
    }
}
