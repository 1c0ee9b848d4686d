//! Address validation end to end: every MAIL/RCPT rejection has its exact
//! reply code, nothing rejected ever reaches the upstream, and accepted
//! addresses reach it normalized (IDN domains as A-labels). Recipient-domain
//! checks run against a real DNS server (dnsmasq on loopback); the
//! verification hook is a local HTTPS server.
//!
//! "Nothing reached the upstream" is shown without timing: each test ends
//! with one accepted control message, waits for it, and then checks that it
//! was the only request and carries only the accepted recipients.

use crate::common::*;
use crate::dnsmasq::{Dnsmasq, dead_resolver, txt};

/// postern trusting loopback (no AUTH needed) on a plain listener.
fn config(up: &MockUpstream, extra: &str) -> Config {
    let mut c = Config::new(&up.url())
        .listeners(&["none"])
        .with_loopback_network();
    c.extra = extra.to_string();
    c
}

fn session(p: &Postern, mail_from: &str) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.cmd(&format!("MAIL FROM:{mail_from}"))
        .expect(250, "2.1.0", mail_from);
    c
}

fn message() -> Vec<u8> {
    simple_message("app@example.com", "rcpt@dest.test", "validation")
}

/// Sends DATA, expects 250, and returns the single upstream request after
/// the spool has drained.
fn deliver_only(p: &Postern, up: &MockUpstream, c: &mut SmtpClient) -> Recorded {
    c.data(&message()).expect(250, "2.0.0", "DATA");
    c.quit();
    let reqs = p.delivered(up, 1);
    p.wait_queue_empty();
    assert_eq!(
        up.count(),
        1,
        "exactly one upstream request: {:?}",
        up.requests()
    );
    reqs[0].clone()
}

#[test]
fn bad_syntax_is_501_and_idn_reaches_the_upstream_as_a_labels() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &config(&up, "[validation]\nallow_quoted_local_parts = true"),
    );

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    for (from, why) in [
        ("<@hop.test:app@example.com>", "source routes"),
        ("<app@example..com>", "empty label"),
    ] {
        let r = c.cmd(&format!("MAIL FROM:{from}"));
        r.expect(501, "5.1.3", from);
        assert!(r.text().contains(why), "{from}: {:?}", r.lines);
    }
    c.cmd("MAIL FROM:<app@example.com> SMTPUTF8")
        .expect(250, "2.1.0", "MAIL");
    let long = format!("<{}@dest.test>", "l".repeat(65));
    for (rcpt, why) in [
        ("<@relay.test,@b.test:user@dest.test>", "source routes"),
        ("<user%other.test@dest.test>", "'%'"),
        ("<other!user@dest.test>", "'!'"),
        ("<user@dest..test>", "empty label"),
        ("<a@b@dest.test>", "'@' is not allowed"),
        ("<user@[10.0.0.256]>", "not an IPv4 address"),
        ("<postmaster>", "no @domain"),
        (long.as_str(), "longer than 64 octets"),
        ("<user@ｄｅｓｔ.test>", "IDNA would change"),
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        r.expect(501, "5.1.3", rcpt);
        assert!(r.text().contains(why), "{rcpt}: {:?}", r.lines);
    }
    c.cmd("DATA")
        .expect(554, "5.5.1", "DATA without recipients");

    // Control: the same session, valid recipients of every form.
    for (rcpt, stored) in [
        ("<user@bücher.example>", "user@xn--bcher-kva.example"),
        ("<\"john doe\"@dest.test>", "\"john doe\"@dest.test"),
        ("<ops@[127.0.0.1]>", "ops@[127.0.0.1]"),
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        r.expect(250, "2.1.5", rcpt);
        assert_eq!(r.text(), format!("2.1.5 Recipient <{stored}> ok"));
    }
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(
        req.header_all("x-postern-rcpt-to"),
        [
            "user@xn--bcher-kva.example",
            "\"john doe\"@dest.test",
            "ops@[127.0.0.1]"
        ]
    );
    assert_eq!(req.one_header("x-postern-mail-from"), "app@example.com");
}

