//! Accepting connections: TCP listeners, connection limits, shutdown.
//!
//! Follows the Listener / Handler / Shutdown shape of tokio's mini-redis: a
//! semaphore bounds total connections, a per-IP counter bounds any one
//! client, a broadcast channel tells every connection to wind down, and
//! each connection is its own task (`conn.rs`).
//!
//! A listener behind a load balancer (`proxy_protocol = true`) admits only
//! its trusted proxies, reads the PROXY header first (within
//! `tls_handshake_timeout`, before any TLS) and runs the per-client checks
//! and the whole session with the client address the header names.

use super::conn::Conn;
use super::reply::Reply;
use super::session::{CredentialLimits, Grant, Policy, SessionConfig, Transaction};
use crate::access::Access;
use crate::access::ConnectionRate;
use crate::cluster::proxy::{self, Trusted};
use crate::config::{Config, TlsMode};
use crate::observe::{audit, metrics};
use crate::quota::ClientKey;
use crate::validate::{Address, Validator};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Where accepted messages go. Implemented by the daemon's wiring (spool);
/// keeps the SMTP side ignorant of storage. Ok is the queue id, Err the
/// reply that refuses the message (452 4.3.1 for storage trouble, 5xx for
/// a policy rejection found while inspecting it).
pub trait MessageSink: Send + Sync + 'static {
    fn accept<'a>(
        &'a self,
        tx: Transaction,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Result<String, Reply>> + Send + 'a>>;

    /// Whether there is room to store a message of `size` bytes (0: not
    /// announced), asked at MAIL. `Err` is the whole reply (452 4.3.1).
    fn check_room(&self, _size: u64) -> Result<(), Reply> {
        Ok(())
    }
}

/// Everything derived from one configuration. A reload builds a new one
/// and swaps it in; a connection reads the current one whenever it needs
/// policy (AUTH, MAIL, queueing), so existing sessions follow the new
/// rules at their next command while timeouts and TLS stay as they began.
pub struct Generation {
    pub session_starttls: Arc<SessionConfig>,
    pub session_plain: Arc<SessionConfig>,
    pub access: Arc<Access>,
    pub tls: Option<TlsAcceptor>,
    pub sink: Arc<dyn MessageSink>,
    /// `[validation]` checks that need I/O (recipient DNS, hook).
    pub validator: Arc<Validator>,
    pub max_line_length: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Bounds every write, so a client that stops reading cannot hold
    /// its connection (and its task) forever.
    pub write_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_session_duration: Duration,
    max_per_ip: usize,
}

impl Generation {
    pub fn new(
        config: &Config,
        access: Arc<Access>,
        tls: Option<Arc<rustls::ServerConfig>>,
        sink: Arc<dyn MessageSink>,
    ) -> Generation {
        let s = &config.server;
        let validator = Arc::new(Validator::new(&config.validation));
        let base = |starttls| {
            Arc::new(SessionConfig {
                hostname: s.hostname.clone(),
                max_message_size: usize::try_from(s.max_message_size).unwrap_or(usize::MAX),
                max_recipients: s.max_recipients,
                max_bad_commands: s.max_bad_commands,
                max_junk_commands: s.max_junk_commands,
                max_rcpt_commands: s.max_rcpt_commands,
                starttls,
                bare_newline: s.bare_newline,
                max_auth_attempts: config
                    .abuse
                    .max_auth_attempts_per_connection
                    .map(|n| n.get()),
                validation: validator.rules(),
            })
        };
        Generation {
            session_starttls: base(true),
            session_plain: base(false),
            access,
            tls: tls.map(TlsAcceptor::from),
            sink,
            validator,
            max_line_length: s.max_line_length,
            command_timeout: s.command_timeout,
            data_timeout: s.data_timeout,
            write_timeout: s.write_timeout,
            tls_handshake_timeout: s.tls_handshake_timeout,
            max_session_duration: s.max_session_duration,
            max_per_ip: s.max_connections_per_ip,
        }
    }
}

