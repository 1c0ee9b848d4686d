//! Fuzzes the SMTP session exactly as the listener drives it: arbitrary
//! client bytes are split into command lines (max 2048 bytes, longer ones
//! reported with `line_too_long`), DATA bytes go through a `DataDecoder` in
//! chunks, and AUTH / spool results are faked. Besides "no panic", it checks
//! the protocol invariants that matter for security: no reply framing
//! injection, AUTH only over TLS, no queued message without a credential,
//! and queued data that is canonical CRLF text within the size limit.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use postern::smtp::data::{BareNewline, DataDecoder};
use postern::smtp::reply::Reply;
use postern::smtp::session::{Grant, Policy, Session, SessionConfig, Step, Transaction};

const MAX_LINE: usize = 2048;
const MAX_SIZE: usize = 4096;
const MAX_RCPT: usize = 3;

/// Trusts the peer's network when `trusted`; refuses senders starting with
/// "x", with a reason containing CRLF to exercise reply sanitizing.
struct FuzzPolicy {
    trusted: bool,
}

impl Policy for FuzzPolicy {
    fn network_credential(&self, _peer: IpAddr) -> Option<Arc<str>> {
        self.trusted.then(|| Arc::from("network"))
    }

    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        if mail_from.starts_with('x') {
            Err(format!(
                "Sender <{mail_from}> not allowed\r\n250 for {credential}"
            ))
        } else {
            Ok(())
        }
    }
}

fn check_reply(reply: &Reply) {
    assert!((200..600).contains(&reply.code), "{reply:?}");
    let bytes = reply.to_bytes();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        assert!(line.len() <= 512, "reply line too long");
        let body = line.strip_suffix(b"\r\n").expect("reply line ends in CRLF");
        assert!(
            !body.contains(&b'\r') && !body.contains(&b'\n'),
            "{reply:?}"
        );
        assert!(body.len() >= 4 && body[..3].iter().all(u8::is_ascii_digit));
    }
}

fn check_transaction(tx: &Transaction, trusted: bool, session: &Session) {
    if tx.authenticated {
        assert!(tx.tls, "AUTH credential without TLS");
        assert_eq!(&*tx.credential, "good");
    } else {
        assert!(trusted, "queued without any credential");
        assert_eq!(&*tx.credential, "network");
    }
    assert_eq!(tx.tls, session.tls_active());
    assert!((1..=MAX_RCPT).contains(&tx.rcpt_to.len()));
    assert!(tx.data.len() <= MAX_SIZE);
    assert!(tx.data.is_empty() || tx.data.ends_with(b"\r\n"));
    for (i, &b) in tx.data.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(tx.data.get(i + 1), Some(&b'\n'), "bare CR"),
            b'\n' => assert!(i > 0 && tx.data[i - 1] == b'\r', "bare LF"),
            _ => {}
        }
    }
    let clean = |s: &str| !s.chars().any(char::is_control);
    assert!(clean(&tx.mail_from) && clean(&tx.helo) && tx.rcpt_to.iter().all(|r| clean(r)));
}

fuzz_target!(|input: &[u8]| {
    let Some((&knobs, input)) = input.split_first() else {
        return;
    };
    let cfg = SessionConfig {
        hostname: "fuzz.example".into(),
        max_message_size: MAX_SIZE,
        max_recipients: MAX_RCPT,
        max_bad_commands: 10,
        max_junk_commands: 20,
        max_rcpt_commands: 50,
        max_auth_attempts: Some(3),
        starttls: knobs & 1 != 0,
        bare_newline: if knobs & 2 != 0 {
            BareNewline::Reject
        } else {
            BareNewline::Normalize
        },
        validation: Default::default(),
    };
    let trusted = knobs & 4 != 0;
    let implicit_tls = knobs & 8 != 0;
    // DATA arrives in socket-read-sized pieces; vary the size so chunk
    // boundaries land everywhere.
    let chunk = 1 + usize::from(knobs >> 4) * 37;
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut session = Session::new(
        Arc::new(cfg),
        Arc::new(FuzzPolicy { trusted }),
        peer,
        implicit_tls,
    );
    check_reply(&session.greeting());

    let mut pos = 0;
    let mut decoder: Option<DataDecoder> = None;
    let mut queued = 0u32;
    loop {
        let mut step = if let Some(d) = decoder.as_mut() {
            let (start, end) = (pos, (pos + chunk).min(input.len()));
            let n = d.feed(&input[start..end]);
            pos += n;
            if !d.is_done() {
                assert_eq!(
                    n,
                    end - start,
                    "decoder must consume whole chunks until done"
                );
                if end == input.len() {
                    return; // connection dropped mid-DATA
                }
                continue;
            }
            assert!(n <= end - start);
            let Some(d) = decoder.take() else { return };
            session.data_finished(d.finish())
        } else {
            let rest = &input[pos..];
            if rest.is_empty() {
                return;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) if i < MAX_LINE => {
                    pos += i + 1;
                    session.command(&rest[..=i])
                }
                // The listener reads at most MAX_LINE bytes per line; a
                // longer one is discarded up to its LF and reported.
                lf if rest.len() >= MAX_LINE || lf.is_some() => {
                    pos += lf.map_or(rest.len(), |i| i + 1);
                    session.line_too_long()
                }
                _ => return, // EOF inside an unterminated line
            }
        };
        loop {
            match step {
                Step::Reply(r) => {
                    check_reply(&r);
                    break;
                }
                Step::Close(r) => {
                    check_reply(&r);
                    assert!(session.is_closed());
                    return;
                }
                Step::StartTls(r) => {
                    check_reply(&r);
                    assert!(!session.tls_active());
                    session.tls_started();
                    break;
                }
                Step::Auth { username, secret } => {
                    assert!(
                        session.tls_active(),
                        "AUTH verification requested without TLS"
                    );
                    let ok = username == "good" && secret == "pw";
                    step = session.auth_result(if ok {
                        Ok(Grant::named("good"))
                    } else {
                        Err(Reply::new(535, "5.7.8", "Authentication credentials invalid"))
                    });
                }
                Step::Data(r) => {
                    check_reply(&r);
                    assert_eq!(r.code, 354);
                    decoder = Some(session.new_data_decoder());
                    break;
                }
                Step::CheckRecipient { .. } => step = session.recipient_checked(Ok(())),
                Step::Queue(tx) => {
                    check_transaction(&tx, trusted, &session);
                    queued += 1;
                    let result = if queued % 3 == 0 {
                        Err(Reply::new(452, "4.3.1", "Spool\r\nfull"))
                    } else {
                        Ok(format!("ID{queued}"))
                    };
                    step = session.queued(result);
                }
            }
        }
    }
});
