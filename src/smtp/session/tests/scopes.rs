//! Credential scopes as the session applies them: AUTH attempts per
//! connection, a login revoked by a reload, per-credential recipient and
//! size limits, recipient-domain scope.

use super::*;
use std::sync::Mutex;

/// A policy whose answers the test changes between commands, the way a
/// reload changes the daemon's.
#[derive(Default)]
struct Scoped {
    /// Recipients given back by each `release`, in order.
    released: Mutex<Vec<u32>>,
    revoked: Mutex<bool>,
    suspended: Mutex<bool>,
    limits: CredentialLimits,
    denied_domain: Option<&'static str>,
}

impl Policy for Scoped {
    fn network_credential(&self, _: IpAddr) -> Option<Arc<str>> {
        None
    }
    fn check_sender(&self, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
    fn check_login(&self, _: &Grant, _: IpAddr) -> Result<(), Reply> {
        if *self.revoked.lock().unwrap() {
            Err(Reply::new(535, "5.7.8", "no longer valid"))
        } else {
            Ok(())
        }
    }
    fn check_suspended(&self, credential: &str) -> Result<(), Reply> {
        if *self.suspended.lock().unwrap() {
            Err(Reply::new(
                550,
                "5.7.1",
                format!("Credential \"{credential}\" is suspended"),
            ))
        } else {
            Ok(())
        }
    }
    fn limits(&self, _: &str) -> CredentialLimits {
        self.limits.clone()
    }
    fn release(&self, _: &str, _: &str, _: IpAddr, recipients: u32) {
        self.released.lock().unwrap().push(recipients);
    }
    fn check_recipient(&self, credential: &str, rcpt: &Address) -> Result<(), Reply> {
        match self.denied_domain {
            Some(d) if rcpt.domain_name() == Some(d) => Err(Reply::new(
                550,
                "5.7.1",
                format!("Recipient <{rcpt}> not allowed for credential \"{credential}\""),
            )),
            _ => Ok(()),
        }
    }
}

fn logged_in(policy: Arc<Scoped>) -> Session {
    let mut s = Session::new(Arc::new(config()), policy, STRANGER, true);
    send(&mut s, "EHLO client.example");
    let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0app\0pw")).as_bytes());
    assert!(matches!(step, Step::Auth { .. }));
    assert!(s.auth_result(granted("app")).is_positive());
    s
}

#[test]
fn fourth_auth_attempt_on_a_connection_closes_it() {
    let mut s = session(STRANGER, true);
    send(&mut s, "EHLO client.example");
    for _ in 0..3 {
        let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0bad")).as_bytes());
        assert!(matches!(step, Step::Auth { .. }), "{step:?}");
        assert!(wire(&s.auth_result(refused())).starts_with("535 5.7.8"));
    }
    let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0erp\0pw")).as_bytes());
    assert!(step.is_close(), "{step:?}");
    assert_eq!(
        wire(&step),
        "421 4.7.0 relay.example.com Too many AUTH attempts, closing connection\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn revoked_login_is_refused_at_next_mail_and_forgotten() {
    let policy = Arc::new(Scoped::default());
    let mut s = logged_in(policy.clone());
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250"));
    send(&mut s, "RSET");
    *policy.revoked.lock().unwrap() = true;
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com>"),
        "535 5.7.8 no longer valid\r\n"
    );
    assert!(!s.is_authenticated());
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("530 5.7.0"));
    // A fresh AUTH is allowed again.
    let step = s.command(format!("AUTH PLAIN {}\r\n", b64(b"\0app\0pw")).as_bytes());
    assert!(matches!(step, Step::Auth { .. }));
}

#[test]
fn suspended_credential_is_refused_at_each_mail_but_keeps_its_login() {
    let policy = Arc::new(Scoped::default());
    let mut s = logged_in(policy.clone());
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250"));
    // A transaction under way when the suspension lands may finish.
    *policy.suspended.lock().unwrap() = true;
    assert!(send(&mut s, "RCPT TO:<x@example.net>").starts_with("250"));
    send(&mut s, "RSET");
    for _ in 0..2 {
        assert_eq!(
            send(&mut s, "MAIL FROM:<a@example.com>"),
            "550 5.7.1 Credential \"app\" is suspended\r\n"
        );
    }
    // Still authenticated: resuming lets the same session send again.
    assert!(s.is_authenticated());
    *policy.suspended.lock().unwrap() = false;
    assert!(send(&mut s, "MAIL FROM:<a@example.com>").starts_with("250"));
}

#[test]
fn credential_recipient_limit_names_the_credential() {
    let policy = Arc::new(Scoped {
        limits: CredentialLimits {
            max_recipients: Some(1),
            max_message_size: None,
        },
        ..Scoped::default()
    });
    let mut s = logged_in(policy);
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert!(send(&mut s, "RCPT TO:<x@example.net>").starts_with("250"));
    assert_eq!(
        send(&mut s, "RCPT TO:<y@example.net>"),
        "452 4.5.3 Too many recipients (credential \"app\" allows 1)\r\n"
    );
}