/// State every connection of every listener shares.
pub struct Shared {
    current: RwLock<Arc<Generation>>,
    /// `[abuse] connections_per_ip_per_minute`; daemon-owned so its counts
    /// survive a reload.
    conn_rate: Option<Arc<ConnectionRate>>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    /// Open connections per client network (`max_connections_per_ip`).
    per_ip: Mutex<HashMap<ClientKey, usize>>,
}

impl Shared {
    /// `max_connections` is fixed for the process (a reload that changes
    /// it is reported as needing a restart).
    pub fn new(
        generation: Generation,
        max_connections: usize,
        conn_rate: Option<Arc<ConnectionRate>>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            current: RwLock::new(Arc::new(generation)),
            conn_rate,
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// SMTP connections open now.
    pub fn open_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.connections.available_permits())
    }

    /// The configuration generation in force now.
    pub fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a reloaded configuration in force.
    pub fn replace(&self, generation: Generation) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(generation);
    }

    /// Reserves a slot for the client network `ip` is in; None when it
    /// already has too many.
    fn enter(self: &Arc<Self>, generation: &Generation, ip: IpAddr) -> Option<IpSlot> {
        let max = generation.max_per_ip;
        let ip = generation.access.client_key(ip);
        let mut map = self.per_ip.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            shared: Arc::clone(self),
            ip,
        })
    }
}

/// Sessions ask the generation in force at the time of each command, so a
/// reload reaches them at their next MAIL.
impl Policy for Shared {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        self.current().access.network_credential(peer)
    }
    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        self.current().access.check_sender(credential, mail_from)
    }
    fn admit_message(&self, credential: &str, mail_from: &str, peer: IpAddr) -> Result<(), Reply> {
        Policy::admit_message(&*self.current().access, credential, mail_from, peer)
    }
    fn admit_recipient(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), Reply> {
        Policy::admit_recipient(&*self.current().access, credential, mail_from, peer)
    }
    fn shared_quotas(&self) -> bool {
        self.current().access.shared_quotas()
    }
    fn release(&self, credential: &str, mail_from: &str, peer: IpAddr, recipients: u32) {
        Policy::release(
            &*self.current().access,
            credential,
            mail_from,
            peer,
            recipients,
        )
    }
    fn check_login(&self, grant: &Grant, peer: IpAddr) -> Result<(), Reply> {
        Policy::check_login(&*self.current().access, grant, peer)
    }
    fn check_storage(&self, size: u64) -> Result<(), Reply> {
        self.current().sink.check_room(size)
    }
    fn check_suspended(&self, credential: &str) -> Result<(), Reply> {
        Policy::check_suspended(&*self.current().access, credential)
    }
    fn limits(&self, credential: &str) -> CredentialLimits {
        self.current().access.limits(credential)
    }
    fn check_recipient(&self, credential: &str, rcpt: &Address) -> Result<(), Reply> {
        Policy::check_recipient(&*self.current().access, credential, rcpt)
    }
}

/// Releases a per-IP connection slot when the connection ends.
struct IpSlot {
    shared: Arc<Shared>,
    ip: ClientKey,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_ip.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A bound listening socket, its TLS mode and, behind a load balancer,
/// the proxies whose PROXY header it believes.
pub struct Bound {
    pub listener: TcpListener,
    pub tls: TlsMode,
    pub address: SocketAddr,
    pub proxy: Option<Arc<Trusted>>,
}

/// How one listener treats its connections.
#[derive(Clone)]
struct Mode {
    tls: TlsMode,
    name: Arc<str>,
    proxy: Option<Arc<Trusted>>,
}

/// A listening TCP socket the service manager opened for us (systemd
/// socket activation, `LISTEN_FDS`), with its address (getsockname) and
/// the name systemd gave it (`FileDescriptorName=`).
#[derive(Debug)]
pub struct Inherited {
    pub listener: std::net::TcpListener,
    pub address: SocketAddr,
    pub name: String,
}

/// Binds every configured listener up front so a port conflict fails the
/// start instead of a background task. A listener whose address equals an
/// inherited socket's takes that socket instead of binding (so connections
/// that arrived while postern restarted wait in its backlog rather than
/// being refused); inherited sockets no listener claims are closed with a
/// warning.
pub async fn bind(config: &Config, mut inherited: Vec<Inherited>) -> std::io::Result<Vec<Bound>> {
    let mut out = Vec::new();
    for l in &config.listeners {
        let listener = match inherited.iter().position(|i| i.address == l.address) {
            Some(i) => {
                let passed = inherited.swap_remove(i);
                passed.listener.set_nonblocking(true)?;
                tracing::info!(address = %l.address, name = %passed.name, "using the listening socket passed by systemd");
                TcpListener::from_std(passed.listener)?
            }
            None => TcpListener::bind(l.address).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.address))
            })?,
        };
        out.push(Bound {
            address: listener.local_addr()?,
            listener,
            tls: l.tls,
            proxy: l.proxy.clone(),
        });
    }
    for unused in inherited {
        tracing::warn!(
            address = %unused.address,
            name = %unused.name,
            "systemd passed a listening socket that matches no [[listeners]] address; closing it (align ListenStream= in postern.socket with the configuration)"
        );
    }
    Ok(out)
}

