//! The SMTP session as a pure state machine (sans-IO, like rustls or
//! quinn-proto): the listener hands it complete command lines and event
//! results, it answers with a [`Step`] saying what to write and what to do
//! next. No sockets, timers or async here, so every protocol rule is unit
//! tested and fuzzed without a network.
//!
//! Security shape: a session can only reach [`Step::Queue`] through a MAIL
//! command, and MAIL needs a credential: either one the listener confirmed
//! via [`Session::auth_result`] after a [`Step::Auth`] we asked for (only
//! ever over TLS), or one the [`Policy`] grants to the peer's network. There
//! is no other way in, so a misconfigured or empty policy fails closed.
//!
//! MAIL/RCPT handling, including address validation, lives in
//! `session/envelope.rs`; AUTH in `session/auth.rs` (the encodings in
//! `sasl.rs`); what the session asks the access layer in `session/policy.rs`;
//! how much misbehaviour it tolerates before hanging up in `session/limits.rs`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use smtp_proto::{Error as ParseError, Request};

use super::data::{BareNewline, DataDecoder, DataOutcome};
use super::reply::Reply;
use super::sasl;
use crate::validate::{self, Address};

mod auth;
mod envelope;
mod limits;
mod policy;

pub use policy::{CredentialLimits, Grant, Policy, SizeLimit};

/// Per-listener settings the state machine needs; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Client-caused 5xx replies (and 4xx RCPT refusals, and junk
    /// commands beyond `max_junk_commands`) tolerated before `421 4.7.0`.
    pub max_bad_commands: u32,
    /// NOOP, RSET, HELP, VRFY, EXPN and repeated EHLO/HELO allowed before
    /// each further one counts as a bad command (Postfix's
    /// `smtpd_junk_command_limit`): they keep a session alive doing nothing.
    pub max_junk_commands: u32,
    /// RCPT commands per session, whatever became of their transactions,
    /// before `421 4.7.0`: RSET loops would otherwise probe addresses forever.
    pub max_rcpt_commands: u32,
    /// The listener offers STARTTLS (`tls = "starttls"`).
    pub starttls: bool,
    pub bare_newline: BareNewline,
    /// AUTH commands allowed per connection before `421 4.7.0` (None: no limit).
    pub max_auth_attempts: Option<u32>,
    /// `[validation]` rules that need no I/O (recipient domain patterns,
    /// and whether recipients need an asynchronous check).
    pub validation: Arc<validate::Rules>,
}

