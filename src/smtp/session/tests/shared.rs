//! Quotas kept elsewhere (`[cluster]`): MAIL and RCPT hand the check to
//! the connection as a step, and the transaction opens (or the recipient
//! is added) only once it says yes.

use super::*;

struct SharedPolicy;

impl Policy for SharedPolicy {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        FakePolicy.network_credential(peer)
    }
    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        FakePolicy.check_sender(credential, mail_from)
    }
    fn admit_message(&self, _: &str, _: &str, _: IpAddr) -> Result<(), Reply> {
        panic!("the shared check is a step, not a call");
    }
    fn admit_recipient(&self, _: &str, _: &str, _: IpAddr) -> Result<(), Reply> {
        panic!("the shared check is a step, not a call");
    }
    fn shared_quotas(&self) -> bool {
        true
    }
}

fn over() -> Reply {
    Reply::new(451, "4.7.1", "Rate limit exceeded")
}

#[test]
fn mail_and_rcpt_wait_for_the_shared_check() {
    let mut s = Session::new(Arc::new(config()), Arc::new(SharedPolicy), TRUSTED, false);
    send(&mut s, "EHLO client");
    let step = s.command(b"MAIL FROM:<a@example.com>\r\n");
    let Step::AdmitMessage {
        credential,
        mail_from,
    } = step
    else {
        panic!("expected AdmitMessage, got {step:?}");
    };
    assert_eq!(
        (&*credential, mail_from.as_str()),
        ("scanners", "a@example.com")
    );
    // Refused: no transaction, and not a bad command.
    assert_eq!(
        wire(&s.message_admitted(Err(over()))),
        "451 4.7.1 Rate limit exceeded\r\n"
    );
    assert_eq!(
        send(&mut s, "RCPT TO:<b@example.net>"),
        "503 5.5.1 Need MAIL command first\r\n"
    );

    assert!(matches!(
        s.command(b"MAIL FROM:<a@example.com>\r\n"),
        Step::AdmitMessage { .. }
    ));
    assert_eq!(
        wire(&s.message_admitted(Ok(()))),
        "250 2.1.0 Sender <a@example.com> ok\r\n"
    );
    assert!(matches!(
        s.command(b"RCPT TO:<b@example.net>\r\n"),
        Step::AdmitRecipient { .. }
    ));
    assert!(wire(&s.recipient_admitted(Err(over()))).starts_with("451 4.7.1"));
    assert!(matches!(
        s.command(b"RCPT TO:<c@example.net>\r\n"),
        Step::AdmitRecipient { .. }
    ));
    assert_eq!(
        wire(&s.recipient_admitted(Ok(()))),
        "250 2.1.5 Recipient <c@example.net> ok\r\n"
    );
    let tx = queue(&mut s, b"Subject: x\r\n\r\nx\r\n.\r\n");
    assert_eq!(tx.rcpt_to, vec!["c@example.net".to_string()]);
    // A late answer, with nothing waiting for it, closes the session.
    assert!(s.message_admitted(Ok(())).is_close());
}
