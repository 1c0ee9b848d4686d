//! Message inspection and repair, then DKIM signing (Ed25519), on an
//! arbitrary message: what is spooled never holds a bare CR or LF, its
//! header section parses back, 8-bit header text is either refused or
//! encoded to ASCII, and a signature is a well-formed header on top.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::dkim::{Algorithm, KeySlot, PrivateKey, Signer, UnsignedPolicy, generate_pem};
use crate::inspect::{Header8bit, Inspector, Settings, Submission};
use crate::smtp::data::{BareNewline, DataDecoder, DataOutcome};

/// The first byte picks the 8-bit policy and the SMTPUTF8 flag; the rest is
/// what the client sent after DATA, decoded as the connection does
/// (`smtp::data`, bare newlines normalized), so inspection sees what it
/// sees in the daemon: CRLF line endings only.
pub fn inspect_and_sign(input: &[u8]) {
    let Some((&flags, raw)) = input.split_first() else {
        return;
    };
    let mut decoder = DataDecoder::new(usize::MAX, BareNewline::Normalize);
    decoder.feed(raw);
    decoder.feed(b"\r\n.\r\n");
    let DataOutcome::Message(decoded) = decoder.finish() else {
        return;
    };
    let data = &decoded[..];
    let (inspector, signer) = setup(flags);
    let sub = Submission {
        credential: "app".into(),
        from_patterns: vec!["*@example.com".into()],
        smtputf8: flags & 4 != 0,
        mail_from: "app@example.com".into(),
        helo: "client.fuzz".into(),
        peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        hostname: "relay.fuzz".into(),
        tls: true,
        authenticated: true,
        queue_id: "FUZZ1".into(),
        rcpt_to: vec!["bob@dest.test".into()],
        refuse_header_only: flags & 8 != 0,
        strip_control_headers: true,
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let Ok(out) = inspector.check(&sub, data, now) else {
        return;
    };
    assert_eq!(
        super::bare_newline(&out),
        None,
        "bare CR or LF after repair"
    );
    let header_end = find(&out, b"\r\n\r\n").map_or(out.len(), |i| i + 2);
    let header = &out[..header_end];
    if !sub.smtputf8 && flags & 3 == 0 {
        // "encode": every header byte is ASCII after repair.
        assert!(header.is_ascii(), "8-bit header bytes left by encode");
    }
    for line in header.split(|&b| b == b'\n').filter(|l| l.len() > 1) {
        assert!(line.len() <= 1000, "a header line over 998 octets");
    }
    let parsed = mail_parser::MessageParser::new().parse(&out);
    assert!(parsed.is_some(), "repaired message does not parse");
    let Ok(Some(signed)) = signer.sign(&out, now) else {
        return;
    };
    let sig = String::from_utf8_lossy(&signed.prefix);
    assert!(sig.starts_with("DKIM-Signature: "), "{sig}");
    assert!(sig.ends_with("\r\n"), "signature header unterminated");
    assert_eq!(
        super::bare_newline(&signed.prefix),
        None,
        "bare newline in signature"
    );
    assert!(sig.contains("a=ed25519-sha256;"), "{sig}");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn setup(flags: u8) -> (Arc<Inspector>, Arc<Signer>) {
    static KEY: OnceLock<Arc<PrivateKey>> = OnceLock::new();
    // Generating and loading a fresh Ed25519 key takes no input and does
    // not fail short of a broken RNG; this is the fuzz harness, not the daemon.
    let key = KEY.get_or_init(|| {
        let pem = generate_pem(Algorithm::Ed25519, None).expect("ed25519 key");
        Arc::new(PrivateKey::from_pem(Algorithm::Ed25519, &pem).expect("ed25519 pem"))
    });
    let settings = Settings {
        header_8bit: match flags & 3 {
            1 => Header8bit::Pass,
            2 => Header8bit::Reject,
            _ => Header8bit::Encode,
        },
        ..Settings::default()
    };
    let signer = Signer::new(
        vec![KeySlot {
            domain: "example.com".into(),
            selector: "fuzz".into(),
            key: Arc::clone(key),
            not_before: None,
            not_after: None,
        }],
        UnsignedPolicy::Allow,
    );
    (Arc::new(Inspector::new(settings)), Arc::new(signer))
}