#[test]
fn recipient_domain_patterns_are_550_5_7_1() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &config(
            &up,
            "[validation]\nallowed_recipient_domains = [\"dest.test\", \"*.dest.test\"]\n\
             denied_recipient_domains = [\"blocked.dest.test\"]\n",
        ),
    );
    let mut c = session(&p, "<app@example.com>");
    for (rcpt, domain) in [
        ("<x@other.test>", "other.test"),
        ("<x@blocked.dest.test>", "blocked.dest.test"),
        ("<x@[127.0.0.1]>", "[127.0.0.1]"),
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        r.expect(550, "5.7.1", rcpt);
        assert!(
            r.text().contains(&format!("recipient domain {domain} ")),
            "{rcpt}: {:?}",
            r.lines
        );
    }
    c.cmd("RCPT TO:<ok@dest.test>").expect(250, "2.1.5", "apex");
    c.cmd("RCPT TO:<ok@sub.dest.test>")
        .expect(250, "2.1.5", "subdomain");
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(
        req.header_all("x-postern-rcpt-to").join(", "),
        "ok@dest.test, ok@sub.dest.test"
    );
}

#[test]
fn recipient_domain_must_exist_in_dns() {
    let dns = Dnsmasq::start(&[
        "--mx-host=dest.test,mx.dest.test,10".into(),
        "--host-record=mx.dest.test,127.0.0.1".into(),
        "--host-record=aonly.test,127.0.0.2".into(),
        "--mx-host=xn--bcher-kva.test,mx.dest.test,10".into(),
        txt("txtonly.test", "not a mail domain"),
        "--mx-host=nullmx.test,.,0".into(),
    ]);
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let extra = format!(
        "[validation]\ncheck_recipient_domain = true\nresolver = \"{}\"\ndns_timeout = \"20s\"\n",
        dns.addr()
    );
    let p = Postern::start(&ca, &config(&up, &extra));
    let mut c = session(&p, "<app@example.com> SMTPUTF8");
    for (rcpt, code, enhanced, why) in [
        ("<a@nx.test>", 550, "5.1.2", "domain nx.test does not exist"),
        (
            "<a@txtonly.test>",
            550,
            "5.1.2",
            "domain txtonly.test has no MX or A/AAAA records",
        ),
        (
            "<a@nullmx.test>",
            556,
            "5.1.10",
            "does not accept mail (null MX)",
        ),
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        assert!(
            r.is(code, enhanced) && r.text().contains(why),
            "{rcpt}: {:?}\ndnsmasq log:\n{}",
            r.lines,
            dns.log()
        );
    }
    for rcpt in ["<a@dest.test>", "<b@aonly.test>", "<user@bücher.test>"] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}"));
        assert!(
            r.is(250, "2.1.5"),
            "{rcpt}: {:?}\ndnsmasq log:\n{}",
            r.lines,
            dns.log()
        );
    }
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(
        req.header_all("x-postern-rcpt-to").join(", "),
        "a@dest.test, b@aonly.test, user@xn--bcher-kva.test"
    );
    let log = dns.log();
    assert!(log.contains("query[MX] xn--bcher-kva.test"), "{log}");
}

#[test]
fn dns_failure_is_450_4_4_3() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let extra = format!(
        "[validation]\ncheck_recipient_domain = true\nresolver = \"{}\"\ndns_timeout = \"2s\"\n",
        dead_resolver()
    );
    let p = Postern::start(&ca, &config(&up, &extra));
    let mut c = session(&p, "<app@example.com>");
    let r = c.cmd("RCPT TO:<a@dest.test>");
    r.expect(450, "4.4.3", "no DNS server");
    assert!(
        r.text().contains("cannot look up domain dest.test")
            && r.text().ends_with("try again later"),
        "{:?}",
        r.lines
    );
    // Literals need no DNS: the control message still goes through.
    c.cmd("RCPT TO:<ops@[127.0.0.1]>")
        .expect(250, "2.1.5", "literal");
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(req.one_header("x-postern-rcpt-to"), "ops@[127.0.0.1]");
}

