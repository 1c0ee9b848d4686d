//! `loadgen`: drives postern with `--sessions` concurrent SMTP sessions that
//! each reuse one connection for many messages (as a busy ERP would), until
//! `--count` messages of `--size` bytes were accepted. Mode `plain` relies on a
//! `networks` credential; mode `starttls` upgrades and does AUTH PLAIN.
//! Prints throughput and the acceptance latency distribution (time from
//! sending the final "." to receiving the 250), as `key=value` lines.
//!
//! `--new-connection 1` opens a new connection (and, in `starttls` mode, a
//! new TLS session and AUTH) for every message and QUITs after it, as most
//! legacy senders do; `--resume 0` turns off TLS session resumption, so each
//! of those connections does a full handshake.
//!
//! `--rate R` offers R messages per second in all: message `n` is not
//! started before `n / R` seconds into the run (the latency is still the
//! final dot to the 250), so the p99 at a given load can be read off.
//!
//! Messages whose acceptance took over 10 ms are listed as `slow=` (up to
//! 40, each `start_ms:latency_ms`, start counted from the run's start), so
//! a stall can be matched with what postern did at that moment.
//!
//! `--senders N` makes message `n` come from `bench-<n mod N>@example.com`
//! (envelope and From header alike), so that per-sender state in postern
//! (quota keys) grows to N entries as it would with many applications; the
//! default is the single sender `bench@example.com`. A 451 (a rate limit) is
//! counted as `refused_451` and the session goes on after RSET, so a bench
//! that must not hit any limit can check that the count is 0.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use postern_loadgen::{Error, arg, arg_or, args};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

const IO_TIMEOUT: Duration = Duration::from_secs(60);

struct Conn<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn reply(&mut self) -> Result<(u16, String), Error> {
        let mut text = String::new();
        loop {
            if let Some(nl) = self.buf.iter().position(|&c| c == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                let code: u16 = line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("bad reply line {line:?}"))?;
                text.push_str(&line);
                text.push('\n');
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Ok((code, text));
                }
                continue;
            }
            let mut tmp = [0u8; 4096];
            let n = tokio::time::timeout(IO_TIMEOUT, self.io.read(&mut tmp)).await??;
            if n == 0 {
                return Err(format!("connection closed; partial reply {text:?}").into());
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    async fn send(&mut self, b: &[u8]) -> Result<(), Error> {
        tokio::time::timeout(IO_TIMEOUT, self.io.write_all(b)).await??;
        Ok(())
    }

    async fn cmd(&mut self, line: &str, want: u16) -> Result<String, Error> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        let (code, text) = self.reply().await?;
        if code != want {
            return Err(format!("{line:?}: expected {want}, got {text:?}").into());
        }
        Ok(text)
    }
}

struct Setup {
    port: u16,
    starttls: bool,
    user: String,
    pass: String,
    tls: TlsConnector,
    /// 0: every message from `bench@example.com`; see the module doc.
    senders: usize,
    /// One connection per message.
    new_connection: bool,
    /// Messages per second offered in all (0: as fast as the sessions go).
    rate: f64,
    start: tokio::time::Instant,
}

async fn open(s: &Setup) -> Result<Conn<Box<dyn Io>>, Error> {
    let tcp = TcpStream::connect(("127.0.0.1", s.port)).await?;
    tcp.set_nodelay(true)?;
    let mut c = Conn {
        io: tcp,
        buf: Vec::new(),
    };
    let (code, text) = c.reply().await?;
    if code != 220 {
        return Err(format!("greeting {text:?}").into());
    }
    c.cmd("EHLO loadgen.bench", 250).await?;
    if !s.starttls {
        return Ok(Conn {
            io: Box::new(c.io),
            buf: c.buf,
        });
    }
    c.cmd("STARTTLS", 220).await?;
    if !c.buf.is_empty() {
        return Err("plaintext after STARTTLS reply".into());
    }
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let tls = s.tls.connect(name, c.io).await?;
    let mut c: Conn<Box<dyn Io>> = Conn {
        io: Box::new(tls),
        buf: Vec::new(),
    };
    c.cmd("EHLO loadgen.bench", 250).await?;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", s.user, s.pass));
    c.cmd(&format!("AUTH PLAIN {token}"), 235).await?;
    Ok(c)
}

