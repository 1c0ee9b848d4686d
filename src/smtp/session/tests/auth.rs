//! AUTH: only over TLS, PLAIN and LOGIN encodings, secrets never shown.

use super::*;

#[test]
fn ehlo_over_tls_offers_auth_not_starttls() {
    let mut s = session(STRANGER, true);
    let ehlo = send(&mut s, "EHLO client.example");
    assert!(
        ehlo.ends_with("250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("STARTTLS"));
}

#[test]
fn tls_started_forgets_authentication() {
    let mut s = authenticated();
    s.tls_started();
    assert!(!s.is_authenticated());
    assert_eq!(s.credential(), None);
}

#[test]
fn auth_requires_tls_and_never_asks_for_verification_without_it() {
    let mut s = session(STRANGER, false);
    send(&mut s, "EHLO client.example");
    for line in [
        format!("AUTH PLAIN {}", b64(b"\0erp\0pw")),
        "AUTH LOGIN".into(),
        "AUTH PLAIN".into(),
    ] {
        assert_eq!(
            send(&mut s, &line),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
        );
    }
}

#[test]
fn auth_plain_with_initial_response() {
    let mut s = session(STRANGER, true);
    send(&mut s, "EHLO client.example");
    match s.command(format!("AUTH PLAIN {}\r\n", b64(b"erp\0erp\0s3cret")).as_bytes()) {
        Step::Auth { username, secret } => {
            assert_eq!((username.as_str(), secret.as_str()), ("erp", "s3cret"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.command(b"NOOP\r\n").is_close(),
        "commands while verifying are a listener bug"
    );
}

#[test]
fn auth_plain_with_challenge_and_failure() {
    let mut s = session(STRANGER, true);
    send(&mut s, "EHLO client.example");
    assert_eq!(send(&mut s, "AUTH PLAIN"), "334 \r\n");
    let step = s.command(format!("{}\r\n", b64(b"\0erp\0wrong")).as_bytes());
    assert!(matches!(&step, Step::Auth { username, .. } if username == "erp"));
    assert_eq!(
        wire(&s.auth_result(refused())),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    assert!(!s.is_authenticated());
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "530 5.7.0 Authentication required\r\n"
    );
}

#[test]
fn auth_login_both_forms() {
    let mut s = session(STRANGER, true);
    send(&mut s, "EHLO client.example");
    assert_eq!(send(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(send(&mut s, &b64(b"erp")), "334 UGFzc3dvcmQ6\r\n");
    let step = s.command(format!("{}\r\n", b64(b"pw")).as_bytes());
    assert!(
        matches!(&step, Step::Auth { username, secret } if username == "erp" && secret == "pw")
    );
    s.auth_result(refused());
    assert_eq!(
        send(&mut s, &format!("AUTH LOGIN {}", b64(b"erp"))),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let step = s.command(format!("{}\r\n", b64(b"pw2")).as_bytes());
    assert!(matches!(&step, Step::Auth { secret, .. } if secret == "pw2"));
    assert!(s.auth_result(granted("erp")).is_positive());
    assert_eq!(s.credential().map(|c| &**c), Some("erp"));
}

#[test]
fn auth_errors() {
    let mut s = session(STRANGER, true);
    assert_eq!(send(&mut s, "AUTH PLAIN"), "503 5.5.1 Send EHLO first\r\n");
    send(&mut s, "EHLO client.example");
    assert_eq!(
        send(&mut s, "AUTH CRAM-MD5"),
        "504 5.5.4 Unrecognized authentication mechanism\r\n"
    );
    assert_eq!(
        send(&mut s, "AUTH PLAIN !!!notbase64"),
        "501 5.5.2 Invalid base64 data\r\n"
    );
    assert_eq!(
        send(&mut s, "AUTH PLAIN ="),
        "501 5.5.2 Malformed PLAIN response\r\n"
    );
    assert_eq!(
        send(&mut s, &format!("AUTH PLAIN {}", b64(b"boss\0erp\0pw"))),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    send(&mut s, "AUTH LOGIN");
    assert_eq!(send(&mut s, "*"), "501 5.7.0 Authentication cancelled\r\n");
    assert_eq!(
        send(&mut s, "NOOP"),
        "250 2.0.0 Ok\r\n",
        "back to commands after cancel"
    );
    send(&mut s, "AUTH PLAIN");
    assert_eq!(send(&mut s, "%%%"), "501 5.5.2 Invalid base64 data\r\n");
    let mut s = authenticated();
    assert_eq!(
        send(&mut s, "AUTH PLAIN"),
        "503 5.5.1 Already authenticated\r\n"
    );
    let mut t = session(TRUSTED, true);
    send(&mut t, "EHLO client.example");
    send(&mut t, "MAIL FROM:<a@example.com>");
    assert_eq!(
        send(&mut t, "AUTH LOGIN"),
        "503 5.5.1 AUTH not permitted during a mail transaction\r\n"
    );
}

#[test]
fn secret_never_appears_in_debug_or_replies() {
    let mut s = session(STRANGER, true);
    let mut seen = format!("{:?}", s.command(b"EHLO x\r\n"));
    seen += &format!("{:?}", s.command(b"AUTH LOGIN\r\n"));
    seen += &format!("{:?}", s.command(format!("{}\r\n", b64(b"erp")).as_bytes()));
    let step = s.command(format!("{}\r\n", b64(b"hunter2-secret")).as_bytes());
    seen += &format!("{step:?}{s:?}");
    assert!(matches!(step, Step::Auth { .. }));
    assert!(seen.contains("<redacted>"));
    assert!(
        !seen.contains("hunter2") && !seen.contains(&b64(b"hunter2-secret")),
        "{seen}"
    );
}