/// A second mock plays the verification service.
fn hook_config(up: &MockUpstream, hook: &MockUpstream, ca: &TestCa, on_error: &str) -> Config {
    config(
        up,
        &format!(
            "[validation.hook]\nurl = \"https://127.0.0.1:{}/verify\"\ntimeout = \"20s\"\n\
             on_error = \"{on_error}\"\nbearer_token = \"env:POSTERN_TEST_HOOK_TOKEN\"\nca_file = \"{}\"\n",
            hook.port,
            ca.ca_pem.display()
        ),
    )
}

#[test]
fn hook_verdicts_and_tempfail() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let hook = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    let p = Postern::start_with_env(
        &ca,
        &hook_config(&up, &hook, &ca, "tempfail"),
        &[("POSTERN_TEST_HOOK_TOKEN", "hook-t0ken")],
    );
    hook.push(Scripted::status(200).body(br#"{"valid": false, "reason": "no such mailbox"}"#));
    hook.push(Scripted::status(200).body(br#"{"valid": true}"#));
    let mut c = session(&p, "<app@example.com> SMTPUTF8");
    let r = c.cmd("RCPT TO:<nobody@dest.test>");
    r.expect(550, "5.1.1", "hook says invalid");
    assert_eq!(
        r.text(),
        "5.1.1 Recipient <nobody@dest.test> rejected: no such mailbox"
    );
    c.cmd("RCPT TO:<user@bücher.example>")
        .expect(250, "2.1.5", "hook says valid");
    let r = c.cmd("RCPT TO:<later@dest.test>");
    r.expect(451, "4.4.3", "hook down, on_error = tempfail");
    assert!(r.text().contains("HTTP 503"), "{:?}", r.lines);

    let asked = hook.requests();
    assert_eq!(asked.len(), 3);
    let bodies: Vec<serde_json::Value> = asked
        .iter()
        .map(|q| serde_json::from_slice(&q.body).expect("hook request is JSON"))
        .collect();
    assert_eq!(
        bodies,
        [
            serde_json::json!({"address": "nobody@dest.test"}),
            serde_json::json!({"address": "user@xn--bcher-kva.example"}),
            serde_json::json!({"address": "later@dest.test"}),
        ]
    );
    for q in &asked {
        assert_eq!((q.method.as_str(), q.path.as_str()), ("POST", "/verify"));
        assert_eq!(q.one_header("authorization"), "Bearer hook-t0ken");
        assert_eq!(q.one_header("content-type"), "application/json");
    }
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(
        req.one_header("x-postern-rcpt-to"),
        "user@xn--bcher-kva.example"
    );
}

#[test]
fn hook_failure_with_on_error_accept_accepts() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let hook = MockUpstream::with_default(&ca, Scripted::status(200).body(b"not json"));
    let p = Postern::start_with_env(
        &ca,
        &hook_config(&up, &hook, &ca, "accept"),
        &[("POSTERN_TEST_HOOK_TOKEN", "hook-t0ken")],
    );
    let mut c = session(&p, "<app@example.com>");
    c.cmd("RCPT TO:<someone@dest.test>").expect(
        250,
        "2.1.5",
        "unusable hook answer, on_error = accept",
    );
    assert_eq!(hook.count(), 1, "the hook was asked");
    let req = deliver_only(&p, &up, &mut c);
    assert_eq!(req.one_header("x-postern-rcpt-to"), "someone@dest.test");
    assert!(
        p.log().contains("validation hook failed"),
        "the failure is logged:\n{}",
        p.log()
    );
}