/// Runs every listener until `shutdown` fires, then waits (up to `grace`)
/// for open sessions to finish.
pub async fn serve(
    shared: Arc<Shared>,
    bound: Vec<Bound>,
    shutdown: broadcast::Sender<()>,
    grace: Duration,
) {
    let mut conns = JoinSet::new();
    let mut accepting = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, Mode)>(64);
    for b in bound {
        tracing::info!(address = %b.address, tls = ?b.tls, proxy_protocol = b.proxy.is_some(), "listening");
        let tx = conn_tx.clone();
        let mode = Mode {
            tls: b.tls,
            name: Arc::from(b.address.to_string()),
            proxy: b.proxy.clone(),
        };
        let mut stop = shutdown.subscribe();
        accepting.spawn(async move {
            loop {
                tokio::select! {
                    r = b.listener.accept() => match r {
                        Ok((sock, peer)) => { if tx.send((sock, peer, mode.clone())).await.is_err() { break; } }
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::error!(address = %b.address, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    _ = stop.recv() => break,
                }
            }
        });
    }
    drop(conn_tx);
    let mut stop = shutdown.subscribe();
    loop {
        tokio::select! {
            got = conn_rx.recv() => {
                let Some((sock, peer, mode)) = got else { break };
                admit(&shared, &mut conns, sock, peer, mode, &shutdown);
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.recv() => break,
        }
    }
    accepting.shutdown().await;
    let open = conns.len();
    if open > 0 {
        tracing::info!(open, "waiting for open sessions to finish");
    }
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            "shutdown deadline reached; closing remaining sessions"
        );
        conns.shutdown().await;
    }
}

fn admit(
    shared: &Arc<Shared>,
    conns: &mut JoinSet<()>,
    sock: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    shutdown: &broadcast::Sender<()>,
) {
    if let Some(trusted) = &mode.proxy {
        // Behind a load balancer the peer is the proxy: only the proxies
        // may connect, and the per-client checks wait for the header.
        if !trusted.contains(peer.ip()) {
            proxy_refused(
                peer,
                &mode.name,
                "untrusted",
                "connection from an address not in trusted_proxies",
            );
            return;
        }
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "connection refused: too many connections");
            metrics::connection_refused("too_many");
            refuse(conns, sock, TOO_MANY.to_string(), shared);
            return;
        };
        let shared = Arc::clone(shared);
        let rx = shutdown.subscribe();
        conns.spawn(async move {
            let mut sock = sock;
            let limit = shared.current().tls_handshake_timeout;
            let client = match proxy::read_header(&mut sock, limit).await {
                Ok(client) => client.unwrap_or(peer),
                Err(e) => {
                    proxy_refused(peer, &mode.name, e.kind(), &e.to_string());
                    return;
                }
            };
            let generation = shared.current();
            let slot = match client_checks(&shared, &generation, client) {
                Ok(slot) => slot,
                Err(line) => {
                    write_and_close(sock, line, generation.write_timeout).await;
                    return;
                }
            };
            run(shared, sock, client, mode, permit, slot, rx).await;
        });
        return;
    }
    let generation = shared.current();
    let slot = match client_checks(shared, &generation, peer) {
        Ok(slot) => slot,
        Err(line) => {
            refuse(conns, sock, line, shared);
            return;
        }
    };
    let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
        tracing::warn!(peer = %peer, "connection refused: too many connections");
        metrics::connection_refused("too_many");
        refuse(conns, sock, TOO_MANY.to_string(), shared);
        return;
    };
    let shared = Arc::clone(shared);
    let rx = shutdown.subscribe();
    conns.spawn(run(shared, sock, peer, mode, permit, slot, rx));
}

