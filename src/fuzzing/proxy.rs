//! The `proxy_header` target: PROXY v1/v2 framing and parsing
//! (`src/cluster/proxy.rs`, over the `ppp` crate) as a connection reads it.

use crate::cluster::proxy::{self, ProxyError};

/// Invariants: an accepted header is a prefix of the input that starts
/// with a v1 or v2 signature (v1 at most 107 bytes ending in CRLF, v2
/// exactly 16 plus its declared length), decoding that prefix alone gives
/// the same answer, and no shorter prefix is accepted (the reader never
/// consumes a byte past the header nor decides before its last byte).
pub fn proxy_header(data: &[u8]) {
    let Ok((client, len)) = proxy::decode(data) else {
        return;
    };
    assert!(len <= data.len());
    let header = &data[..len];
    if header.starts_with(b"PROXY ") {
        assert!(len <= 107, "v1 header of {len} bytes");
        assert!(header.ends_with(b"\r\n"));
    } else {
        assert!(header.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
        let declared = usize::from(u16::from_be_bytes([header[14], header[15]]));
        assert_eq!(len, 16 + declared);
    }
    assert_eq!(proxy::decode(header), Ok((client, len)));
    for k in [0, len / 2, len - 1] {
        assert_eq!(
            proxy::decode(&data[..k]).map(|r| r.1),
            Err(ProxyError::Truncated),
            "accepted {k} of a {len}-byte header"
        );
    }
}
