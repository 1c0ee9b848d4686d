//! The console's pages and actions against the real binary, signed in
//! through the pysaml2 IdP (tests/it/console.rs): a dead letter found in
//! the queue, its headers but not its body, its history, retried through
//! the confirmation step and delivered; the body shown to an admin only,
//! audited; a credential suspended so that the next MAIL is refused, and
//! resumed; the audit log filtered by queue id; the configuration page.

use std::time::Duration;

use crate::common::*;
use crate::console::{hidden, setup};

/// One message from `app` over STARTTLS + AUTH; the reply to the dot.
fn send(s: &crate::console::Setup, subject: &str) -> Reply {
    let mut c = SmtpClient::connect(s.p.port(0));
    c.greet_starttls(&s.ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "auth");
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
    c.quit();
    r
}

#[test]
fn a_dead_letter_is_found_shown_retried_and_delivered() {
    let s = setup("");
    s.up.push(Scripted::status(400).body(b"bad recipient"));
    let r = send(&s, "console dead letter");
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    assert!(
        wait_until(Duration::from_secs(30), || s.p.dead_files().contains(&id)),
        "never dead-lettered:\n{}",
        s.p.log()
    );

    let op = s.sign_in("otto");
    // Found by recipient and by state; not by another sender.
    let page = s.get("/console/queue?q=bob%40dest.test", &op);
    assert!(page.body.contains(&id), "{}", page.body);
    let page = s.get("/console/queue?state=dead", &op);
    assert!(page.body.contains(&id), "{}", page.body);
    let page = s.get("/console/queue?q=nobody%40else.test", &op);
    assert!(!page.body.contains(&id), "{}", page.body);

    // Envelope, headers and history; never the body for an operator.
    let page = s.get(&format!("/console/message/{id}"), &op);
    assert_eq!(page.status, 200, "{}", page.body);
    for want in [
        "dead",
        "Subject: console dead letter",
        "bad recipient",
        "bob@dest.test",
    ] {
        assert!(page.body.contains(want), "{want} missing: {}", page.body);
    }
    assert!(
        !page.body.contains("Bye."),
        "the body is shown: {}",
        page.body
    );
    assert!(
        !page.body.contains(&format!("/console/message/{id}/body")),
        "an operator is offered the body"
    );
    let csrf = hidden(&page.body, "csrf").unwrap();
    let r = s.post(
        &format!("/console/message/{id}/body"),
        &op,
        &[("csrf", &csrf)],
    );
    assert_eq!(r.status, 403);

    // An admin may see the body; the view is audited.
    let admin = s.sign_in("alice");
    let at = s.csrf(&admin);
    let r = s.post(
        &format!("/console/message/{id}/body"),
        &admin,
        &[("csrf", &at)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Bye."), "{}", r.body);
    s.p.wait_log_line(&["console action", "view_body", "alice"]);

    // Retry: the confirmation page, then the POST.
    let confirm = s.get(&format!("/console/confirm?action=retry&id={id}"), &op);
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let token = hidden(&confirm.body, "csrf").expect("the confirmation form has the token");
    let r = s.post(
        "/console/action",
        &op,
        &[("csrf", &token), ("action", "retry"), ("id", &id)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    s.p.delivered(&s.up, 2);
    s.p.wait_queue_empty();
    assert!(s.p.dead_files().is_empty());
    s.p.wait_log_line(&["console action", "retry", "otto", "operator"]);

    // The audit log, filtered by the queue id, has its whole story.
    let page = s.get(&format!("/console/audit?queue_id={id}"), &op);
    for want in ["accepted", "dead", "requeued", "delivered"] {
        assert!(page.body.contains(want), "{want} missing: {}", page.body);
    }
    assert!(
        !page.body.contains("console_signin"),
        "the filter let other events through"
    );
}

#[test]
fn a_suspended_credential_is_refused_at_mail_until_resumed() {
    let s = crate::console::setup_full("", &[], "[quota.credential]\nper_day = 500\n");
    send(&s, "before").expect(250, "2.0.0", "before the suspension");
    let op = s.sign_in("otto");
    let page = s.get("/console/credentials", &op);
    assert!(
        page.body.contains("cred-app") && page.body.contains("active"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf").unwrap();
    let r = s.post(
        "/console/action",
        &op,
        &[
            ("csrf", &csrf),
            ("action", "suspend"),
            ("id", "app"),
            ("duration", "2h"),
            ("reason", "leaked password"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let mut c = SmtpClient::connect(s.p.port(0));
    c.greet_starttls(&s.ca);
    // Its AUTH is refused, and so the MAIL after it.
    let r = c.auth_plain("app", PASSWORD);
    r.expect(535, "5.7.8", "AUTH of a suspended credential");
    assert!(r.text().contains("suspended"), "{}", r.text());
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "MAIL without AUTH");
    c.quit();
    let page = s.get("/console/credentials", &op);
    assert!(
        page.body.contains("suspended") && page.body.contains("leaked password"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("otto"),
        "the suspension does not say who: {}",
        page.body
    );

    let r = s.post(
        "/console/action",
        &op,
        &[("csrf", &csrf), ("action", "resume"), ("id", "app")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    send(&s, "after").expect(250, "2.0.0", "after resuming");
    s.p.wait_log_line(&["console action", "resume", "otto"]);
}

#[test]
fn the_configuration_page_shows_references_and_check_results() {
    let s = setup("");
    let viewer = s.sign_in("victor");
    let page = s.get("/console/config", &viewer);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("check-ok"), "{}", page.body);
    assert!(page.body.contains("[admin.saml]"), "{}", page.body);
    assert!(
        !page.body.contains("id=\"reload\""),
        "a viewer is offered reload"
    );
    let admin = s.sign_in("alice");
    let page = s.get("/console/config", &admin);
    assert!(page.body.contains("id=\"reload\""), "{}", page.body);
    // The overview has the counts and the upstream.
    let page = s.get("/console/", &viewer);
    assert!(
        page.body.contains("id=\"queued\"") && page.body.contains(">api<"),
        "{}",
        page.body
    );
}

/// The dns-check page runs the same checks as `postern dns-check` for
/// each `[[dkim]]` domain, asking `[validation] resolver` (a dnsmasq on
/// loopback serving a DMARC record, a DKIM key record that is not the
/// configured key, and no SPF).
#[test]
fn the_dns_check_page_checks_each_signing_domain() {
    use crate::dnsmasq::{Dnsmasq, txt};
    let dir = tempfile::tempdir().unwrap();
    let pem = ::postern::dkim::generate_pem(::postern::dkim::Algorithm::Ed25519, None).unwrap();
    let key = dir.path().join("dkim.pem");
    std::fs::write(&key, &pem).unwrap();
    let dns = Dnsmasq::start(&[
        txt("_dmarc.example.com", "v=DMARC1; p=reject"),
        txt("s1._domainkey.example.com", "v=DKIM1; k=ed25519; p=AAAA"),
    ]);
    let tables = format!(
        "[[dkim]]\ndomain = \"example.com\"\nselector = \"s1\"\nalgorithm = \"ed25519\"\nprivate_key = {}\n[validation]\nresolver = {}\n",
        crate::common::postern::toml_str(&format!("file:{}", key.display())),
        crate::common::postern::toml_str(&dns.addr()),
    );
    let s = crate::console::setup_full("", &[], &tables);
    let viewer = s.sign_in("victor");
    let page = s.get("/console/config", &viewer);
    assert!(page.body.contains("href=\"/console/dns\""), "{}", page.body);
    let page = s.get("/console/dns", &viewer);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"domain-example.com\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("DMARC") || page.body.contains("dmarc"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("PASS"),
        "the DMARC record passes: {}",
        page.body
    );
    assert!(
        page.body.contains("FAIL"),
        "SPF is missing, the DKIM key differs: {}",
        page.body
    );
}
