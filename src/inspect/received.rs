//! The `Received:` trace header every relay must add (RFC 5321 4.4).
//!
//! It records which host handed the message on, how, and when, so a
//! receiver (or an operator chasing a complaint) can follow the path.
//! Client-supplied parts (HELO name, recipient) are sanitized because they
//! are written into a header line.

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
    let helo = sanitize(t.helo);
    let peer = match t.peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPv6:{v6}"),
        },
        v4 => v4.to_string(),
    };
    format!(
        "Received: from {helo} ([{peer}])\r\n\t{}",
        by_clause(t, now)
    )
}

/// The `received_privacy` form: no `from` clause, so neither the client's
/// address nor its HELO name (often an internal host name) leave the
/// network. Large providers write the same form for their own hops.
pub fn private_received_header(t: &Trace<'_>, now: SystemTime) -> String {
    format!("Received: {}", by_clause(t, now))
}

fn by_clause(t: &Trace<'_>, now: SystemTime) -> String {
    let proto = match (t.tls, t.authenticated) {
        (true, true) => "ESMTPSA",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (false, false) => "ESMTP",
    };
    // Naming the recipient only when there is one keeps a multi-recipient
    // message from disclosing its whole envelope to every reader.
    let for_clause = match t.rcpt_to {
        [one] => format!("\r\n\tfor <{}>", sanitize(one)),
        _ => String::new(),
    };
    format!(
        "by {host} (postern) with {proto} id {id}{for_clause};\r\n\t{date}\r\n",
        host = sanitize(t.hostname),
        id = sanitize(t.queue_id),
        date = rfc5322_date(now),
    )
}

/// `Thu, 01 Jan 1970 00:00:00 +0000`: the RFC 5322 date-time form, in UTC.
pub fn rfc5322_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now).replace(" GMT", " +0000")
}

/// Keeps client-supplied text from breaking the header: printable ASCII
/// only, bounded length.
pub(super) fn sanitize(s: &str) -> String {
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
mod tests;
