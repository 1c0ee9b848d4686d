//! Message inspection and header fixes applied before spooling.
//!
//! For now: the trace header every relay must add (RFC 5321 4.4). Parsing,
//! policy checks and repairs (issue 3) will live here too.

use std::net::IpAddr;
use std::time::SystemTime;

/// What the trace header says about the submission.
pub struct Trace<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub tls: bool,
    pub authenticated: bool,
    pub queue_id: &'a str,
    pub rcpt_to: &'a [String],
}

/// Builds the `Received:` header (CRLF-terminated, folded) that is
/// prepended to the message. The protocol keyword follows RFC 3848.
pub fn received_header(t: &Trace<'_>, now: SystemTime) -> String {
    let proto = match (t.tls, t.authenticated) {
        (true, true) => "ESMTPSA",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (false, false) => "ESMTP",
    };
    let helo = sanitize(t.helo);
    let peer = match t.peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPv6:{v6}"),
        },
        v4 => v4.to_string(),
    };
    // Naming the recipient only when there is one keeps a multi-recipient
    // message from disclosing its whole envelope to every reader.
    let for_clause = match t.rcpt_to {
        [one] => format!("\r\n\tfor <{}>", sanitize(one)),
        _ => String::new(),
    };
    let date = httpdate::fmt_http_date(now).replace(" GMT", " +0000");
    format!(
        "Received: from {helo} ([{peer}])\r\n\tby {host} (postern) with {proto} id {id}{for_clause};\r\n\t{date}\r\n",
        host = sanitize(t.hostname),
        id = t.queue_id,
    )
}

/// Keeps client-supplied text from breaking the header: printable ASCII
/// only, bounded length.
fn sanitize(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if cleaned.is_empty() {
        "unknown".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header_shape() {
        let rcpt = vec!["b@example.net".to_string()];
        let t = Trace {
            helo: "client\r\nInjected: yes",
            peer: "::ffff:192.0.2.7".parse().unwrap(),
            hostname: "relay.test",
            tls: true,
            authenticated: true,
            queue_id: "ABC123",
            rcpt_to: &rcpt,
        };
        let h = received_header(&t, SystemTime::UNIX_EPOCH);
        assert_eq!(
            h,
            "Received: from clientInjected:yes ([192.0.2.7])\r\n\tby relay.test (postern) with ESMTPSA id ABC123\r\n\tfor <b@example.net>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
        let two = vec!["a@x".to_string(), "b@y".to_string()];
        let h = received_header(
            &Trace {
                rcpt_to: &two,
                tls: false,
                authenticated: false,
                ..t
            },
            SystemTime::UNIX_EPOCH,
        );
        assert!(h.contains("with ESMTP id ABC123;") && !h.contains("for <"));
    }
}
