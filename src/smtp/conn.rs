//! One SMTP connection: moves bytes between the socket and the session.
//!
//! The session (`session.rs`) decides what to answer; this handler owns the
//! I/O it cannot do: reading lines within the length limit, timeouts, the
//! STARTTLS upgrade, streaming DATA through the decoder, password checks and
//! spooling. Replies to pipelined commands are written in one batch when the
//! client has nothing more buffered (RFC 2920).
//!
//! Every wait has a bound, so no client can hold a connection slot forever:
//! reads (`command_timeout`, `data_timeout`), every write (`write_timeout`:
//! a client that pipelines and never reads), TLS handshakes
//! (`tls_handshake_timeout`) and the session as a whole
//! (`max_session_duration`).

use super::data::DataDecoder;
use super::listener::{Generation, Shared};
use super::reply::Reply;
use super::session::{Session, Step};
use super::stream::Stream;
use crate::observe::{audit, metrics};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Read size while the client streams (DATA): a read that filled the
/// last chunk asks for this much next.
const READ_CHUNK: usize = 16 * 1024;
/// Read size for commands. An idle connection waits in a read, so this
/// (not READ_CHUNK) is what each of thousands of idle connections holds;
/// the buffer is reserved, not zeroed, so untouched pages cost nothing.
const COMMAND_CHUNK: usize = 1024;

/// What to do after a step was carried out.
enum Flow {
    Continue,
    Close,
}

/// What waiting for more input brought.
enum Read {
    Data,
    Eof,
    /// The read timeout passed without input.
    Idle,
    /// `max_session_duration` is over.
    Expired,
}

/// Per-connection state; exists so the step handlers can share buffers.
pub struct Conn {
    shared: Arc<Shared>,
    /// The configuration this connection started under: its timeouts,
    /// line limit and TLS certificate. Policy comes from `shared.current()`.
    generation: Arc<Generation>,
    peer: SocketAddr,
    /// The listener address, as metrics label it.
    listener: Arc<str>,
    /// This session's id in the audit trail.
    session_id: Arc<str>,
    /// What the client's last input was (`mail`, `rcpt`, `data`, ...), for
    /// the audit event of a refusal.
    stage: &'static str,
    /// The queue id of the message last handed to the sink.
    queued_id: Option<String>,
    stream: Stream,
    session: Session,
    rbuf: Vec<u8>,
    /// The last read filled its chunk: the client is streaming.
    streaming: bool,
    wbuf: Vec<u8>,
    /// Set after an over-long line until its end is seen.
    discarding: bool,
    /// End of `max_session_duration`; None when too far away to represent.
    deadline: Option<Instant>,
}

impl Conn {
    pub async fn run(
        shared: Arc<Shared>,
        socket: TcpStream,
        peer: SocketAddr,
        listener: &Arc<str>,
        implicit_tls: bool,
        starttls: bool,
        mut shutdown: broadcast::Receiver<()>,
    ) -> io::Result<()> {
        let _ = socket.set_nodelay(true);
        let generation = shared.current();
        let deadline = Instant::now().checked_add(generation.max_session_duration);
        let stream = if implicit_tls {
            let acceptor = generation
                .tls
                .clone()
                .ok_or_else(|| io::Error::other("no TLS configured"))?;
            let tls = handshake(&acceptor, socket, &generation, peer, listener).await?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(socket)
        };
        let cfg = if starttls {
            generation.session_starttls.clone()
        } else {
            generation.session_plain.clone()
        };
        let policy: Arc<dyn super::session::Policy> = shared.clone();
        let session = Session::new(cfg, policy, peer.ip(), implicit_tls);
        let mut conn = Conn {
            shared,
            generation,
            peer,
            listener: Arc::clone(listener),
            session_id: Arc::from(audit::new_session_id()),
            stage: "connect",
            queued_id: None,
            stream,
            session,
            rbuf: Vec::new(),
            streaming: false,
            wbuf: Vec::with_capacity(1024),
            discarding: false,
            deadline,
        };
        conn.audit_connection("connection");
        conn.session.greeting().write_to(&mut conn.wbuf);
        conn.flush().await?;
        conn.serve(&mut shutdown).await?;
        // TLS close_notify is a write too.
        let _ = timeout(conn.generation.write_timeout, conn.stream.shutdown()).await;
        Ok(())
    }

