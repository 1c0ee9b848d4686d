//! Postfix as a smarthost client of postern (secure, encrypt and
//! wrappermode), with the matrix's message (tests/it/clients.rs).

use super::*;

/// A Linux server's Postfix hands a program's message (raw UTF-8 subject,
/// as `sendmail -t` scripts and cron write it) to postern as its relayhost.
/// `verify`: `smtp_tls_security_level = secure` (certificate and name
/// checked) rather than `encrypt`; `smtputf8`: whether Postfix's SMTPUTF8
/// autodetection (on by default for mail submitted with sendmail) is left on.
fn postfix_relays(tls: PostfixTls, verify: bool, smtputf8: bool) {
    let w = World::new();
    let port = w.port(match tls {
        PostfixTls::Starttls => Tls::Starttls,
        PostfixTls::Wrapper => Tls::Implicit,
    });
    let extra: &[&str] = if smtputf8 {
        &[]
    } else {
        &["smtputf8_enable = no"]
    };
    let pf = Postfix::start(&Smarthost {
        port,
        tls,
        ca_file: std::path::Path::new(&w.ca_file()),
        user: "app",
        password: &token().0,
        // The relayhost is an IP literal here; a server names postern's host.
        verify_name: verify.then_some("localhost"),
        extra,
    });
    let msg = raw_message("postfix");
    pf.sendmail(FROM, &RCPTS, &msg);
    let sent = pf.wait_log_line(&["status="]);
    assert!(
        sent.contains("status=sent") && sent.contains("queued as"),
        "Postfix did not relay the message: {sent}\npostern log:\n{}",
        w.p.log()
    );
    let (req, m) = check_delivery(
        &w,
        Expect {
            ehlo: POSTFIX_HOSTNAME,
            sent: None,
            output: Some(&sent),
            // With SMTPUTF8 the raw UTF-8 subject is legitimate and kept;
            // without it, postern's header_8bit = "encode" repairs it.
            smtputf8,
        },
    );
    assert!(
        sent.contains(&format!("relay=127.0.0.1[127.0.0.1]:{port}")),
        "Postfix did not relay through postern: {sent}"
    );
    let log = pf.log();
    assert_eq!(
        log.lines().filter(|l| l.contains("status=sent")).count(),
        RCPTS.len(),
        "one status=sent per recipient, in one delivery:\n{log}"
    );
    // "Verified": chain and name checked (secure); "Trusted": chain only (encrypt).
    let established = if verify {
        "Verified TLS connection established to 127.0.0.1"
    } else {
        "Trusted TLS connection established to 127.0.0.1"
    };
    assert!(
        log.contains(established),
        "no `{established}` in Postfix's log:\n{log}"
    );
    let listing = pf.queue_listing();
    assert!(
        listing.contains("Mail queue is empty"),
        "Postfix's queue did not drain:\n{listing}\n{log}"
    );

    // Postfix's own trace header follows postern's: the hop from the program to the server's MTA.
    let received = m["received"].as_array().expect("received");
    assert_eq!(
        received.len(),
        2,
        "postern's and Postfix's Received headers: {received:?}"
    );
    let local = received[1].as_str().unwrap_or_default();
    assert!(
        local.starts_with(&format!("by {POSTFIX_HOSTNAME} (Postfix")),
        "second Received should be Postfix's pickup: {local}"
    );
    // Below the headers Postfix adds, the message is what the program wrote.
    let (_, rest) = split_received(&req.body);
    let (_, body) = fields_and_body(rest);
    let sent = crlf(&msg);
    let (_, sent_body) = fields_and_body(&sent);
    assert_bytes_eq(body, sent_body, "body relayed by Postfix");
}

#[test]
fn postfix_smarthost_starttls() {
    postfix_relays(PostfixTls::Starttls, true, true);
}

#[test]
fn postfix_smarthost_wrappermode_implicit_tls() {
    postfix_relays(PostfixTls::Wrapper, true, true);
}

/// `encrypt` as many guides write it, and `smtputf8_enable = no`, the
/// setting docs/clients.md gives for upstreams that need 7-bit headers.
#[test]
fn postfix_smarthost_encrypt_without_smtputf8_gets_the_subject_encoded() {
    postfix_relays(PostfixTls::Starttls, false, false);
}
