use super::*;

fn trace<'a>(rcpt: &'a [String]) -> Trace<'a> {
    Trace {
        helo: "client\r\nInjected: yes",
        peer: "::ffff:192.0.2.7".parse().unwrap(),
        hostname: "relay.test",
        tls: true,
        authenticated: true,
        queue_id: "ABC123",
        rcpt_to: rcpt,
    }
}

#[test]
fn received_header_shape() {
    let rcpt = vec!["b@example.net".to_string()];
    let t = trace(&rcpt);
    let h = received_header(&t, SystemTime::UNIX_EPOCH);
    assert_eq!(
        h,
        "Received: from clientInjected:yes ([192.0.2.7])\r\n\tby relay.test (postern) with ESMTPSA id ABC123\r\n\tfor <b@example.net>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
    );
    let two = vec!["a@x".to_string(), "b@y".to_string()];
    let h = received_header(
        &Trace {
            rcpt_to: &two,
            tls: false,
            authenticated: false,
            ..t
        },
        SystemTime::UNIX_EPOCH,
    );
    assert!(h.contains("with ESMTP id ABC123;") && !h.contains("for <"));
}

#[test]
fn ipv6_peer_is_an_address_literal() {
    let rcpt = vec![];
    let t = Trace {
        peer: "2001:db8::1".parse().unwrap(),
        ..trace(&rcpt)
    };
    assert!(received_header(&t, SystemTime::UNIX_EPOCH).contains("([IPv6:2001:db8::1])"));
}

#[test]
fn private_form_names_neither_client_address_nor_helo() {
    let rcpt = vec!["b@example.net".to_string()];
    let h = private_received_header(&trace(&rcpt), SystemTime::UNIX_EPOCH);
    assert_eq!(
        h,
        "Received: by relay.test (postern) with ESMTPSA id ABC123\r\n\tfor <b@example.net>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
    );
}

#[test]
fn date_is_rfc5322() {
    assert_eq!(
        rfc5322_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 365)),
        "Fri, 01 Jan 1971 00:00:00 +0000"
    );
}