    /// Writes what is buffered within `write_timeout`, or gives up on the
    /// connection: a client that does not read its replies would otherwise
    /// hold this task and its slot for good.
    async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let (stream, wbuf) = (&mut self.stream, &self.wbuf);
        let write = async {
            stream.write_all(wbuf).await?;
            stream.flush().await
        };
        let limit = self.generation.write_timeout;
        match timeout(limit, write).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::warn!(
                    peer = %self.peer,
                    pending = self.wbuf.len(),
                    timeout = ?limit,
                    "closing connection: write timed out (the client does not read its replies)"
                );
                return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
            }
        }
        self.wbuf.clear();
        Ok(())
    }

    async fn reply_and_close(&mut self, reply: Reply) -> io::Result<()> {
        reply.write_to(&mut self.wbuf);
        self.flush().await
    }

    /// Reads more bytes, waiting at most `limit` and never past the
    /// session's deadline (checked first, so a client that always has
    /// input buffered still meets it).
    async fn fill(&mut self, limit: std::time::Duration) -> io::Result<Read> {
        let remaining = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            return Ok(Read::Expired);
        }
        let expires = remaining.is_some_and(|r| r <= limit);
        let wait = remaining.map_or(limit, |r| r.min(limit));
        let chunk = if self.streaming {
            READ_CHUNK
        } else {
            COMMAND_CHUNK
        };
        if self.rbuf.is_empty() && self.rbuf.capacity() > 4 * READ_CHUNK {
            // Give back what a large DATA grew before the next idle wait.
            self.rbuf = Vec::new();
        }
        self.rbuf.reserve(chunk);
        let res = timeout(
            wait,
            (&mut self.stream)
                .take(chunk as u64)
                .read_buf(&mut self.rbuf),
        )
        .await;
        match res {
            Err(_) => Ok(if expires { Read::Expired } else { Read::Idle }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(n)) => {
                self.streaming = n == chunk;
                Ok(if n > 0 { Read::Data } else { Read::Eof })
            }
        }
    }

    /// The 421 for a read that ended the session (idle or expired).
    fn ended(&mut self, read: &Read) -> Reply {
        if matches!(read, Read::Expired) {
            tracing::info!(
                peer = %self.peer,
                limit = ?self.generation.max_session_duration,
                "closing connection: max_session_duration reached"
            );
            self.session.expired()
        } else {
            self.session.timeout()
        }
    }

    async fn serve(&mut self, shutdown: &mut broadcast::Receiver<()>) -> io::Result<()> {
        loop {
            // Answer every complete command already buffered.
            while let Some(step) = self.next_command() {
                if let Flow::Close = self.carry_out(step).await? {
                    return self.flush().await;
                }
            }
            self.flush().await?;
            let read = tokio::select! {
                r = self.fill(self.generation.command_timeout) => r?,
                _ = shutdown.recv() => {
                    let r = self.session.shutting_down();
                    return self.reply_and_close(r).await;
                }
            };
            match read {
                Read::Idle | Read::Expired => {
                    let r = self.ended(&read);
                    return self.reply_and_close(r).await;
                }
                Read::Eof => return Ok(()),
                Read::Data => {}
            }
        }
    }

    /// Splits one command line off the read buffer, enforcing the limit.
    fn next_command(&mut self) -> Option<Step> {
        let max = self.generation.max_line_length;
        loop {
            let nl = self.rbuf.iter().position(|&b| b == b'\n');
            if self.discarding {
                match nl {
                    Some(i) => {
                        self.rbuf.drain(..=i);
                        self.discarding = false;
                        continue;
                    }
                    None => {
                        self.rbuf.clear();
                        return None;
                    }
                }
            }
            return match nl {
                Some(i) if i < max => {
                    let line: Vec<u8> = self.rbuf.drain(..=i).collect();
                    self.stage = stage_of(&line);
                    Some(self.session.command(&line))
                }
                Some(i) => {
                    self.rbuf.drain(..=i);
                    Some(self.session.line_too_long())
                }
                None if self.rbuf.len() >= max => {
                    self.rbuf.clear();
                    self.discarding = true;
                    Some(self.session.line_too_long())
                }
                None => None,
            };
        }
    }

    async fn carry_out(&mut self, mut step: Step) -> io::Result<Flow> {
        loop {
            step = match step {
                Step::Reply(r) => {
                    self.audit_refusal(&r);
                    r.write_to(&mut self.wbuf);
                    return Ok(Flow::Continue);
                }
                Step::Close(r) => {
                    self.audit_refusal(&r);
                    if r.code == 421 {
                        tracing::info!(peer = %self.peer, reply = %r, "closing connection");
                    }
                    r.write_to(&mut self.wbuf);
                    return Ok(Flow::Close);
                }
                Step::StartTls(r) => {
                    r.write_to(&mut self.wbuf);
                    self.flush().await?;
                    self.start_tls().await?;
                    return Ok(Flow::Continue);
                }
                Step::Auth { username, secret } => {
                    let access = self.shared.current().access.clone();
                    let result = access
                        .authenticate(&username, &secret, self.peer.ip())
                        .await;
                    let outcome = match &result {
                        Ok(_) => "success",
                        Err(d) => d.kind(),
                    };
                    metrics::auth(outcome);
                    self.stage = "auth";
                    match &result {
                        Ok(grant) => tracing::info!(
                            target: audit::TARGET,
                            event = "auth",
                            session = %self.session_id,
                            client_ip = %self.peer.ip(),
                            credential = %grant.credential,
                            result = outcome,
                            "AUTH succeeded"
                        ),
                        Err(denied) => {
                            if matches!(denied, crate::access::Denied::InvalidCredentials) {
                                crate::alerts::auth_failed(
                                    &access.client_key(self.peer.ip()).to_string(),
                                    &access.username_for_log(&username),
                                );
                            }
                            tracing::info!(
                            target: audit::TARGET,
                            event = "auth",
                            session = %self.session_id,
                            client_ip = %self.peer.ip(),
                            username = %access.username_for_log(&username),
                            result = outcome,
                            "AUTH failed"
                            );
                        }
                    }
                    let result = result.map_err(|d| d.auth_reply());
                    self.session.auth_result(result)
                }
                Step::Data(r) => {
                    r.write_to(&mut self.wbuf);
                    self.flush().await?;
                    let decoder = self.session.new_data_decoder();
                    match self.receive_data(decoder).await? {
                        Ok(outcome) => {
                            self.stage = "data";
                            self.session.data_finished(outcome)
                        }
                        Err(r) => {
                            r.write_to(&mut self.wbuf);
                            return Ok(Flow::Close);
                        }
                    }
                }
                Step::CheckRecipient { address } => {
                    let validator = self.shared.current().validator.clone();
                    let result = validator.check_recipient(&address).await;
                    self.session.recipient_checked(result)
                }
                Step::AdmitMessage {
                    credential,
                    mail_from,
                } => {
                    let access = self.shared.current().access.clone();
                    let result = access
                        .admit_shared(&credential, &mail_from, self.peer.ip(), false)
                        .await;
                    self.session.message_admitted(result.map_err(|d| d.reply()))
                }
                Step::AdmitRecipient {
                    credential,
                    mail_from,
                } => {
                    let access = self.shared.current().access.clone();
                    let result = access
                        .admit_shared(&credential, &mail_from, self.peer.ip(), true)
                        .await;
                    self.session
                        .recipient_admitted(result.map_err(|d| d.reply()))
                }
                Step::Queue(mut tx) => {
                    tx.session = Arc::clone(&self.session_id);
                    self.queued_id = Some(tx.id.clone());
                    let sink = self.shared.current().sink.clone();
                    let result = sink.accept(*tx, self.peer).await;
                    self.session.queued(result)
                }
            };
        }
    }

    /// CVE-2011-0411: whatever the client pipelined after STARTTLS was sent
    /// in clear text and must not be executed inside the TLS session.
    async fn start_tls(&mut self) -> io::Result<()> {
        self.rbuf.clear();
        let Some(acceptor) = self.generation.tls.clone() else {
            return Err(io::Error::other("STARTTLS without TLS configuration"));
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Detached) else {
            return Err(io::Error::other(
                "STARTTLS on a stream that is not plain TCP",
            ));
        };
        let tls = handshake(&acceptor, tcp, &self.generation, self.peer, &self.listener).await?;
        self.stream = Stream::Tls(Box::new(tls));
        self.session.tls_started();
        self.audit_connection("tls");
        Ok(())
    }

    /// The `connection` event (at the greeting: TLS already up on an
    /// implicit-TLS listener) or the `tls` event after STARTTLS.
    fn audit_connection(&self, event: &'static str) {
        let (version, cipher) = match &self.stream {
            Stream::Tls(t) => {
                let c = t.get_ref().1;
                (
                    c.protocol_version()
                        .and_then(|v| v.as_str())
                        .unwrap_or("unknown"),
                    c.negotiated_cipher_suite()
                        .and_then(|s| s.suite().as_str())
                        .unwrap_or("unknown"),
                )
            }
            _ => ("none", "none"),
        };
        tracing::info!(
            target: audit::TARGET,
            event,
            session = %self.session_id,
            client_ip = %self.peer.ip(),
            listener = %self.listener,
            tls = version,
            cipher,
            "{}",
            if event == "tls" { "TLS started" } else { "connection" }
        );
    }

    /// The `refused` event for a negative reply to the client.
    fn audit_refusal(&self, r: &Reply) {
        if r.code < 400 {
            return;
        }
        let queue_id = self
            .session
            .queue_id()
            .or(self.queued_id.as_deref().filter(|_| self.stage == "data"))
            .unwrap_or("");
        // A reply to AUTH may quote the username, and people type
        // passwords there: its code says enough.
        let reply = if self.stage == "auth" {
            format!("{} {}", r.code, r.enhanced.as_deref().unwrap_or(""))
        } else {
            r.to_string()
        };
        if let Some(rule) = r.rule {
            crate::observe::metrics::refused(self.stage, rule);
        }
        tracing::info!(
            target: audit::TARGET,
            event = "refused",
            session = %self.session_id,
            client_ip = %self.peer.ip(),
            queue_id,
            stage = self.stage,
            rule = r.rule.unwrap_or(""),
            reply = %reply,
            "refused"
        );
    }

    /// Streams DATA through the decoder; Err is the 421 to close with
    /// (idle too long, or the session is over).
    async fn receive_data(
        &mut self,
        mut decoder: DataDecoder,
    ) -> io::Result<Result<super::data::DataOutcome, Reply>> {
        loop {
            let used = decoder.feed(&self.rbuf);
            self.rbuf.drain(..used);
            if decoder.is_done() {
                return Ok(Ok(decoder.finish()));
            }
            match self.fill(self.generation.data_timeout).await? {
                read @ (Read::Idle | Read::Expired) => return Ok(Err(self.ended(&read))),
                Read::Eof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed during DATA",
                    ));
                }
                Read::Data => {}
            }
        }
    }
}

