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

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64;
use smtp_proto::{Error as ParseError, MailFrom, RcptTo, Request};

use super::data::{BareNewline, DataDecoder, DataOutcome};
use super::reply::Reply;

/// Per-listener settings the state machine needs; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Client-caused 5xx replies tolerated before `421 4.7.0`.
    pub max_bad_commands: u32,
    /// The listener offers STARTTLS (`tls = "starttls"`).
    pub starttls: bool,
    pub bare_newline: BareNewline,
}

/// What the session asks the access layer; implemented by the access
/// module, faked in tests.
pub trait Policy: Send + Sync {
    /// Credential name that trusts this peer by source network (no AUTH
    /// needed), if any.
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>>;
    /// Whether `credential` may use this envelope sender. `Err(reason)`
    /// becomes `550 5.7.1 <reason>`.
    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String>;
}

/// Everything needed to queue one accepted message.
pub struct Transaction {
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
        }
    }
}

/// Where the session is; anything but `Command`/`Auth` waits for the
/// listener to report back, and a command arriving then is a listener bug.
#[derive(Debug)]
enum Phase {
    Command,
    Auth(AuthWait),
    AuthVerifying,
    StartTls,
    Data,
    Queueing,
    Closed,
}

/// Which base64 line an AUTH exchange expects next.
#[derive(Debug)]
enum AuthWait {
    PlainResponse,
    LoginUsername,
    LoginPassword { username: String },
}

/// The MAIL/RCPT part of a transaction, before DATA.
struct Envelope {
    credential: Arc<str>,
    authenticated: bool,
    mail_from: String,
    rcpt_to: Vec<String>,
    body_8bit: bool,
    smtputf8: bool,
}

