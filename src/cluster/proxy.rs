//! The PROXY protocol (v1 text, v2 binary) on listeners behind a load
//! balancer (`proxy_protocol = true`).
//!
//! The header is framed here (how many bytes to read next, so nothing past
//! the header is consumed: an implicit-TLS ClientHello may follow in the
//! same segment) and parsed by the `ppp` crate. Framing and parsing are
//! sans-IO ([`frame`], [`parse`]) so the fuzz target exercises exactly what
//! a connection runs; [`read_header`] adds the socket and the deadline.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature (12 bytes).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header is at most 107 bytes, CRLF included (the specification).
const V1_MAX: usize = 107;
/// v2: signature, version/command, family/protocol, length.
const V2_FIXED: usize = 16;

/// The load balancers whose header is believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    nets: Vec<IpNet>,
}

impl Trusted {
    pub fn new(nets: Vec<IpNet>) -> Trusted {
        Trusted { nets }
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as its IPv4 one)
    /// is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// Why a connection's PROXY header was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY header (the connection does not start with a v1 or v2 signature)")]
    NotProxy,
    #[error("PROXY v1 header longer than 107 bytes")]
    TooLong,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("the connection closed inside the PROXY header")]
    Truncated,
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

impl ProxyError {
    /// The audit trail's short name for this failure.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NotProxy => "not_proxy",
            ProxyError::TooLong | ProxyError::Malformed(_) => "malformed",
            ProxyError::Truncated => "truncated",
            ProxyError::Timeout(_) => "timeout",
            ProxyError::Io(_) => "io",
        }
    }
}

/// How far a header received so far is.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Read exactly this many more bytes (never past the header's end).
    More(usize),
    /// The header is the first this many bytes.
    Complete(usize),
}

/// Frames the start of a connection: what to read next, or the header's
/// length, or why this cannot be a header.
pub fn frame(buf: &[u8]) -> Result<Frame, ProxyError> {
    let n = buf.len();
    // 12 bytes tell v1 from v2 (the shortest v1 header is 15 bytes).
    if n < V2_SIGNATURE.len() {
        let v2 = V2_SIGNATURE.starts_with(buf);
        let v1 = if n <= V1_PREFIX.len() {
            V1_PREFIX.starts_with(buf)
        } else {
            buf.starts_with(V1_PREFIX)
        };
        if !v1 && !v2 {
            return Err(ProxyError::NotProxy);
        }
        if v1 && n > V1_PREFIX.len() {
            // Past the prefix: a v1 header may end before 12 bytes only if
            // it is malformed; look for its end byte by byte.
            return v1_frame(buf);
        }
        return Ok(Frame::More(V2_SIGNATURE.len() - n));
    }
    if buf.starts_with(V2_SIGNATURE) {
        if n < V2_FIXED {
            return Ok(Frame::More(V2_FIXED - n));
        }
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        let total = V2_FIXED + len;
        return Ok(if n < total {
            Frame::More(total - n)
        } else {
            Frame::Complete(total)
        });
    }
    if buf.starts_with(V1_PREFIX) {
        return v1_frame(buf);
    }
    Err(ProxyError::NotProxy)
}

fn v1_frame(buf: &[u8]) -> Result<Frame, ProxyError> {
    if let Some(i) = buf.iter().position(|&b| b == b'\n') {
        // Only CRLF ends a v1 header; a bare LF is malformed (parse says so).
        return Ok(Frame::Complete(i + 1));
    }
    if buf.len() >= V1_MAX {
        return Err(ProxyError::TooLong);
    }
    Ok(Frame::More(1))
}

/// The client address a complete header carries. None for a header that
/// names no client (v2 LOCAL, as a health check sends; v1 UNKNOWN; a
/// UNIX-socket or unspecified family): the connection's own peer is then
/// the client, as the specification says.
pub fn parse(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if header.starts_with(V2_SIGNATURE) {
        let h =
            ppp::v2::Header::try_from(header).map_err(|e| ProxyError::Malformed(e.to_string()))?;
        if h.len() != header.len() {
            return Err(ProxyError::Malformed("length mismatch".to_string()));
        }
        // TLVs (ALPN, SSL, unique id, ...) are not used: they are only
        // walked so a corrupt one fails the header rather than passing.
        for tlv in h.tlvs() {
            tlv.map_err(|e| ProxyError::Malformed(format!("TLV: {e}")))?;
        }
        if h.command == ppp::v2::Command::Local {
            return Ok(None);
        }
        return Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v2::Addresses::IPv6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v2::Addresses::Unix(_) | ppp::v2::Addresses::Unspecified => None,
        });
    }
    if header.starts_with(V1_PREFIX) {
        if !header.ends_with(b"\r\n") {
            return Err(ProxyError::Malformed(
                "v1 header must end in CRLF".to_string(),
            ));
        }
        let h =
            ppp::v1::Header::try_from(header).map_err(|e| ProxyError::Malformed(e.to_string()))?;
        return Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v1::Addresses::Unknown => None,
        });
    }
    Err(ProxyError::NotProxy)
}

/// Frames and parses a whole byte string the way a connection would read
/// it: the client address and the header's length, or why not. What
/// follows the header is left alone. The fuzz target's entry point.
pub fn decode(input: &[u8]) -> Result<(Option<SocketAddr>, usize), ProxyError> {
    let mut have = 0usize;
    loop {
        match frame(&input[..have])? {
            Frame::More(k) => {
                if have + k > input.len() {
                    return Err(ProxyError::Truncated);
                }
                have += k;
            }
            Frame::Complete(len) => return Ok((parse(&input[..len])?, len)),
        }
    }
}

/// Reads the header off `stream` within `limit`, consuming exactly its
/// bytes, and returns the client address it names (None: use the peer).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    let read = async {
        let mut buf = Vec::with_capacity(V2_FIXED + 64);
        loop {
            match frame(&buf)? {
                Frame::More(k) => {
                    let start = buf.len();
                    buf.resize(start + k, 0);
                    stream.read_exact(&mut buf[start..]).await.map_err(|e| {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            ProxyError::Truncated
                        } else {
                            ProxyError::Io(e.to_string())
                        }
                    })?;
                }
                Frame::Complete(len) => return parse(&buf[..len]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| ProxyError::Timeout(limit))?
}

#[cfg(test)]
mod tests;