/// The envelope sender (and From address) of message `n`.
fn sender(n: usize, senders: usize) -> String {
    if senders == 0 {
        "bench@example.com".to_string()
    } else {
        format!("bench-{}@example.com", n % senders)
    }
}

fn message(from: &str, session: usize, n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <sink@dest.test>\r\nSubject: bench {session}-{n}\r\nMessage-ID: <{session}-{n}@bench.example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstu\r\n";
    while m.len() + line.len() + 2 <= size {
        m.extend_from_slice(line);
    }
    while m.len() + 2 < size {
        m.push(b'x');
    }
    m.extend_from_slice(b"\r\n");
    m
}

struct SessionResult {
    latencies_us: Vec<u32>,
    /// (start of the final dot in µs since the run's start, latency in µs)
    /// of each message over [`SLOW_US`].
    slow: Vec<(u64, u32)>,
    errors: Vec<String>,
    refused_451: usize,
}

/// A 451 at MAIL FROM or RCPT TO: postern's rate limit said no. The
/// transaction is reset and the session continues.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0.trim_end())
    }
}

impl std::error::Error for Refused {}

async fn session(
    id: usize,
    s: Arc<Setup>,
    next: Arc<AtomicUsize>,
    count: usize,
    size: usize,
) -> SessionResult {
    let mut r = SessionResult {
        latencies_us: Vec::new(),
        slow: Vec::new(),
        errors: Vec::new(),
        refused_451: 0,
    };
    let mut conn: Option<Conn<Box<dyn Io>>> = None;
    // A message whose connection could not be opened is sent on the next.
    let mut pending = None;
    loop {
        if r.errors.len() > 5 {
            return r;
        }
        let n = match pending.take() {
            Some(n) => n,
            None => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    if let Some(c) = conn.as_mut() {
                        let _ = c.cmd("QUIT", 221).await;
                    }
                    return r;
                }
                if s.rate > 0.0 {
                    // Message n is offered at start + n / rate.
                    tokio::time::sleep_until(s.start + Duration::from_secs_f64(n as f64 / s.rate))
                        .await;
                }
                n
            }
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match open(&s).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    r.errors.push(format!("session {id} connect: {e}"));
                    pending = Some(n);
                    continue;
                }
            },
        };
        match one_message(c, &sender(n, s.senders), id, n, size).await {
            Ok((at, lat)) => {
                let lat_us = lat.as_micros().min(u32::MAX as u128) as u32;
                r.latencies_us.push(lat_us);
                if lat_us > SLOW_US {
                    r.slow.push(((at - s.start.into_std()).as_micros() as u64, lat_us));
                }
                if s.new_connection {
                    if let Err(e) = c.cmd("QUIT", 221).await {
                        r.errors.push(format!("session {id} QUIT: {e}"));
                    }
                    conn = None;
                }
            }
            Err(e) if e.is::<Refused>() => {
                r.refused_451 += 1;
                if let Err(e) = c.cmd("RSET", 250).await {
                    r.errors.push(format!("session {id} RSET after 451: {e}"));
                    conn = None;
                }
            }
            Err(e) => {
                r.errors.push(format!("session {id} message {n}: {e}"));
                conn = None;
            }
        }
    }
}

/// Sends `line` and expects 250; a 451 becomes [`Refused`].
async fn envelope(c: &mut Conn<Box<dyn Io>>, line: &str) -> Result<(), Error> {
    c.send(format!("{line}\r\n").as_bytes()).await?;
    match c.reply().await? {
        (250, _) => Ok(()),
        (451, text) => Err(Refused(text).into()),
        (_, text) => Err(format!("{line:?}: expected 250, got {text:?}").into()),
    }
}

