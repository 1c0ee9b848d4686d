//! The open-relay property: no command order reaches `Step::Queue`
//! without a credential, whatever the client sends.

use super::*;

fn checking_rules() -> Arc<validate::Rules> {
    let cfg = crate::validate::Settings {
        check_recipient_domain: true,
        ..Default::default()
    };
    Arc::new(validate::Rules::new(&cfg))
}

/// Drives a session the way a listener does: verification succeeds only
/// when `auth_ok`; every DATA phase delivers a message.
fn drive(s: &mut Session, commands: &[&[u8]], auth_ok: bool) -> Option<Transaction> {
    for line in commands {
        let mut step = s.command(line);
        loop {
            step = match step {
                Step::Reply(ref r)
                | Step::Close(ref r)
                | Step::StartTls(ref r)
                | Step::Data(ref r) => {
                    let bytes = r.to_bytes();
                    let extension_lines = r.code == 250 && r.enhanced.is_none();
                    let exempt = extension_lines || (300..400).contains(&r.code);
                    assert!(exempt || r.enhanced.is_some(), "no enhanced code: {r:?}");
                    assert!(bytes.ends_with(b"\r\n"));
                    match step {
                        Step::StartTls(_) => s.tls_started(),
                        Step::Data(_) => {
                            step = s.data_finished(DataOutcome::Message(b"x\r\n".to_vec()));
                            continue;
                        }
                        Step::Close(_) => return None,
                        _ => {}
                    }
                    break;
                }
                Step::Auth { .. } => {
                    assert!(s.tls_active(), "Step::Auth without TLS");
                    s.auth_result(if auth_ok { granted("erp") } else { refused() })
                }
                Step::CheckRecipient { .. } => s.recipient_checked(Ok(())),
                Step::AdmitMessage { .. } => s.message_admitted(Ok(())),
                Step::AdmitRecipient { .. } => s.recipient_admitted(Ok(())),
                Step::Queue(tx) => return Some(*tx),
            };
        }
    }
    None
}

#[test]
fn no_command_order_reaches_queue_without_a_credential() {
    let plain = format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0pw"));
    let user = format!("{}\r\n", b64(b"erp"));
    let alphabet: Vec<&[u8]> = vec![
        b"EHLO x\r\n",
        b"HELO x\r\n",
        b"STARTTLS\r\n",
        plain.as_bytes(),
        b"AUTH LOGIN\r\n",
        user.as_bytes(),
        b"MAIL FROM:<a@example.com>\r\n",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
        b"RSET\r\n",
        b"*\r\n",
    ];
    let n = alphabet.len();
    let try_all = |cmds: &[&[u8]]| {
        // `check`: recipients go through Step::CheckRecipient (DNS/hook),
        // which the driver always answers with success.
        for (starttls, tls, check) in [
            (true, false, true),
            (false, false, false),
            (false, true, true),
        ] {
            let cfg = SessionConfig {
                starttls,
                max_bad_commands: u32::MAX,
                validation: if check {
                    checking_rules()
                } else {
                    Arc::default()
                },
                ..config()
            };
            // Failed AUTH everywhere; successful AUTH impossible without TLS.
            let mut s = session_with(cfg.clone(), STRANGER, tls);
            assert!(
                drive(&mut s, cmds, false).is_none(),
                "open relay via {cmds:?}"
            );
            if !starttls && !tls {
                let mut s = session_with(cfg, STRANGER, tls);
                assert!(
                    drive(&mut s, cmds, true).is_none(),
                    "relay without TLS via {cmds:?}"
                );
            }
        }
    };
    for len in 1..=4u32 {
        for mut code in 0..n.pow(len) {
            let cmds: Vec<&[u8]> = (0..len)
                .map(|_| {
                    let c = alphabet[code % n];
                    code /= n;
                    c
                })
                .collect();
            try_all(&cmds);
        }
    }
    // Longer random orders (deterministic xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..20_000 {
        let cmds: Vec<&[u8]> = (0..12)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % n as u64) as usize]
            })
            .collect();
        try_all(&cmds);
    }
    // Controls: the same driver does reach Queue with a real credential.
    let mut s = session(TRUSTED, false);
    let cmds: [&[u8]; 4] = [
        b"EHLO x\r\n",
        b"MAIL FROM:<a@example.com>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
    ];
    assert!(drive(&mut s, &cmds, false).is_some());
    let checking = SessionConfig {
        validation: checking_rules(),
        ..config()
    };
    let mut s = session_with(checking, TRUSTED, false);
    assert!(drive(&mut s, &cmds, false).is_some_and(|tx| tx.rcpt_to == ["b@example.com"]));
    let mut s = session(STRANGER, false);
    let cmds = [
        b"EHLO x\r\n" as &[u8],
        b"STARTTLS\r\n",
        b"EHLO x\r\n",
        plain.as_bytes(),
        cmds[1],
        cmds[2],
        cmds[3],
    ];
    assert!(drive(&mut s, &cmds, true).is_some_and(|tx| tx.authenticated && tx.tls));
}
