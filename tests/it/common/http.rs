//! A minimal HTTP/1.1 client for the admin listener: one GET per
//! connection, plain or HTTPS trusting the test CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::TestCa;

/// One HTTP/1.1 GET; (status, body). `tls` speaks HTTPS trusting the test CA.
pub fn get(port: u16, path: &str, token: Option<&str>, tls: Option<&TestCa>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to admin listener");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    match tls {
        Some(ca) => {
            let conn = rustls::ClientConnection::new(ca.client_config(), TestCa::server_name())
                .expect("tls client");
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(request.as_bytes()).unwrap();
            let _ = s.read_to_end(&mut raw);
        }
        None => {
            let mut s = tcp;
            s.write_all(request.as_bytes()).unwrap();
            s.read_to_end(&mut raw).unwrap();
        }
    }
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, dechunk(head, body))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}