async fn one_message(
    c: &mut Conn<Box<dyn Io>>,
    from: &str,
    session: usize,
    n: usize,
    size: usize,
) -> Result<(Instant, Duration), Error> {
    envelope(c, &format!("MAIL FROM:<{from}>")).await?;
    envelope(c, "RCPT TO:<sink@dest.test>").await?;
    c.cmd("DATA", 354).await?;
    c.send(&message(from, session, n, size)).await?;
    let t0 = Instant::now();
    c.send(b".\r\n").await?;
    let (code, text) = c.reply().await?;
    let lat = t0.elapsed();
    if code != 250 {
        return Err(format!("end of data: {text:?}").into());
    }
    Ok((t0, lat))
}

/// Acceptance latency above which a message is listed in `slow=`.
const SLOW_US: u32 = 10_000;

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let mode: String = arg(&a, "mode")?;
    let certs: String = arg(&a, "certs")?;
    let setup = Arc::new(Setup {
        port: arg(&a, "port")?,
        starttls: match mode.as_str() {
            "plain" => false,
            "starttls" => true,
            m => return Err(format!("--mode {m}: use plain or starttls").into()),
        },
        user: arg_or(&a, "user", String::new())?,
        pass: arg_or(&a, "pass", String::new())?,
        tls: TlsConnector::from(postern_loadgen::client_config(
            Path::new(&certs),
            arg_or::<u8>(&a, "resume", 1)? != 0,
        )?),
        senders: arg_or(&a, "senders", 0)?,
        new_connection: arg_or::<u8>(&a, "new-connection", 0)? != 0,
        rate: arg_or(&a, "rate", 0.0)?,
        start: tokio::time::Instant::now(),
    });
    let sessions: usize = arg_or(&a, "sessions", 20)?;
    let count: usize = arg_or(&a, "count", 20_000)?;
    let size: usize = arg_or(&a, "size", 4096)?;

    let start_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for id in 0..sessions {
        tasks.push(tokio::spawn(session(
            id,
            setup.clone(),
            next.clone(),
            count,
            size,
        )));
    }
    let mut lat = Vec::with_capacity(count);
    let mut errors = Vec::new();
    let mut refused_451 = 0;
    let mut slow = Vec::new();
    for t in tasks {
        let r = t.await?;
        lat.extend(r.latencies_us);
        slow.extend(r.slow);
        errors.extend(r.errors);
        refused_451 += r.refused_451;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!("mode={mode}");
    println!("start_unix_ns={start_unix_ns}");
    println!("accepted={}", lat.len());
    println!("errors={}", errors.len());
    println!("refused_451={refused_451}");
    println!("senders={}", setup.senders.max(1));
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    println!("elapsed_s={elapsed:.3}");
    println!("msgs_per_s={:.0}", lat.len() as f64 / elapsed);
    println!("latency_p50_ms={:.2}", pct(&lat, 0.50));
    println!("latency_p99_ms={:.2}", pct(&lat, 0.99));
    println!("latency_max_ms={:.2}", pct(&lat, 1.0));
    slow.sort_unstable();
    let listed: Vec<String> = slow
        .iter()
        .take(40)
        .map(|(at, l)| format!("{}:{:.1}", at / 1000, *l as f64 / 1000.0))
        .collect();
    println!("slow={}", listed.join(","));
    if lat.len() < count {
        return Err(format!("only {} of {count} messages accepted", lat.len()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_cycle_and_from_header_matches_envelope() {
        assert_eq!(sender(7, 0), "bench@example.com");
        assert_eq!(sender(3, 10_000), "bench-3@example.com");
        assert_eq!(sender(10_003, 10_000), "bench-3@example.com");
        let distinct: std::collections::HashSet<_> =
            (0..20_000).map(|n| sender(n, 10_000)).collect();
        assert_eq!(distinct.len(), 10_000);
        let m = message(&sender(42, 100), 1, 42, 4096);
        assert!(m.starts_with(b"From: <bench-42@example.com>\r\n"));
        assert_eq!(m.len(), 4096);
    }
}