/// A TLS handshake (implicit or after STARTTLS), its reads and writes
/// bounded by `tls_handshake_timeout`: a client that connects and says
/// nothing holds its slot no longer than that.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    generation: &Generation,
    peer: SocketAddr,
    listener: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let limit = generation.tls_handshake_timeout;
    match timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            metrics::tls_handshake(tls.get_ref().1.protocol_version());
            Ok(tls)
        }
        Ok(Err(e)) => {
            metrics::tls_handshake_failed(listener);
            Err(e)
        }
        Err(_) => {
            metrics::tls_handshake_failed(listener);
            tracing::info!(peer = %peer, timeout = ?limit, "closing connection: TLS handshake timed out");
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ))
        }
    }
}

/// The command a line starts with, as the audit trail names the stage.
fn stage_of(line: &[u8]) -> &'static str {
    let verb = line
        .split(|b| *b == b' ' || *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    const VERBS: [(&str, &str); 13] = [
        ("EHLO", "ehlo"),
        ("HELO", "helo"),
        ("STARTTLS", "starttls"),
        ("AUTH", "auth"),
        ("MAIL", "mail"),
        ("RCPT", "rcpt"),
        ("DATA", "data"),
        ("BDAT", "data"),
        ("RSET", "rset"),
        ("NOOP", "noop"),
        ("QUIT", "quit"),
        ("VRFY", "vrfy"),
        ("EXPN", "expn"),
    ];
    VERBS
        .iter()
        .find(|(v, _)| verb.eq_ignore_ascii_case(v.as_bytes()))
        .map_or("other", |(_, s)| s)
}