#[test]
fn credential_size_limit_in_ehlo_mail_and_data() {
    let policy = Arc::new(Scoped {
        limits: CredentialLimits {
            max_recipients: None,
            max_message_size: Some(SizeLimit {
                bytes: 100,
                by: "credential \"app\"".into(),
            }),
        },
        ..Scoped::default()
    });
    let mut s = logged_in(policy);
    assert!(send(&mut s, "EHLO client.example").contains("250-SIZE 100\r\n"));
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> SIZE=101"),
        "552 5.3.4 Message size exceeds the limit of credential \"app\" (100 bytes)\r\n"
    );
    assert!(send(&mut s, "MAIL FROM:<a@example.com> SIZE=100").starts_with("250"));
    send(&mut s, "RCPT TO:<x@example.net>");
    assert!(send(&mut s, "DATA").starts_with("354"));
    let mut d = s.new_data_decoder();
    let body = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(200));
    d.feed(body.as_bytes());
    assert_eq!(
        wire(&s.data_finished(d.finish())),
        "552 5.3.4 Message size exceeds the limit of credential \"app\" (100 bytes)\r\n"
    );
}

#[test]
fn listener_limit_wins_when_it_is_smaller() {
    let policy = Arc::new(Scoped {
        limits: CredentialLimits {
            max_recipients: Some(50),
            max_message_size: Some(SizeLimit {
                bytes: 1 << 20,
                by: "route \"bulk\"".into(),
            }),
        },
        ..Scoped::default()
    });
    let mut s = logged_in(policy);
    assert!(send(&mut s, "EHLO client.example").contains("250-SIZE 1000\r\n"));
    assert_eq!(
        send(&mut s, "MAIL FROM:<a@example.com> SIZE=1001"),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
}

#[test]
fn recipient_domain_scope() {
    let policy = Arc::new(Scoped {
        denied_domain: Some("blocked.example"),
        ..Scoped::default()
    });
    let mut s = logged_in(policy);
    send(&mut s, "MAIL FROM:<a@example.com>");
    assert_eq!(
        send(&mut s, "RCPT TO:<x@blocked.example>"),
        "550 5.7.1 Recipient <x@blocked.example> not allowed for credential \"app\"\r\n"
    );
    assert!(send(&mut s, "RCPT TO:<x@fine.example>").starts_with("250"));
}

/// MAIL and two RCPTs, on a fresh transaction.
fn open_transaction(s: &mut Session) {
    assert!(send(s, "MAIL FROM:<a@example.com>").starts_with("250"));
    assert!(send(s, "RCPT TO:<x@example.net>").starts_with("250"));
    assert!(send(s, "RCPT TO:<y@example.net>").starts_with("250"));
}

#[test]
fn abandoned_transactions_give_back_what_they_counted() {
    let policy = Arc::new(Scoped::default());
    let released = || policy.released.lock().unwrap().clone();
    let mut s = logged_in(policy.clone());

    open_transaction(&mut s);
    send(&mut s, "RSET");
    assert_eq!(released(), [2], "RSET");

    open_transaction(&mut s);
    send(&mut s, "EHLO again.example");
    assert_eq!(released(), [2, 2], "EHLO inside a transaction");

    // A message that is queued keeps its counts.
    open_transaction(&mut s);
    let tx = queue(&mut s, b"Subject: x\r\n\r\nbody\r\n.\r\n");
    assert_eq!(tx.rcpt_to.len(), 2);
    assert!(s.queued(Ok("Q1".into())).is_positive());
    assert_eq!(released(), [2, 2]);

    // One the spool refuses does not.
    open_transaction(&mut s);
    queue(&mut s, b"Subject: x\r\n\r\nbody\r\n.\r\n");
    s.queued(Err(Reply::new(452, "4.3.1", "disk full")));
    assert_eq!(released(), [2, 2, 2], "spool refused");

    // Nor one refused at the end of DATA.
    send(&mut s, "MAIL FROM:<a@example.com>");
    send(&mut s, "RCPT TO:<x@example.net>");
    assert!(send(&mut s, "DATA").starts_with("354"));
    let mut d = s.new_data_decoder();
    d.feed(format!("{}\r\n.\r\n", "x".repeat(2000)).as_bytes());
    assert!(wire(&s.data_finished(d.finish())).starts_with("552"));
    assert_eq!(released(), [2, 2, 2, 1], "DATA too large");

    // A connection that goes away mid-transaction.
    open_transaction(&mut s);
    drop(s);
    assert_eq!(released(), [2, 2, 2, 1, 2], "dropped session");
}