/// Everything needed to queue one accepted message.
pub struct Transaction {
    /// The queue id, assigned at MAIL FROM so every audit event of the
    /// message (refused recipients included) carries it.
    pub id: String,
    /// The SMTP session's id in the audit trail (set by the connection).
    pub session: Arc<str>,
    pub credential: Arc<str>,
    /// Via AUTH (true) or network trust (false).
    pub authenticated: bool,
    pub helo: String,
    /// `""` for the null sender `<>`.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub body_8bit: bool,
    pub smtputf8: bool,
    pub tls: bool,
    /// Decoded message: CRLF line endings, dot-unstuffed.
    pub data: Vec<u8>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("credential", &self.credential)
            .field("authenticated", &self.authenticated)
            .field("helo", &self.helo)
            .field("mail_from", &self.mail_from)
            .field("rcpt_to", &self.rcpt_to)
            .field("body_8bit", &self.body_8bit)
            .field("smtputf8", &self.smtputf8)
            .field("tls", &self.tls)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// What the listener must do after feeding the session an event.
pub enum Step {
    /// Write the reply, keep reading commands.
    Reply(Reply),
    /// Write the reply, then close the connection.
    Close(Reply),
    /// Write the reply (`220 2.0.0`), discard buffered input, handshake,
    /// then call [`Session::tls_started`].
    StartTls(Reply),
    /// Verify the credentials, then call [`Session::auth_result`].
    Auth { username: String, secret: String },
    /// Write the reply (`354`), feed a decoder from
    /// [`Session::new_data_decoder`], then call [`Session::data_finished`].
    Data(Reply),
    /// Spool the message, then call [`Session::queued`].
    Queue(Box<Transaction>),
    /// Check the recipient's domain in DNS and/or ask the validation hook
    /// (`Validator::check_recipient`), then call
    /// [`Session::recipient_checked`].
    CheckRecipient { address: Address },
    /// The quotas for one more message are shared (`[cluster]`): check
    /// them (`Access::admit_message_shared`), then call
    /// [`Session::message_admitted`].
    AdmitMessage {
        credential: Arc<str>,
        mail_from: String,
    },
    /// Likewise for one more recipient, then
    /// [`Session::recipient_admitted`].
    AdmitRecipient {
        credential: Arc<str>,
        mail_from: String,
    },
}

/// Manual so the AUTH secret can never reach a log line.
impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Step::Close(r) => f.debug_tuple("Close").field(r).finish(),
            Step::StartTls(r) => f.debug_tuple("StartTls").field(r).finish(),
            Step::Auth { username, .. } => f
                .debug_struct("Auth")
                .field("username", username)
                .field("secret", &"<redacted>")
                .finish(),
            Step::Data(r) => f.debug_tuple("Data").field(r).finish(),
            Step::Queue(t) => f.debug_tuple("Queue").field(t).finish(),
            Step::CheckRecipient { address } => f
                .debug_struct("CheckRecipient")
                .field("address", &address.to_string())
                .finish(),
            Step::AdmitMessage { credential, .. } => f
                .debug_struct("AdmitMessage")
                .field("credential", credential)
                .finish(),
            Step::AdmitRecipient { credential, .. } => f
                .debug_struct("AdmitRecipient")
                .field("credential", credential)
                .finish(),
        }
    }
}

/// Where the session is; anything but `Command`/`Auth` waits for the
/// listener to report back, and a command arriving then is a listener bug.
#[derive(Debug)]
enum Phase {
    Command,
    Auth(sasl::Wait),
    AuthVerifying,
    StartTls,
    /// Waiting for [`Session::recipient_checked`] about this address.
    CheckingRecipient(Address),
    /// Waiting for [`Session::message_admitted`]; the transaction MAIL
    /// opens if it is.
    AdmittingMessage(Box<PendingTransaction>),
    /// Waiting for [`Session::recipient_admitted`] about this address.
    AdmittingRecipient(Address),
    Data,
    Queueing,
    Closed,
}

/// The MAIL/RCPT part of a transaction, before DATA.
#[derive(Debug)]
struct PendingTransaction {
    /// The queue id the message will have.
    id: String,
    credential: Arc<str>,
    authenticated: bool,
    /// Effective limits for this transaction (listener's and credential's).
    max_recipients: usize,
    /// Credential's recipient limit, when it is the stricter one.
    recipients_by: Option<usize>,
    max_size: usize,
    /// Whose size limit applies, when not the listener's.
    size_by: Option<String>,
    mail_from: String,
    rcpt_to: Vec<String>,
    /// Recipients counted against the quotas (including any a later DNS
    /// check refused), for [`Policy::release`].
    counted_rcpts: u32,
    body_8bit: bool,
    smtputf8: bool,
}

/// What a transaction handed to the sink counted, until the sink answers.
struct Counted {
    credential: Arc<str>,
    mail_from: String,
    recipients: u32,
}

const HELP_TEXT: &str =
    "Supported: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT";

/// One client connection's SMTP state.
pub struct Session {
    cfg: Arc<SessionConfig>,
    policy: Arc<dyn Policy>,
    peer: IpAddr,
    tls: bool,
    helo: Option<String>,
    /// Credential confirmed by AUTH.
    auth: Option<Grant>,
    /// AUTH exchanges that reached verification on this connection.
    auth_attempts: u32,
    /// Credential granted by network trust at the last MAIL (for logging).
    network_credential: Option<Arc<str>>,
    envelope: Option<PendingTransaction>,
    /// The transaction being spooled, released if the spool refuses it.
    queueing: Option<Counted>,
    phase: Phase,
    bad_commands: u32,
    /// Commands that move no mail (see [`SessionConfig::max_junk_commands`]).
    junk_commands: u32,
    rcpt_commands: u32,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("helo", &self.helo)
            .field("credential", &self.credential())
            .field("phase", &self.phase)
            .field("bad_commands", &self.bad_commands)
            .field("junk_commands", &self.junk_commands)
            .field("rcpt_commands", &self.rcpt_commands)
            .finish()
    }
}

