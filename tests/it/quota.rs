//! Rate limits at SMTP time: a client over its quota is refused at MAIL
//! FROM with a retry hint, nothing over the limit reaches the upstream, and
//! day counters survive a restart.

use crate::common::*;

fn limited(url: &str, quota: &str) -> Config {
    let mut c = Config::new(url).listeners(&["none"]).credential(
        "[credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*@example.com\"]\n"
            .to_string(),
    );
    c.extra = quota.to_string();
    c
}

/// Sends one message on a fresh connection; returns the reply to MAIL FROM
/// or, when MAIL was accepted, the reply to the end of DATA.
fn send_one(p: &Postern, n: usize) -> Reply {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let r = c.cmd("MAIL FROM:<app@example.com>");
    if r.code != 250 {
        c.quit();
        return r;
    }
    c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
    c.cmd("DATA").expect_code(354, "DATA");
    c.send(&simple_message(
        "app@example.com",
        "bob@dest.test",
        &format!("quota {n}"),
    ));
    c.send(b".\r\n");
    let r = c.read_reply();
    c.quit();
    r
}

#[test]
fn sixth_message_in_a_minute_gets_451_with_retry_hint() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &limited(&up.url(), "[quota.credential]\nper_minute = 5\n"),
    );
    for n in 0..5 {
        send_one(&p, n).expect(250, "2.0.0", "within the limit");
    }
    let r = send_one(&p, 5);
    r.expect(451, "4.7.1", "sixth message");
    assert!(r.text().contains("Rate limit"), "{r:?}");
    assert!(r.text().contains("credential lan"), "{r:?}");
    assert!(r.text().contains("retry in"), "{r:?}");
    // Exactly the five accepted messages reach the upstream.
    p.delivered(&up, 5);
    p.wait_queue_empty();
    assert_eq!(up.count(), 5, "{:#?}", up.requests());
    assert!(p.log().contains("rate limit refusal"), "refusal not logged");
}

#[test]
fn day_counter_survives_a_restart() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = limited(&up.url(), "[quota.credential]\nper_day = 2\n");
    let mut p = Postern::start(&ca, &cfg);
    send_one(&p, 0).expect(250, "2.0.0", "first");
    send_one(&p, 1).expect(250, "2.0.0", "second");
    p.delivered(&up, 2);
    // SIGTERM persists the counters; a fresh process must still refuse.
    p.sigterm();
    p.wait_exit(std::time::Duration::from_secs(30));
    p.restart(&cfg);
    send_one(&p, 2).expect(451, "4.7.1", "third message after restart");
}

#[test]
fn abandoned_transactions_do_not_use_up_the_quota() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &limited(
            &up.url(),
            "[quota.credential]\nper_day = 2\nrecipients_per_day = 2\n",
        ),
    );
    // Address probes: MAIL, RCPT, then RSET or QUIT, many times over.
    for n in 0..5 {
        let mut c = SmtpClient::connect(p.port(0));
        c.greet();
        c.cmd("MAIL FROM:<app@example.com>")
            .expect_code(250, "MAIL");
        c.cmd("RCPT TO:<bob@dest.test>").expect_code(250, "RCPT");
        if n % 2 == 0 {
            c.cmd("RSET").expect_code(250, "RSET");
        }
        c.quit();
    }
    // The whole day's allowance is still there, and no more.
    send_one(&p, 0).expect(250, "2.0.0", "first real message");
    send_one(&p, 1).expect(250, "2.0.0", "second real message");
    send_one(&p, 2).expect(451, "4.7.1", "third: the limit holds");
    p.delivered(&up, 2);
    p.wait_queue_empty();
    assert_eq!(up.count(), 2);
}