const TOO_MANY: &str = "421 4.7.0 Too many connections, try again later\r\n";

/// The per-client admission checks (connection rate, connections per IP)
/// for the client at `client`: the peer, or the address a PROXY header
/// named. Err is the line to refuse with.
fn client_checks(
    shared: &Arc<Shared>,
    generation: &Generation,
    client: SocketAddr,
) -> Result<IpSlot, String> {
    // Trusted and known clients (a batch job that connects per message)
    // are bounded only by max_connections_per_ip below.
    let rate = shared
        .conn_rate
        .as_ref()
        .filter(|_| !generation.access.trusted_or_known(client.ip()));
    if let Some(Err(refusal)) = rate.map(|r| r.check(generation.access.client_key(client.ip()))) {
        tracing::warn!(peer = %client, key = %refusal.key, rule = "abuse.connections_per_ip_per_minute", "connection refused: connection rate");
        metrics::connection_refused("rate");
        return Err(format!("421 4.7.0 {refusal}\r\n"));
    }
    shared.enter(generation, client.ip()).ok_or_else(|| {
        tracing::warn!(peer = %client, "connection refused: too many connections");
        metrics::connection_refused("too_many");
        TOO_MANY.to_string()
    })
}

/// One admitted connection, holding its slots until it ends.
async fn run(
    shared: Arc<Shared>,
    sock: TcpStream,
    client: SocketAddr,
    mode: Mode,
    permit: tokio::sync::OwnedSemaphorePermit,
    slot: IpSlot,
    rx: broadcast::Receiver<()>,
) {
    let _permit = permit;
    let _slot = slot;
    metrics::connection_opened(&mode.name);
    let implicit = mode.tls == TlsMode::Implicit;
    let starttls = mode.tls == TlsMode::Starttls;
    let ended = Conn::run(shared, sock, client, &mode.name, implicit, starttls, rx).await;
    metrics::connection_closed(&mode.name);
    if let Err(e) = ended {
        tracing::debug!(peer = %client, error = %e, "connection ended with error");
    }
}

/// A connection closed for its PROXY header (or its absence): a warning
/// for the operator and the audit event `proxy_refused`. Nothing is
/// written back: whoever sent no valid header is not speaking to us.
fn proxy_refused(peer: SocketAddr, listener: &str, reason: &'static str, detail: &str) {
    metrics::connection_refused("proxy");
    tracing::warn!(peer = %peer, listener, reason, "connection closed: {detail}");
    tracing::info!(
        target: audit::TARGET,
        event = "proxy_refused",
        proxy_ip = %peer.ip(),
        listener,
        reason,
        "PROXY header refused"
    );
}

async fn write_and_close(mut sock: TcpStream, line: String, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        let _ = sock.write_all(line.as_bytes()).await;
        let _ = sock.shutdown().await;
    })
    .await;
}

/// Answers a refused connection and closes it. Plain text even on an
/// implicit-TLS port: the client gets no handshake, which tells it the same.
/// Bounded by `write_timeout` like every other write: these tasks are not
/// counted against `max_connections`.
fn refuse(conns: &mut JoinSet<()>, sock: TcpStream, line: String, shared: &Shared) {
    let limit = shared.current().write_timeout;
    conns.spawn(write_and_close(sock, line, limit));
}