impl Session {
    pub fn new(
        cfg: Arc<SessionConfig>,
        policy: Arc<dyn Policy>,
        peer: IpAddr,
        tls_active: bool,
    ) -> Session {
        Session {
            cfg,
            policy,
            peer,
            tls: tls_active,
            helo: None,
            auth: None,
            auth_attempts: 0,
            network_credential: None,
            envelope: None,
            queueing: None,
            phase: Phase::Command,
            bad_commands: 0,
            junk_commands: 0,
            rcpt_commands: 0,
        }
    }

    /// `220 hostname ESMTP postern` (no enhanced code: RFC 2034 §3).
    pub fn greeting(&self) -> Reply {
        Reply::bare(220, format!("{} ESMTP postern", self.cfg.hostname))
    }

    /// One line including its LF (the listener enforces the length limit).
    pub fn command(&mut self, line: &[u8]) -> Step {
        match self.phase {
            Phase::Command => self.smtp_command(line),
            Phase::Auth(_) => self.auth_line(line),
            Phase::Closed => self.closed(),
            _ => self.out_of_order(),
        }
    }

    /// The client sent a line longer than the listener's limit.
    pub fn line_too_long(&mut self) -> Step {
        match self.phase {
            Phase::Command | Phase::Auth(_) => {
                self.phase = Phase::Command;
                self.reply(Reply::new(500, "5.5.2", "Line too long"))
            }
            Phase::Closed => self.closed(),
            _ => self.out_of_order(),
        }
    }

