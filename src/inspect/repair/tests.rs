use super::super::headers::{ScanLimits, scan};
use super::*;

fn edit(data: &[u8], plan: &Plan) -> Vec<u8> {
    let limits = ScanLimits {
        max_count: 100,
        max_size: 1 << 20,
        smtputf8: false,
        eight_bit: crate::inspect::Header8bit::Reject,
    };
    apply(data, &scan(data, limits).unwrap(), plan)
}

const MSG: &[u8] = b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nSubject: s\r\nbCC: again@y\r\nX-Originating-IP: [10.0.0.1]\r\n\r\nBcc: in the body stays\r\n";

#[test]
fn removes_fields_with_their_continuations() {
    let plan = Plan {
        remove: vec!["bcc".into(), "x-originating-ip".into()],
        ..Plan::default()
    };
    assert_eq!(
        edit(MSG, &plan),
        b"From: a@x\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
    );
}

#[test]
fn prefix_patterns_remove_every_field_they_start() {
    let msg = b"From: a@x\r\nX-SES-CONFIGURATION-SET: evil\r\nX-Ses-Source-Arn: arn\r\n\tmore\r\nX-SESAME: keep\r\nX-SMTPAPI: {}\r\nX-SMTPAPI-Not: keep\r\n\r\nX-SES-X: body\r\n";
    let plan = Plan {
        remove: vec!["x-ses-*".into(), "x-smtpapi".into()],
        ..Plan::default()
    };
    assert_eq!(
        edit(msg, &plan),
        b"From: a@x\r\nX-SESAME: keep\r\nX-SMTPAPI-Not: keep\r\n\r\nX-SES-X: body\r\n"
    );
}

#[test]
fn prepends_and_appends_without_touching_the_rest() {
    let plan = Plan {
        prepend: Some("Received: by r;\r\n\tdate\r\n".into()),
        remove: vec![],
        append: vec!["Date: d\r\n".into(), "Message-ID: <m@h>\r\n".into()],
    };
    let mut want = b"Received: by r;\r\n\tdate\r\n".to_vec();
    want.extend_from_slice(
            b"From: a@x\r\nBcc: secret@y,\r\n  other@z\r\nSubject: s\r\nbCC: again@y\r\nX-Originating-IP: [10.0.0.1]\r\nDate: d\r\nMessage-ID: <m@h>\r\n\r\nBcc: in the body stays\r\n",
        );
    assert_eq!(edit(MSG, &plan), want);
    assert_eq!(edit(MSG, &Plan::default()), MSG);
}

#[test]
fn header_only_message() {
    let plan = Plan {
        append: vec!["Date: d\r\n".into()],
        ..Plan::default()
    };
    assert_eq!(edit(b"From: a@x\r\n", &plan), b"From: a@x\r\nDate: d\r\n");
    assert_eq!(edit(b"From: a@x", &plan), b"From: a@x\r\nDate: d\r\n");
}

#[test]
fn message_ids_are_unique_and_well_formed() {
    let a = new_message_id("relay.test", "Q1");
    let b = new_message_id("relay.test", "Q1");
    assert_ne!(a, b);
    assert!(
        a.starts_with('<') && a.ends_with("@relay.test>") && a.len() == 45,
        "{a}"
    );
    assert!(new_message_id("bad host<>", "Q").ends_with("@badhost>"));
    assert!(new_message_id("", "Q").ends_with("@localhost>"));
}
