use super::*;

#[test]
fn removes_only_the_leading_signature_fields() {
    let msg = b"DKIM-Signature: v=1; a=ed25519-sha256;\r\n\tb=abc;\r\n\
            dkim-signature: v=1; a=rsa-sha256;\r\n b=def;\r\n\
            Received: from x\r\n\tby y\r\n\
            DKIM-Signature: client's own\r\n\
            From: a@example.com\r\n\r\nbody\r\n";
    let want = b"Received: from x\r\n\tby y\r\n\
            DKIM-Signature: client's own\r\n\
            From: a@example.com\r\n\r\nbody\r\n";
    assert_eq!(strip_signatures(msg), &want[..]);
    assert_eq!(strip_signatures(want), &want[..]);
    assert_eq!(strip_signatures(b""), b"");
    let unterminated = b"DKIM-Signature: v=1";
    assert_eq!(strip_signatures(unterminated), &unterminated[..]);
}
