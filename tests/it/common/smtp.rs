//! A byte-exact SMTP client over plain TCP or TLS (rustls, trusting the test
//! CA). It exists because real clients normalise what they send; attack and
//! limit tests need to put arbitrary bytes on the wire and read each reply
//! exactly as the server wrote it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use super::TestCa;
use super::util::{dot_stuff, show};

/// One (possibly multi-line) SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Full reply lines without CRLF, e.g. `250-relay.test`.
    pub lines: Vec<String>,
}

impl Reply {
    /// Text of the first line after `CODE` and separator.
    pub fn text(&self) -> &str {
        self.lines
            .first()
            .map(|l| l.get(4..).unwrap_or(""))
            .unwrap_or("")
    }

    /// Enhanced status code of the first line (`5.7.1`), if present.
    pub fn enhanced(&self) -> Option<&str> {
        let t = self.text();
        let first = t.split_whitespace().next()?;
        let ok = first.split('.').count() == 3
            && first
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(first)
    }

    /// True when the reply is `code` with enhanced status `enhanced`.
    pub fn is(&self, code: u16, enhanced: &str) -> bool {
        self.code == code && self.enhanced() == Some(enhanced)
    }

    /// Panics unless the reply is `code enhanced`.
    #[track_caller]
    pub fn expect(&self, code: u16, enhanced: &str, ctx: &str) {
        assert!(
            self.is(code, enhanced),
            "{ctx}: expected `{code} {enhanced}`, got {:?}",
            self.lines
        );
    }

    /// Panics unless the reply has basic code `code` (any enhanced status).
    #[track_caller]
    pub fn expect_code(&self, code: u16, ctx: &str) {
        assert_eq!(
            self.code, code,
            "{ctx}: expected {code}, got {:?}",
            self.lines
        );
    }