/// "Username:" and "Password:", the customary AUTH LOGIN prompts.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

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
    auth: Option<Arc<str>>,
    /// Credential granted by network trust at the last MAIL (for logging).
    network_credential: Option<Arc<str>>,
    envelope: Option<Envelope>,
    phase: Phase,
    bad_commands: u32,
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
            network_credential: None,
            envelope: None,
            phase: Phase::Command,
            bad_commands: 0,
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
        self.envelope = None;
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Command;
        }
    }

    /// Result of the verification asked for by [`Step::Auth`].
    pub fn auth_result(&mut self, credential: Option<Arc<str>>) -> Step {
        if !matches!(self.phase, Phase::AuthVerifying) {
            return self.out_of_order();
        }
        self.phase = Phase::Command;
        match credential {
            Some(c) => {
                self.auth = Some(c);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"))
            }
            None => self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            )),
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
        match outcome {
            DataOutcome::Message(data) => {
                self.phase = Phase::Queueing;
                Step::Queue(Box::new(Transaction {
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
            DataOutcome::TooLarge => self.reply(too_large()),
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
        match result {
            Ok(id) => Step::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {id}"))),
            Err(reply) => Step::Reply(reply),
        }
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
        DataDecoder::new(self.cfg.max_message_size, self.cfg.bare_newline)
    }

    /// The credential this session acts as: the AUTH one, else the network
    /// one used by the last MAIL.
    pub fn credential(&self) -> Option<&Arc<str>> {
        self.auth.as_ref().or(self.network_credential.as_ref())
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
        let mut owned;
        let line = if line.ends_with(b"\n") {
            line
        } else {
            owned = body.to_vec();
            owned.extend_from_slice(b"\r\n");
            &owned
        };
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => return self.reply(parse_error_reply(&e)),
        };
        match request {
            Request::Ehlo { host } => self.hello(&host, true),
            Request::Helo { host } => self.hello(&host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::StartTls => self.starttls(),
            Request::Rset => {
                self.envelope = None;
                Step::Reply(Reply::new(250, "2.0.0", "Ok"))
            }
            Request::Noop { .. } => Step::Reply(Reply::new(250, "2.0.0", "Ok")),
            Request::Vrfy { .. } => Step::Reply(Reply::new(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => Step::Reply(Reply::new(214, "2.0.0", HELP_TEXT)),
            Request::Quit => {
                self.phase = Phase::Closed;
                let host = &self.cfg.hostname;
                Step::Close(Reply::new(
                    221,
                    "2.0.0",
                    format!("{host} closing connection"),
                ))
            }
            Request::Expn { .. }
            | Request::Bdat { .. }
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
        self.envelope = None;
        self.helo = Some(host.to_string());
        let name = self.cfg.hostname.clone();
        if !extended {
            return Step::Reply(Reply::bare(250, name));
        }
        let mut lines = vec![
            name,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.cfg.max_message_size),
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
        Step::Reply(Reply::multiline(250, None, lines))
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

    fn mail(&mut self, from: MailFrom<std::borrow::Cow<'_, str>>) -> Step {
        if self.helo.is_none() {
            return self.reply(Reply::new(503, "5.5.1", "Send EHLO/HELO first"));
        }
        if self.envelope.is_some() {
            return self.reply(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        let (credential, authenticated) = if let Some(c) = &self.auth {
            (c.clone(), true)
        } else if let Some(c) = self.policy.network_credential(self.peer) {
            self.network_credential = Some(c.clone());
            (c, false)
        } else {
            let hint = if self.cfg.starttls && !self.tls {
                " (STARTTLS, then AUTH)"
            } else {
                ""
            };
            return self.reply(Reply::new(
                530,
                "5.7.0",
                format!("Authentication required{hint}"),
            ));
        };
        let address = from.address.as_ref();
        if !clean_text(address) {
            return self.reply(Reply::new(501, "5.1.7", "Invalid sender address"));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !address.is_ascii() {
            return self.reply(non_ascii_address());
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.reply(Reply::new(555, "5.5.4", "BODY=BINARYMIME not supported"));
        }
        if from.size > self.cfg.max_message_size {
            return self.reply(too_large());
        }
        if let Err(reason) = self.policy.check_sender(&credential, address) {
            return self.reply(Reply::new(550, "5.7.1", reason));
        }
        let reply = Reply::new(250, "2.1.0", format!("Sender <{address}> ok"));
        self.envelope = Some(Envelope {
            credential,
            authenticated,
            mail_from: address.to_string(),
            rcpt_to: Vec::new(),
            body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
        });
        Step::Reply(reply)
    }

    fn rcpt(&mut self, to: RcptTo<std::borrow::Cow<'_, str>>) -> Step {
        let max = self.cfg.max_recipients;
        let Some(env) = self.envelope.as_mut() else {
            return self.reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        let address = to.address.as_ref();
        // smtp-proto also maps <postmaster> to "": a relay has no local
        // postmaster to deliver to, so both are refused here.
        let refusal = if address.is_empty() {
            Some(Reply::new(
                501,
                "5.1.3",
                "Empty recipient address not allowed",
            ))
        } else if !clean_text(address) {
            Some(Reply::new(501, "5.1.3", "Invalid recipient address"))
        } else if !env.smtputf8 && !address.is_ascii() {
            Some(non_ascii_address())
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.reply(reply);
        }
        let reply = Reply::new(250, "2.1.5", format!("Recipient <{address}> ok"));
        if env.rcpt_to.iter().any(|r| r == address) {
            return Step::Reply(reply);
        }
        if env.rcpt_to.len() >= max {
            return Step::Reply(Reply::new(452, "4.5.3", "Too many recipients"));
        }
        env.rcpt_to.push(address.to_string());
        Step::Reply(reply)
    }

    fn data(&mut self) -> Step {
        match &self.envelope {
            None => self.reply(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(env) if env.rcpt_to.is_empty() => {
                self.reply(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => {
                self.phase = Phase::Data;
                Step::Data(Reply::bare(354, "End data with <CR><LF>.<CR><LF>"))
            }
        }
    }

    fn auth(&mut self, mechanism: u64, initial_response: &str) -> Step {
        let refusal = if self.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "Send EHLO first"))
        } else if !self.tls {
            Some(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ))
        } else if self.auth.is_some() {
            Some(Reply::new(503, "5.5.1", "Already authenticated"))
        } else if self.envelope.is_some() {
            Some(Reply::new(
                503,
                "5.5.1",
                "AUTH not permitted during a mail transaction",
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.reply(reply);
        }
        let initial = initial_response.trim();
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.phase = Phase::Auth(AuthWait::PlainResponse);
                Step::Reply(Reply::bare(334, ""))
            }
            smtp_proto::AUTH_PLAIN => match decode_base64(initial) {
                Ok(response) => self.plain(&response),
                Err(reply) => self.reply(reply),
            },
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.phase = Phase::Auth(AuthWait::LoginUsername);
                Step::Reply(Reply::bare(334, LOGIN_USERNAME))
            }
            smtp_proto::AUTH_LOGIN => match decode_base64(initial).and_then(utf8) {
                Ok(username) => {
                    self.phase = Phase::Auth(AuthWait::LoginPassword { username });
                    Step::Reply(Reply::bare(334, LOGIN_PASSWORD))
                }
                Err(reply) => self.reply(reply),
            },
            _ => self.reply(Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication mechanism",
            )),
        }
    }

    /// A base64 line inside an AUTH exchange (RFC 4954 §4).
    fn auth_line(&mut self, line: &[u8]) -> Step {
        let Phase::Auth(wait) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return self.out_of_order();
        };
        let text = line.trim_ascii();
        if text == b"*" {
            return self.reply(Reply::new(501, "5.7.0", "Authentication cancelled"));
        }
        let decoded = match std::str::from_utf8(text) {
            Ok(text) => decode_base64(text),
            Err(_) => Err(bad_base64()),
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(reply) => return self.reply(reply),
        };
        match wait {
            AuthWait::PlainResponse => self.plain(&decoded),
            AuthWait::LoginUsername => match utf8(decoded) {
                Ok(username) => {
                    self.phase = Phase::Auth(AuthWait::LoginPassword { username });
                    Step::Reply(Reply::bare(334, LOGIN_PASSWORD))
                }
                Err(reply) => self.reply(reply),
            },
            AuthWait::LoginPassword { username } => match utf8(decoded) {
                Ok(secret) => self.verify(username, secret),
                Err(reply) => self.reply(reply),
            },
        }
    }

    /// RFC 4616 message: authzid NUL authcid NUL passwd.
    fn plain(&mut self, response: &[u8]) -> Step {
        let mut parts = response.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.reply(Reply::new(501, "5.5.2", "Malformed PLAIN response"));
        };
        let (Ok(authzid), Ok(username), Ok(secret)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(passwd),
        ) else {
            return self.reply(Reply::new(501, "5.5.2", "Credentials are not valid UTF-8"));
        };
        // We cannot act on behalf of another identity.
        if !authzid.is_empty() && authzid != username {
            return self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        self.verify(username.to_string(), secret.to_string())
    }

    fn verify(&mut self, username: String, secret: String) -> Step {
        if username.is_empty() || secret.is_empty() || !clean_text(&username) {
            return self.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
        }
        self.phase = Phase::AuthVerifying;
        Step::Auth { username, secret }
    }

    /// Wraps a reply, counting client-caused 5xx and hanging up once the
    /// client exceeds `max_bad_commands`.
    fn reply(&mut self, reply: Reply) -> Step {
        if reply.is_permanent_failure() {
            self.bad_commands = self.bad_commands.saturating_add(1);
            if self.bad_commands > self.cfg.max_bad_commands {
                self.phase = Phase::Closed;
                let host = &self.cfg.hostname;
                return Step::Close(Reply::new(
                    421,
                    "4.7.0",
                    format!("{host} Too many errors, closing connection"),
                ));
            }
        }
        Step::Reply(reply)
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
        ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Invalid sender address"),
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

fn too_large() -> Reply {
    Reply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    )
}

fn non_ascii_address() -> Reply {
    Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
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
    String::from_utf8(bytes)
        .map_err(|_| Reply::new(501, "5.5.2", "Credentials are not valid UTF-8"))
}

/// Client-supplied names end up in envelopes, headers and logs: no control
/// characters, and no U+FFFD (smtp-proto's stand-in for invalid UTF-8).
fn clean_text(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 10, 7));
    const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

    /// Trusts TRUSTED as "scanners"; forbids senders at forbidden.example.
    struct FakePolicy;

    impl Policy for FakePolicy {
        fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
            (peer == TRUSTED).then(|| Arc::from("scanners"))
        }
        fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
            if mail_from.ends_with("@forbidden.example") {
                Err(format!(
                    "Sender <{mail_from}> not allowed for credential \"{credential}\""
                ))
            } else {
                Ok(())
            }
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "relay.example.com".into(),
            max_message_size: 1000,
            max_recipients: 2,
            max_bad_commands: 20,
            starttls: true,
            bare_newline: BareNewline::Reject,
        }
    }

    fn session_with(cfg: SessionConfig, peer: IpAddr, tls: bool) -> Session {
        Session::new(Arc::new(cfg), Arc::new(FakePolicy), peer, tls)
    }

    fn session(peer: IpAddr, tls: bool) -> Session {
        session_with(config(), peer, tls)
    }

    fn wire(step: &Step) -> String {
        let reply = match step {
            Step::Reply(r) | Step::Close(r) | Step::StartTls(r) | Step::Data(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        };
        String::from_utf8(reply.to_bytes()).expect("replies are UTF-8")
    }

    /// Sends a command and returns the written reply.
    fn send(s: &mut Session, line: &str) -> String {
        wire(&s.command(format!("{line}\r\n").as_bytes()))
    }

    fn b64(s: &[u8]) -> String {
        BASE64.encode(s)
    }

    /// EHLO + AUTH PLAIN over TLS, accepted as "erp".
    fn authenticated() -> Session {
        let mut s = session(STRANGER, true);
        send(&mut s, "EHLO client.example");
        let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0pw")).as_bytes());
        assert!(matches!(step, Step::Auth { .. }), "{step:?}");
        assert_eq!(
            wire(&s.auth_result(Some(Arc::from("erp")))),
            "235 2.7.0 Authentication successful\r\n"
        );
        s
    }

    fn queue(s: &mut Session, data: &[u8]) -> Transaction {
        assert_eq!(send(s, "DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
        let mut d = s.new_data_decoder();
        d.feed(data);
        match s.data_finished(d.finish()) {
            Step::Queue(tx) => *tx,
            other => panic!("expected Queue, got {other:?}"),
        }
    }

    #[test]
    fn greeting_and_helo_have_no_enhanced_code() {
        let mut s = session(STRANGER, false);
        assert_eq!(
            s.greeting().to_bytes(),
            b"220 relay.example.com ESMTP postern\r\n"
        );
        assert_eq!(send(&mut s, "HELO client"), "250 relay.example.com\r\n");
    }

    #[test]
    fn ehlo_before_tls_offers_starttls_not_auth() {
        let mut s = session(STRANGER, false);
        assert_eq!(
            send(&mut s, "EHLO client.example"),
            "250-relay.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
             250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
        );
        let mut plain = session_with(
            SessionConfig {
                starttls: false,
                ..config()
            },
            STRANGER,
            false,
        );
        let ehlo = send(&mut plain, "EHLO client.example");
        assert!(ehlo.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{ehlo}");
        assert!(!ehlo.contains("AUTH") && !ehlo.contains("STARTTLS"));
    }

    #[test]
    fn ehlo_over_tls_offers_auth_not_starttls() {
        let mut s = session(STRANGER, true);
        let ehlo = send(&mut s, "EHLO client.example");
        assert!(
            ehlo.ends_with("250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"),
            "{ehlo}"
        );
        assert!(!ehlo.contains("STARTTLS"));
    }

    #[test]
    fn ehlo_without_domain_or_with_garbage() {
        let mut s = session(STRANGER, false);
        assert_eq!(send(&mut s, "EHLO"), "501 5.5.4 Syntax: EHLO domain\r\n");
        assert_eq!(
            send(&mut s, "EHLO a\x01b"),
            "501 5.5.4 Invalid domain in EHLO/HELO\r\n"
        );
    }

    #[test]
    fn starttls_then_state_is_forgotten() {
        let mut s = session(TRUSTED, false);
        send(&mut s, "EHLO client.example");
        assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250 2.1.0"));
        let step = s.command(b"STARTTLS\r\n");
        assert!(matches!(step, Step::StartTls(_)));
        assert_eq!(wire(&step), "220 2.0.0 Ready to start TLS\r\n");
        s.tls_started();
        assert!(s.tls_active());
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "503 5.5.1 Send EHLO/HELO first\r\n"
        );
        send(&mut s, "EHLO client.example");
        assert!(
            send(&mut s, "RCPT TO:<b@example.com>").starts_with("503 5.5.1"),
            "transaction forgotten"
        );
        assert_eq!(send(&mut s, "STARTTLS"), "503 5.5.1 TLS already active\r\n");
        let mut off = session_with(
            SessionConfig {
                starttls: false,
                ..config()
            },
            STRANGER,
            false,
        );
        assert_eq!(
            send(&mut off, "STARTTLS"),
            "503 5.5.1 STARTTLS not offered\r\n"
        );
    }

    #[test]
    fn tls_started_forgets_authentication() {
        let mut s = authenticated();
        s.tls_started();
        assert!(!s.is_authenticated());
        assert_eq!(s.credential(), None);
    }

    #[test]
    fn auth_requires_tls_and_never_asks_for_verification_without_it() {
        let mut s = session(STRANGER, false);
        send(&mut s, "EHLO client.example");
        for line in [
            format!("AUTH PLAIN {}", b64(b"\0erp\0pw")),
            "AUTH LOGIN".into(),
            "AUTH PLAIN".into(),
        ] {
            assert_eq!(
                send(&mut s, &line),
                "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
            );
        }
    }

    #[test]
    fn auth_plain_with_initial_response() {
        let mut s = session(STRANGER, true);
        send(&mut s, "EHLO client.example");
        match s.command(format!("AUTH PLAIN {}\r\n", b64(b"erp\0erp\0s3cret")).as_bytes()) {
            Step::Auth { username, secret } => {
                assert_eq!((username.as_str(), secret.as_str()), ("erp", "s3cret"))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            s.command(b"NOOP\r\n").is_close(),
            "commands while verifying are a listener bug"
        );
    }

    #[test]
    fn auth_plain_with_challenge_and_failure() {
        let mut s = session(STRANGER, true);
        send(&mut s, "EHLO client.example");
        assert_eq!(send(&mut s, "AUTH PLAIN"), "334 \r\n");
        let step = s.command(format!("{}\r\n", b64(b"\0erp\0wrong")).as_bytes());
        assert!(matches!(&step, Step::Auth { username, .. } if username == "erp"));
        assert_eq!(
            wire(&s.auth_result(None)),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
        assert!(!s.is_authenticated());
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "530 5.7.0 Authentication required\r\n"
        );
    }

    #[test]
    fn auth_login_both_forms() {
        let mut s = session(STRANGER, true);
        send(&mut s, "EHLO client.example");
        assert_eq!(send(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
        assert_eq!(send(&mut s, &b64(b"erp")), "334 UGFzc3dvcmQ6\r\n");
        let step = s.command(format!("{}\r\n", b64(b"pw")).as_bytes());
        assert!(
            matches!(&step, Step::Auth { username, secret } if username == "erp" && secret == "pw")
        );
        s.auth_result(None);
        assert_eq!(
            send(&mut s, &format!("AUTH LOGIN {}", b64(b"erp"))),
            "334 UGFzc3dvcmQ6\r\n"
        );
        let step = s.command(format!("{}\r\n", b64(b"pw2")).as_bytes());
        assert!(matches!(&step, Step::Auth { secret, .. } if secret == "pw2"));
        assert!(s.auth_result(Some(Arc::from("erp"))).is_positive());
        assert_eq!(s.credential().map(|c| &**c), Some("erp"));
    }

    #[test]
    fn auth_errors() {
        let mut s = session(STRANGER, true);
        assert_eq!(send(&mut s, "AUTH PLAIN"), "503 5.5.1 Send EHLO first\r\n");
        send(&mut s, "EHLO client.example");
        assert_eq!(
            send(&mut s, "AUTH CRAM-MD5"),
            "504 5.5.4 Unrecognized authentication mechanism\r\n"
        );
        assert_eq!(
            send(&mut s, "AUTH PLAIN !!!notbase64"),
            "501 5.5.2 Invalid base64 data\r\n"
        );
        assert_eq!(
            send(&mut s, "AUTH PLAIN ="),
            "501 5.5.2 Malformed PLAIN response\r\n"
        );
        assert_eq!(
            send(&mut s, &format!("AUTH PLAIN {}", b64(b"boss\0erp\0pw"))),
            "535 5.7.8 Authentication credentials invalid\r\n"
        );
        send(&mut s, "AUTH LOGIN");
        assert_eq!(send(&mut s, "*"), "501 5.7.0 Authentication cancelled\r\n");
        assert_eq!(
            send(&mut s, "NOOP"),
            "250 2.0.0 Ok\r\n",
            "back to commands after cancel"
        );
        send(&mut s, "AUTH PLAIN");
        assert_eq!(send(&mut s, "%%%"), "501 5.5.2 Invalid base64 data\r\n");
        let mut s = authenticated();
        assert_eq!(
            send(&mut s, "AUTH PLAIN"),
            "503 5.5.1 Already authenticated\r\n"
        );
        let mut t = session(TRUSTED, true);
        send(&mut t, "EHLO client.example");
        send(&mut t, "MAIL FROM:<a@example.com>");
        assert_eq!(
            send(&mut t, "AUTH LOGIN"),
            "503 5.5.1 AUTH not permitted during a mail transaction\r\n"
        );
    }

    #[test]
    fn secret_never_appears_in_debug_or_replies() {
        let mut s = session(STRANGER, true);
        let mut seen = format!("{:?}", s.command(b"EHLO x\r\n"));
        seen += &format!("{:?}", s.command(b"AUTH LOGIN\r\n"));
        seen += &format!("{:?}", s.command(format!("{}\r\n", b64(b"erp")).as_bytes()));
        let step = s.command(format!("{}\r\n", b64(b"hunter2-secret")).as_bytes());
        seen += &format!("{step:?}{s:?}");
        assert!(matches!(step, Step::Auth { .. }));
        assert!(seen.contains("<redacted>"));
        assert!(
            !seen.contains("hunter2") && !seen.contains(&b64(b"hunter2-secret")),
            "{seen}"
        );
    }

    #[test]
    fn mail_needs_hello_and_a_credential() {
        let mut s = session(STRANGER, false);
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "503 5.5.1 Send EHLO/HELO first\r\n"
        );
        send(&mut s, "EHLO client.example");
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "530 5.7.0 Authentication required (STARTTLS, then AUTH)\r\n"
        );
    }

    #[test]
    fn mail_with_network_trust_and_sender_policy() {
        let mut s = session(TRUSTED, false);
        send(&mut s, "HELO scanner");
        assert_eq!(
            send(&mut s, "MAIL FROM:<x@forbidden.example>"),
            "550 5.7.1 Sender <x@forbidden.example> not allowed for credential \"scanners\"\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com> SIZE=1001"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com> FOO=bar"),
            "555 5.5.4 Unsupported parameter FOO=BAR\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com> BODY=BINARYMIME"),
            "555 5.5.4 BODY=BINARYMIME not supported\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<üser@example.com>"),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com> SIZE=1000"),
            "250 2.1.0 Sender <a@example.com> ok\r\n"
        );
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "503 5.5.1 Nested MAIL command\r\n"
        );
        assert_eq!(s.credential().map(|c| &**c), Some("scanners"));
        send(&mut s, "RCPT TO:<b@example.com>");
        let tx = queue(&mut s, b"hi\r\n.\r\n");
        assert!(!tx.authenticated && !tx.tls && !tx.body_8bit && !tx.smtputf8);
        assert_eq!((&*tx.credential, tx.helo.as_str()), ("scanners", "scanner"));
    }

    #[test]
    fn mail_flags_and_null_sender_reach_the_transaction() {
        let mut s = authenticated();
        assert_eq!(
            send(&mut s, "MAIL FROM:<> BODY=8BITMIME SMTPUTF8"),
            "250 2.1.0 Sender <> ok\r\n"
        );
        assert_eq!(
            send(&mut s, "RCPT TO:<ü@example.com>"),
            "250 2.1.5 Recipient <ü@example.com> ok\r\n"
        );
        let tx = queue(&mut s, b"Subject: x\r\n\r\n..body\r\n.\r\n");
        assert_eq!(tx.mail_from, "");
        assert_eq!(tx.rcpt_to, ["ü@example.com"]);
        assert!(tx.authenticated && tx.tls && tx.body_8bit && tx.smtputf8);
        assert_eq!(
            (&*tx.credential, tx.helo.as_str()),
            ("erp", "client.example")
        );
        assert_eq!(tx.data, b"Subject: x\r\n\r\n.body\r\n");
    }

    #[test]
    fn rcpt_rules() {
        let mut s = authenticated();
        assert_eq!(
            send(&mut s, "RCPT TO:<b@example.com>"),
            "503 5.5.1 Need MAIL command first\r\n"
        );
        send(&mut s, "MAIL FROM:<a@example.com>");
        assert_eq!(
            send(&mut s, "RCPT TO:<>"),
            "501 5.1.3 Empty recipient address not allowed\r\n"
        );
        assert_eq!(
            send(&mut s, "RCPT TO:<ü@example.com>"),
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
        );
        assert_eq!(
            send(&mut s, "RCPT TO:<b@example.com>"),
            "250 2.1.5 Recipient <b@example.com> ok\r\n"
        );
        assert_eq!(
            send(&mut s, "RCPT TO:<b@example.com>"),
            "250 2.1.5 Recipient <b@example.com> ok\r\n"
        );
        send(&mut s, "RCPT TO:<c@example.com>");
        assert_eq!(
            send(&mut s, "RCPT TO:<d@example.com>"),
            "452 4.5.3 Too many recipients\r\n"
        );
        let tx = queue(&mut s, b".\r\n");
        assert_eq!(tx.rcpt_to, ["b@example.com", "c@example.com"]);
    }

    #[test]
    fn data_needs_recipients_and_resets_after_queueing() {
        let mut s = authenticated();
        assert_eq!(
            send(&mut s, "DATA"),
            "503 5.5.1 Need MAIL command first\r\n"
        );
        send(&mut s, "MAIL FROM:<a@example.com>");
        assert_eq!(send(&mut s, "DATA"), "554 5.5.1 No valid recipients\r\n");
        send(&mut s, "RCPT TO:<b@example.com>");
        queue(&mut s, b"x\r\n.\r\n");
        assert_eq!(
            wire(&s.queued(Ok("A1B2".into()))),
            "250 2.0.0 Ok: queued as A1B2\r\n"
        );
        assert_eq!(
            send(&mut s, "RCPT TO:<b@example.com>"),
            "503 5.5.1 Need MAIL command first\r\n"
        );
        send(&mut s, "MAIL FROM:<a@example.com>");
        send(&mut s, "RCPT TO:<b@example.com>");
        queue(&mut s, b"x\r\n.\r\n");
        assert_eq!(
            wire(&s.queued(Err(Reply::new(452, "4.3.1", "Spool full")))),
            "452 4.3.1 Spool full\r\n"
        );
        assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250"));
    }

    #[test]
    fn rejected_data_resets_the_transaction() {
        let mut s = authenticated();
        for (outcome, expected) in [
            (
                DataOutcome::TooLarge,
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            ),
            (
                DataOutcome::BareNewline,
                "550 5.5.2 Message contains bare CR or LF; lines must end in CRLF\r\n",
            ),
        ] {
            send(&mut s, "MAIL FROM:<a@example.com>");
            send(&mut s, "RCPT TO:<b@example.com>");
            assert!(matches!(s.command(b"DATA\r\n"), Step::Data(_)));
            assert_eq!(wire(&s.data_finished(outcome)), expected);
            assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
        }
        assert_eq!(s.data_decoder_params(), (1000, BareNewline::Reject));
    }

    #[test]
    fn simple_commands() {
        let mut s = session(STRANGER, false);
        assert_eq!(send(&mut s, "NOOP"), "250 2.0.0 Ok\r\n");
        assert_eq!(send(&mut s, "RSET"), "250 2.0.0 Ok\r\n");
        assert!(send(&mut s, "VRFY bob").starts_with("252 2.5.0 "));
        assert!(send(&mut s, "HELP").starts_with("214 2.0.0 Supported: EHLO"));
        assert_eq!(
            send(&mut s, "EXPN staff"),
            "502 5.5.1 Command not implemented\r\n"
        );
        assert_eq!(
            send(&mut s, "BDAT 10 LAST"),
            "502 5.5.1 Command not implemented\r\n"
        );
        assert_eq!(send(&mut s, "XYZZY"), "500 5.5.2 Command unrecognized\r\n");
        assert_eq!(
            send(&mut s, "MAIL TO:<a@b>"),
            "501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]\r\n"
        );
        assert_eq!(
            send(&mut s, "NOOP\rMAIL FROM:<a@b.c>"),
            "500 5.5.2 Bare CR, LF or NUL in command\r\n"
        );
        assert_eq!(
            send(&mut s, "NO\0OP"),
            "500 5.5.2 Bare CR, LF or NUL in command\r\n"
        );
        assert_eq!(
            wire(&s.command(b"NOOP\n")),
            "250 2.0.0 Ok\r\n",
            "bare LF ends a command line"
        );
        let quit = s.command(b"QUIT\r\n");
        assert!(matches!(quit, Step::Close(_)));
        assert_eq!(
            wire(&quit),
            "221 2.0.0 relay.example.com closing connection\r\n"
        );
        assert!(s.is_closed() && s.command(b"NOOP\r\n").is_close());
    }

    #[test]
    fn rset_clears_transaction_and_ehlo_too() {
        let mut s = authenticated();
        send(&mut s, "MAIL FROM:<a@example.com>");
        send(&mut s, "RSET");
        assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
        send(&mut s, "MAIL FROM:<a@example.com>");
        send(&mut s, "EHLO again.example");
        assert!(send(&mut s, "RCPT TO:<b@example.com>").starts_with("503"));
        assert!(s.is_authenticated(), "EHLO keeps AUTH (RFC 4954)");
    }

    #[test]
    fn too_many_errors_closes() {
        let mut s = session_with(
            SessionConfig {
                max_bad_commands: 2,
                ..config()
            },
            STRANGER,
            false,
        );
        assert!(send(&mut s, "BOGUS").starts_with("500"));
        assert_eq!(wire(&s.line_too_long()), "500 5.5.2 Line too long\r\n");
        assert_eq!(
            send(&mut s, "NOOP"),
            "250 2.0.0 Ok\r\n",
            "2xx and 4xx do not count"
        );
        let step = s.command(b"BOGUS\r\n");
        assert!(matches!(step, Step::Close(_)));
        assert_eq!(
            wire(&step),
            "421 4.7.0 relay.example.com Too many errors, closing connection\r\n"
        );
    }

    #[test]
    fn timeout_and_shutdown() {
        let mut s = session(STRANGER, false);
        assert_eq!(
            s.timeout().to_bytes(),
            b"421 4.4.2 relay.example.com Timeout exceeded, closing connection\r\n"
        );
        assert!(s.is_closed());
        let mut s = session(STRANGER, false);
        assert_eq!(
            s.shutting_down().to_bytes(),
            b"421 4.3.2 relay.example.com Service shutting down, closing connection\r\n"
        );
    }

    #[test]
    fn out_of_order_events_fail_closed() {
        let mut s = session(STRANGER, false);
        send(&mut s, "EHLO x");
        assert!(s.auth_result(Some(Arc::from("erp"))).is_close());
        assert!(!s.is_authenticated());
        let mut s = session(TRUSTED, false);
        send(&mut s, "EHLO x");
        assert!(
            s.data_finished(DataOutcome::Message(b"x\r\n".to_vec()))
                .is_close()
        );
        assert!(session(TRUSTED, false).queued(Ok("X".into())).is_close());
        let mut s = authenticated();
        send(&mut s, "MAIL FROM:<a@example.com>");
        send(&mut s, "RCPT TO:<b@example.com>");
        s.command(b"DATA\r\n");
        assert!(s.data_finished(DataOutcome::Incomplete).is_close());
    }

    impl Step {
        fn is_close(&self) -> bool {
            matches!(self, Step::Close(_))
        }
        fn is_positive(&self) -> bool {
            matches!(self, Step::Reply(r) if r.is_positive())
        }
    }

    /// Drives a session the way a listener does: verification succeeds only
    /// when `auth_ok`; every DATA phase delivers a message.
    fn drive(s: &mut Session, commands: &[&[u8]], auth_ok: bool) -> Option<Transaction> {
        for line in commands {
            let mut step = s.command(line);
            loop {
                step = match step {
                    Step::Reply(ref r)
                    | Step::Close(ref r)
                    | Step::StartTls(ref r)
                    | Step::Data(ref r) => {
                        let bytes = r.to_bytes();
                        let extension_lines = r.code == 250 && r.enhanced.is_none();
                        let exempt = extension_lines || (300..400).contains(&r.code);
                        assert!(exempt || r.enhanced.is_some(), "no enhanced code: {r:?}");
                        assert!(bytes.ends_with(b"\r\n"));
                        match step {
                            Step::StartTls(_) => s.tls_started(),
                            Step::Data(_) => {
                                step = s.data_finished(DataOutcome::Message(b"x\r\n".to_vec()));
                                continue;
                            }
                            Step::Close(_) => return None,
                            _ => {}
                        }
                        break;
                    }
                    Step::Auth { .. } => {
                        assert!(s.tls_active(), "Step::Auth without TLS");
                        s.auth_result(auth_ok.then(|| Arc::from("erp")))
                    }
                    Step::Queue(tx) => return Some(*tx),
                };
            }
        }
        None
    }

    #[test]
    fn no_command_order_reaches_queue_without_a_credential() {
        let plain = format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0pw"));
        let user = format!("{}\r\n", b64(b"erp"));
        let alphabet: Vec<&[u8]> = vec![
            b"EHLO x\r\n",
            b"HELO x\r\n",
            b"STARTTLS\r\n",
            plain.as_bytes(),
            b"AUTH LOGIN\r\n",
            user.as_bytes(),
            b"MAIL FROM:<a@example.com>\r\n",
            b"MAIL FROM:<>\r\n",
            b"RCPT TO:<b@example.com>\r\n",
            b"DATA\r\n",
            b"RSET\r\n",
            b"*\r\n",
        ];
        let n = alphabet.len();
        let try_all = |cmds: &[&[u8]]| {
            for (starttls, tls) in [(true, false), (false, false), (false, true)] {
                let cfg = SessionConfig {
                    starttls,
                    max_bad_commands: u32::MAX,
                    ..config()
                };
                // Failed AUTH everywhere; successful AUTH impossible without TLS.
                let mut s = session_with(cfg.clone(), STRANGER, tls);
                assert!(
                    drive(&mut s, cmds, false).is_none(),
                    "open relay via {cmds:?}"
                );
                if !starttls && !tls {
                    let mut s = session_with(cfg, STRANGER, tls);
                    assert!(
                        drive(&mut s, cmds, true).is_none(),
                        "relay without TLS via {cmds:?}"
                    );
                }
            }
        };
        for len in 1..=4u32 {
            for mut code in 0..n.pow(len) {
                let cmds: Vec<&[u8]> = (0..len)
                    .map(|_| {
                        let c = alphabet[code % n];
                        code /= n;
                        c
                    })
                    .collect();
                try_all(&cmds);
            }
        }
        // Longer random orders (deterministic xorshift).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let cmds: Vec<&[u8]> = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % n as u64) as usize]
                })
                .collect();
            try_all(&cmds);
        }
        // Controls: the same driver does reach Queue with a real credential.
        let mut s = session(TRUSTED, false);
        let cmds: [&[u8]; 4] = [
            b"EHLO x\r\n",
            b"MAIL FROM:<a@example.com>\r\n",
            b"RCPT TO:<b@example.com>\r\n",
            b"DATA\r\n",
        ];
        assert!(drive(&mut s, &cmds, false).is_some());
        let mut s = session(STRANGER, false);
        let cmds = [
            b"EHLO x\r\n" as &[u8],
            b"STARTTLS\r\n",
            b"EHLO x\r\n",
            plain.as_bytes(),
            cmds[1],
            cmds[2],
            cmds[3],
        ];
        assert!(drive(&mut s, &cmds, true).is_some_and(|tx| tx.authenticated && tx.tls));
    }
}