    /// After a successful STARTTLS handshake: RFC 3207 §4.2 requires
    /// forgetting everything learned before it.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.auth = None;
        self.network_credential = None;
        self.abandon_envelope();
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Command;
        }
    }

    /// End of the DATA phase started by [`Step::Data`]. The envelope is
    /// consumed either way, so the client starts over with MAIL.
    pub fn data_finished(&mut self, outcome: DataOutcome) -> Step {
        if !matches!(self.phase, Phase::Data) {
            return self.out_of_order();
        }
        self.phase = Phase::Command;
        let Some(env) = self.envelope.take() else {
            return self.out_of_order();
        };
        if !matches!(outcome, DataOutcome::Message(_)) {
            self.release(&env.credential, &env.mail_from, env.counted_rcpts);
        }
        match outcome {
            DataOutcome::Message(data) => {
                self.phase = Phase::Queueing;
                self.queueing = Some(Counted {
                    credential: env.credential.clone(),
                    mail_from: env.mail_from.clone(),
                    recipients: env.counted_rcpts,
                });
                Step::Queue(Box::new(Transaction {
                    id: env.id,
                    session: Arc::from(""),
                    credential: env.credential,
                    authenticated: env.authenticated,
                    helo: self.helo.clone().unwrap_or_default(),
                    mail_from: env.mail_from,
                    rcpt_to: env.rcpt_to,
                    body_8bit: env.body_8bit,
                    smtputf8: env.smtputf8,
                    tls: self.tls,
                    data,
                }))
            }
            DataOutcome::TooLarge => self.reply(too_large(env.size_by.as_deref(), env.max_size)),
            DataOutcome::BareNewline => self.reply(Reply::new(
                550,
                "5.5.2",
                "Message contains bare CR or LF; lines must end in CRLF",
            )),
            DataOutcome::Incomplete => {
                self.phase = Phase::Closed;
                Step::Close(Reply::new(451, "4.3.0", "Message data incomplete"))
            }
        }
    }

    /// Result of spooling the transaction from [`Step::Queue`].
    /// `Err` carries the refusal to send: `452 4.3.1` when the spool
    /// could not store the message, or a policy reply from inspection.
    pub fn queued(&mut self, result: Result<String, Reply>) -> Step {
        if !matches!(self.phase, Phase::Queueing) {
            return self.out_of_order();
        }
        self.phase = Phase::Command;
        let counted = self.queueing.take();
        match result {
            Ok(id) => Step::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))),
            Err(reply) => {
                if let Some(c) = counted {
                    self.release(&c.credential, &c.mail_from, c.recipients);
                }
                Step::Reply(reply)
            }
        }
    }

    /// Drops the open transaction, giving back what it counted.
    fn abandon_envelope(&mut self) {
        if let Some(env) = self.envelope.take() {
            self.release(&env.credential, &env.mail_from, env.counted_rcpts);
        }
    }

    fn release(&self, credential: &str, mail_from: &str, recipients: u32) {
        self.policy
            .release(credential, mail_from, self.peer, recipients);
    }

    /// The listener's idle timer fired; write this and close.
    pub fn timeout(&mut self) -> Reply {
        self.phase = Phase::Closed;
        let host = &self.cfg.hostname;
        Reply::new(
            421,
            "4.4.2",
            format!("{host} Timeout exceeded, closing connection"),
        )
    }

    /// The listener's `max_session_duration` clock ran out; write this and
    /// close.
    pub fn expired(&mut self) -> Reply {
        self.phase = Phase::Closed;
        let host = &self.cfg.hostname;
        Reply::new(
            421,
            "4.4.2",
            format!("{host} Maximum session duration exceeded, closing connection"),
        )
    }

    /// The daemon is stopping; write this and close.
    pub fn shutting_down(&mut self) -> Reply {
        self.phase = Phase::Closed;
        let host = &self.cfg.hostname;
        Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, closing connection"),
        )
    }

    /// Maximum decoded size and bare-newline policy for the DATA decoder.
    pub fn data_decoder_params(&self) -> (usize, BareNewline) {
        (self.cfg.max_message_size, self.cfg.bare_newline)
    }

    /// A decoder for the DATA phase just announced by [`Step::Data`].
    pub fn new_data_decoder(&self) -> DataDecoder {
        let max = self
            .envelope
            .as_ref()
            .map_or(self.cfg.max_message_size, |e| e.max_size);
        DataDecoder::new(max, self.cfg.bare_newline)
    }

    /// The credential this session acts as: the AUTH one, else the network
    /// one used by the last MAIL.
    pub fn credential(&self) -> Option<&Arc<str>> {
        self.auth
            .as_ref()
            .map(|g| &g.credential)
            .or(self.network_credential.as_ref())
    }

    /// The queue id of the transaction in progress (after MAIL FROM).
    pub fn queue_id(&self) -> Option<&str> {
        self.envelope.as_ref().map(|e| e.id.as_str())
    }

    pub fn is_authenticated(&self) -> bool {
        self.auth.is_some()
    }

    pub fn tls_active(&self) -> bool {
        self.tls
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// True once a `Close` step, timeout or shutdown reply was produced.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    fn smtp_command(&mut self, line: &[u8]) -> Step {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        // smtp-proto skips stray CRs; we refuse them so that what we log and
        // what a downstream parser would see cannot differ.
        if body.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            return self.reply(Reply::new(500, "5.5.2", "Bare CR, LF or NUL in command"));
        }
        // The envelope path is judged from the raw bytes (smtp-proto's own
        // address parsing is lossy); smtp-proto parses everything else.
        let (path, line) = envelope::separate_path(body);
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.reply(parse_error_reply(&e)),
        };
        match request {
            Request::Ehlo { host } => self.hello(&host, true),
            Request::Helo { host } => self.hello(&host, false),
            Request::Mail { from } => self.mail(from, path.as_deref()),
            Request::Rcpt { .. } => self.rcpt_command(path.as_deref()),
            Request::Data => self.data(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::StartTls => self.starttls(),
            Request::Rset => {
                self.abandon_envelope();
                self.junk(Reply::new(250, "2.0.0", "Ok"))
            }
            Request::Noop { .. } => self.junk(Reply::new(250, "2.0.0", "Ok")),
            Request::Vrfy { .. } => self.junk(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.junk(Reply::new(214, "2.0.0", HELP_TEXT)),
            // Already a bad command (5xx); it also uses up the junk allowance.
            Request::Expn { .. } => {
                self.junk_commands = self.junk_commands.saturating_add(1);
                self.reply(Reply::new(502, "5.5.1", "Command not implemented"))
            }
            Request::Quit => {
                self.phase = Phase::Closed;
                let host = &self.cfg.hostname;
                Step::Close(Reply::new(
                    221,
                    "2.0.0",
                    format!("{host} closing connection"),
                ))
            }
            Request::Bdat { .. }
            | Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.reply(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
    }

    fn hello(&mut self, host: &str, extended: bool) -> Step {
        if !clean_text(host) {
            return self.reply(Reply::new(501, "5.5.4", "Invalid domain in EHLO/HELO"));
        }
        // The first EHLO, and the one RFC 3207 requires after STARTTLS
        // (`tls_started` forgets the first), are not junk; more are.
        let repeated = self.helo.is_some();
        self.abandon_envelope();
        self.helo = Some(host.to_string());
        let name = self.cfg.hostname.clone();
        if !extended {
            return self.greeted(repeated, Reply::bare(250, name));
        }
        // The credential is known here after AUTH (clients that EHLO again)
        // or by network trust; its size limit is then the one to announce.
        let credential = match &self.auth {
            Some(g) => Some(g.credential.clone()),
            None => self.policy.network_credential(self.peer),
        };
        let size = credential
            .and_then(|c| self.policy.limits(&c).max_message_size)
            .map_or(self.cfg.max_message_size, |l| {
                l.bytes.min(self.cfg.max_message_size)
            });
        let mut lines = vec![
            name,
            "PIPELINING".to_string(),
            format!("SIZE {size}"),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.cfg.starttls && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.tls {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        self.greeted(repeated, Reply::multiline(250, None, lines))
    }

    fn starttls(&mut self) -> Step {
        if self.tls {
            return self.reply(Reply::new(503, "5.5.1", "TLS already active"));
        }
        if !self.cfg.starttls {
            return self.reply(Reply::new(503, "5.5.1", "STARTTLS not offered"));
        }
        self.phase = Phase::StartTls;
        Step::StartTls(Reply::new(220, "2.0.0", "Ready to start TLS"))
    }

    fn closed(&mut self) -> Step {
        Step::Close(Reply::new(421, "4.3.0", "Connection is closing"))
    }

    /// The listener called us in a phase that does not expect this event.
    /// Fail closed: never act on it, hang up.
    fn out_of_order(&mut self) -> Step {
        self.phase = Phase::Closed;
        Step::Close(Reply::new(
            421,
            "4.3.0",
            "Internal protocol error, closing connection",
        ))
    }
}

fn parse_error_reply(e: &ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::new(500, "5.5.2", "Command unrecognized"),
        ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.3", "Invalid sender address"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", "Invalid recipient address")
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid {param} parameter"))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        ParseError::NeedsMoreData { .. }
        | ParseError::ResponseTooLong
        | ParseError::InvalidResponse { .. } => Reply::new(500, "5.5.2", "Syntax error"),
    }
}

/// `552 5.3.4`, naming the credential or route whose limit it is.
fn too_large(by: Option<&str>, max: usize) -> Reply {
    match by {
        None => Reply::new(
            552,
            "5.3.4",
            "Message size exceeds fixed maximum message size",
        ),
        Some(by) => Reply::new(
            552,
            "5.3.4",
            format!("Message size exceeds the limit of {by} ({max} bytes)"),
        ),
    }
}

fn non_ascii_address() -> Reply {
    Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
}

/// Client-supplied names end up in envelopes, headers and logs: no control
/// characters, and no U+FFFD (smtp-proto's stand-in for invalid UTF-8).
fn clean_text(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
}

/// A connection that ends mid-transaction (QUIT, timeout, lost socket)
/// gives back what the transaction counted. One being spooled is not
/// released: it may be in the queue.
impl Drop for Session {
    fn drop(&mut self) {
        self.abandon_envelope();
    }
}

#[cfg(test)]
mod tests;