    /// Keywords of an EHLO reply (`STARTTLS`, `AUTH PLAIN LOGIN`, ...), upper-cased.
    pub fn ehlo_keywords(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| l.get(4..).unwrap_or("").to_ascii_uppercase())
            .collect()
    }

    /// Queue ID from `250 2.0.0 Ok: queued as ID`.
    pub fn queue_id(&self) -> Option<String> {
        super::clients::queue_id_in(&self.lines.join("\n"))
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// Raw SMTP connection with its own read buffer.
pub struct SmtpClient {
    stream: Stream,
    buf: Vec<u8>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to postern");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Like [`tcp`], but from local address `source`: every 127.0.0.0/8 address
/// is loopback on Linux, so tests can play several client IPs. std cannot
/// bind before connecting, so the socket is made with tokio and handed back
/// as a blocking std stream.
fn tcp_from(source: std::net::IpAddr, port: u16) -> TcpStream {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime for connect_from");
    let s = rt
        .block_on(async {
            let sock = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            sock.bind(SocketAddr::new(source, 0))?;
            let s = sock
                .connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
                .await?;
            s.into_std()
        })
        .unwrap_or_else(|e| panic!("connect to postern from {source}: {e}"));
    s.set_nonblocking(false).expect("blocking mode");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn handshake(
    ca: &TestCa,
    mut sock: TcpStream,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut conn = ClientConnection::new(ca.client_config(), TestCa::server_name())
        .map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}

impl SmtpClient {
    /// Plain TCP connection (greeting not yet read).
    pub fn connect(port: u16) -> SmtpClient {
        SmtpClient {
            stream: Stream::Plain(tcp(port)),
            buf: Vec::new(),
        }
    }

    /// Plain TCP connection from local address `source` (e.g. 127.0.0.2) to
    /// 127.0.0.1:`port`; greeting not yet read.
    pub fn connect_from(source: std::net::IpAddr, port: u16) -> SmtpClient {
        SmtpClient {
            stream: Stream::Plain(tcp_from(source, port)),
            buf: Vec::new(),
        }
    }

    /// Implicit TLS connection (greeting not yet read).
    pub fn connect_tls(port: u16, ca: &TestCa) -> SmtpClient {
        let s = handshake(ca, tcp(port)).expect("implicit TLS handshake");
        SmtpClient {
            stream: Stream::Tls(Box::new(s)),
            buf: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        let r = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Gone => panic!("connection is gone"),
        };
        r.unwrap_or_else(|e| panic!("write to postern failed: {e}"));
    }

    /// Reads more bytes into the buffer; Ok(0) on EOF.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 16384];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut tmp),
            Stream::Tls(s) => match s.read(&mut tmp) {
                // A peer that closes without close_notify is still a close.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Stream::Gone => Ok(0),
        };
        let n = match n {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            other => other?,
        };
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads one reply; `Err` on EOF/timeout before a complete reply.
    pub fn try_read_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            if let Some(nl) = self.buf.iter().position(|&c| c == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=nl).collect();
                if raw.len() < 2 || raw[raw.len() - 2] != b'\r' {
                    return Err(format!("reply line not ended by CRLF: {}", show(&raw)));
                }
                let line = String::from_utf8_lossy(&raw[..raw.len() - 2]).into_owned();
                let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
                let sep = line.as_bytes().get(3).copied();
                let Some(code) = code else {
                    return Err(format!("malformed reply line: {line:?}"));
                };
                let last = sep != Some(b'-');
                lines.push(line);
                if last {
                    return Ok(Reply { code, lines });
                }
                continue;
            }
            match self.fill() {
                Ok(0) => {
                    return Err(format!(
                        "connection closed (partial: {lines:?} {})",
                        show(&self.buf)
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("read error: {e} (partial: {lines:?})")),
            }
        }
    }

    /// Reads one reply; panics on EOF.
    #[track_caller]
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading SMTP reply: {e}"))
    }

    /// Sends `line` + CRLF and reads the reply.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Reads until the server closes the connection; returns what was left.
    pub fn read_to_eof(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match self.fill() {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "read error before EOF: {e}; got {}",
                        show(&self.buf)
                    ));
                }
            }
        }
    }

    /// Runs the TLS handshake on the current plain connection. Panics if the
    /// server already sent bytes we have not consumed (they would be plaintext
    /// injected before the handshake).
    pub fn upgrade_tls(&mut self, ca: &TestCa) -> std::io::Result<()> {
        assert!(
            self.buf.is_empty(),
            "server sent plaintext after the STARTTLS reply: {}",
            show(&self.buf)
        );
        let Stream::Plain(sock) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            panic!("upgrade_tls on a connection that is not plain");
        };
        self.stream = Stream::Tls(Box::new(handshake(ca, sock)?));
        Ok(())
    }

    /// Greeting, EHLO, STARTTLS (expects 220), handshake, EHLO again; returns the second EHLO reply.
    #[track_caller]
    pub fn greet_starttls(&mut self, ca: &TestCa) -> Reply {
        let g = self.read_reply();
        assert_eq!(g.code, 220, "greeting: {g:?}");
        let e = self.cmd("EHLO client.test");
        assert_eq!(e.code, 250, "EHLO: {e:?}");
        let r = self.cmd("STARTTLS");
        assert_eq!(r.code, 220, "STARTTLS: {r:?}");
        self.upgrade_tls(ca).expect("STARTTLS handshake");
        let e = self.cmd("EHLO client.test");
        assert_eq!(e.code, 250, "EHLO after TLS: {e:?}");
        e
    }

    /// Greeting + EHLO on the current stream; returns the EHLO reply.
    #[track_caller]
    pub fn greet(&mut self) -> Reply {
        let g = self.read_reply();
        assert_eq!(g.code, 220, "greeting: {g:?}");
        let e = self.cmd("EHLO client.test");
        assert_eq!(e.code, 250, "EHLO: {e:?}");
        e
    }

    /// `AUTH PLAIN` with an initial response.
    pub fn auth_plain(&mut self, user: &str, pass: &str) -> Reply {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
        self.cmd(&format!("AUTH PLAIN {token}"))
    }

    /// MAIL/RCPT/DATA with `content` (not yet dot-stuffed; ends with CRLF).
    /// Returns the reply to the final dot; panics if an earlier step fails.
    #[track_caller]
    pub fn send_message(&mut self, from: &str, rcpts: &[&str], content: &[u8]) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert_eq!(r.code, 250, "MAIL FROM:<{from}>: {r:?}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert_eq!(r.code, 250, "RCPT TO:<{rcpt}>: {r:?}");
        }
        self.data(content)
    }

    /// DATA, then `content` dot-stuffed and terminated; returns the final reply.
    #[track_caller]
    pub fn data(&mut self, content: &[u8]) -> Reply {
        let r = self.cmd("DATA");
        assert_eq!(r.code, 354, "DATA: {r:?}");
        assert!(
            content.ends_with(b"\r\n"),
            "message content must end with CRLF"
        );
        let mut wire = dot_stuff(content);
        wire.extend_from_slice(b".\r\n");
        self.send(&wire);
        self.read_reply()
    }

    /// QUIT and expect 221.
    #[track_caller]
    pub fn quit(&mut self) {
        let r = self.cmd("QUIT");
        assert_eq!(r.code, 221, "QUIT: {r:?}");
    }
}
