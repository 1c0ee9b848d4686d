//! `kind = "msgraph"` end to end: the real postern binary delivers to a
//! local HTTPS server playing Entra's token endpoint and Microsoft Graph.
//! Checked: the exact token requests (client secret, and a certificate
//! assertion verified against the test certificate), the sendMail request
//! (base64 MIME equal to the spooled message), the large-message path
//! (draft + upload session in checked chunks + send), token lifetime,
//! 401 handling and single-flight refresh. Faults: upstream_msgraph_faults.rs.

use std::time::Duration;

use crate::common::*;
use crate::common_oauth::*;
use crate::msgraph_setup::*;
use base64::Engine as _;
use serde_json::json;

fn b64_lines(data: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

/// multipart/mixed with a text body and the given attachments.
fn message(subject: &str, attachments: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = format!(
        "Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nFrom: App <app@example.com>\r\nTo: Bob <bob@dest.test>\r\nSubject: {subject}\r\nMessage-ID: <{}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe body of {subject}.\r\n",
        subject.replace(' ', "-")
    );
    for (name, data) in attachments {
        m.push_str(&format!(
            "--=_b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64_lines(data)
        ));
    }
    m.push_str("--=_b--\r\n");
    m.into_bytes()
}

#[test]
fn client_secret_token_and_mime_send_carry_the_exact_message() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let small = pattern(5000, 1);
    let msg = message("graph small", &[("small.bin", &small)]);
    submit(&p, &ca, &["bob@dest.test"], &msg);
    // Second message: one envelope recipient the headers do not name.
    let msg2 = dated_message("app@example.com", "bob@dest.test", "second");
    submit(&p, &ca, &["bob@dest.test", "hidden@other.test"], &msg2);
    let sent = mock.wait_sent(2);
    p.wait_queue_empty();

    let tokens = mock.token_requests();
    assert_eq!(tokens.len(), 1, "one token for both messages");
    assert_eq!(tokens[0].path, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(
        tokens[0].one_header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        form(&tokens[0].body),
        [
            ("client_id", "client-1"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", SECRET),
            ("grant_type", "client_credentials"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );

    let sends = api_requests(&mock, "/sendMail");
    assert_eq!(sends.len(), 2);
    for r in &sends {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1.0/users/app@example.com/sendMail");
        assert_eq!(r.one_header("authorization"), "Bearer tok-1");
        assert_eq!(r.one_header("content-type"), "text/plain");
    }
    // Two workers: either may finish first.
    let (first, second) = if mime_of(&sent[0]).1.starts_with(b"Bcc:") {
        (&sent[1], &sent[0])
    } else {
        (&sent[0], &sent[1])
    };
    let (mailbox, mime) = mime_of(first);
    assert_eq!(mailbox, "app@example.com");
    assert_forwarded(mime, &msg);
    let (_, mime2) = mime_of(second);
    let rest = mime2
        .strip_prefix(b"Bcc: hidden@other.test\r\n".as_slice())
        .unwrap_or_else(|| panic!("no Bcc header first:\n{}", show(&mime2[..200])));
    assert_forwarded(rest, &msg2);

    let log = p.log();
    assert!(
        log.contains("req-"),
        "request-id logged as upstream id:\n{log}"
    );
    assert!(
        !log.contains(SECRET) && !log.contains("tok-1"),
        "secret or token in the log:\n{log}"
    );
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());
}

#[test]
fn certificate_assertion_is_verifiable_with_the_certificate() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let (key_pem, public_der) = rsa_key();
    let kp = rcgen::KeyPair::from_pem(key_pem).expect("rcgen loads the RSA key");
    let cert = rcgen::CertificateParams::new(vec!["postern-graph-app".to_string()])
        .expect("params")
        .self_signed(&kp)
        .expect("self-signed");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("app.pem");
    let key_path = dir.path().join("app.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key_pem).unwrap();
    let auth = format!(
        "client_certificate = \"{}\"\nclient_key = \"file:{}\"",
        cert_path.display(),
        key_path.display()
    );
    let p = start(&ca, &config(&ca, &mock, &auth, ""));
    let msg = dated_message("app@example.com", "bob@dest.test", "cert auth");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    assert_forwarded(mime_of(&sent[0]).1, &msg);

    let tokens = mock.token_requests();
    assert_eq!(tokens.len(), 1);
    let fields = form(&tokens[0].body);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "client_id",
            "scope",
            "client_assertion_type",
            "client_assertion",
            "grant_type"
        ]
    );
    assert_eq!(fields[0].1, "client-1");
    assert_eq!(fields[1].1, "https://graph.microsoft.com/.default");
    assert_eq!(
        fields[2].1,
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(fields[4].1, "client_credentials");

    let (header, claims, signed, sig) = jwt_parts(&fields[3].1);
    let thumb = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, cert.der()).as_ref());
    assert_eq!(
        header,
        json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumb})
    );
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PSS_2048_8192_SHA256, public_der)
        .verify(signed.as_bytes(), &sig)
        .expect("assertion signature verifies with the certificate's key");
    let token_url = format!("{}/tenant-1/oauth2/v2.0/token", mock.base_url());
    assert_eq!(claims["aud"], token_url.as_str());
    assert_eq!(claims["iss"], "client-1");
    assert_eq!(claims["sub"], "client-1");
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(jti.len(), 36, "jti is a GUID: {jti}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((iat - now).abs() < 600, "iat {iat} vs now {now}");
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 600));
    assert!(!p.log().contains("PRIVATE KEY"));
}

#[test]
fn large_message_goes_through_draft_upload_session_and_send() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let big = pattern(6 * 1024 * 1024, 7);
    let mid1 = pattern(1536 * 1024, 3);
    let mid2 = pattern(1536 * 1024, 5);
    let msg = message(
        "graph large",
        &[("big.bin", &big), ("mid1.bin", &mid1), ("mid2.bin", &mid2)],
    );
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(1);
    p.wait_queue_empty();
    assert!(mock.violations().is_empty(), "{:?}", mock.violations());

    let Sent::Draft {
        mailbox,
        mime,
        attachments,
    } = &sent[0]
    else {
        panic!("expected the draft path, got {:?}", sent[0]);
    };
    assert_eq!(mailbox, "app@example.com");
    assert!(api_requests(&mock, "/sendMail").is_empty());
    // The 6 MiB file went through an upload session, one 1.5 MiB file was
    // posted, the other stayed in the draft's MIME.
    assert_eq!(attachments.len(), 2, "{attachments:?}");
    assert_eq!(attachments[0].via, "session");
    assert_eq!(
        attachments[0].meta,
        json!({"attachmentType": "file", "name": "big.bin", "size": big.len(),
               "contentType": "application/octet-stream", "isInline": false})
    );
    assert!(attachments[0].bytes == big, "reassembled upload differs");
    assert_eq!(attachments[1].via, "post");
    assert_eq!(attachments[1].meta["name"], "mid1.bin");
    assert!(attachments[1].bytes == mid1, "posted attachment differs");

    let puts: Vec<Recorded> = api_requests(&mock, "/upload-session/");
    let ranges: Vec<&str> = puts.iter().map(|r| r.one_header("content-range")).collect();
    assert_eq!(
        ranges,
        ["bytes 0-3276799/6291456", "bytes 3276800-6291455/6291456"]
    );
    assert!(puts.iter().all(|r| r.header("authorization").is_none()));

    // The draft is the spooled message minus the two cut parts.
    let (_, draft) = split_received(mime);
    let parsed = mail_parser::MessageParser::default()
        .parse(draft)
        .expect("draft parses");
    assert_eq!(parsed.subject(), Some("graph large"));
    assert_eq!(
        parsed.body_text(0).as_deref(),
        Some("The body of graph large.")
    );
    let names: Vec<_> = parsed
        .attachments()
        .map(|a| mail_parser::MimeHeaders::attachment_name(a).unwrap_or(""))
        .collect();
    assert_eq!(names, ["mid2.bin"]);
    assert!(parsed.attachment(0).unwrap().contents() == mid2.as_slice());
    let creates = api_requests(&mock, "/messages");
    assert_eq!(creates[0].path, "/v1.0/users/app@example.com/messages");
    assert_eq!(creates[0].one_header("content-type"), "text/plain");
    assert_eq!(mock.drafts_left(), 0);
    let send = creates
        .iter()
        .find(|r| r.path.ends_with("/send"))
        .expect("draft send request");
    assert!(
        send.path
            .starts_with("/v1.0/users/app@example.com/messages/draft-")
    );
    assert!(
        !p.log().contains("pre-auth-secret"),
        "upload url leaked to the log"
    );
}

#[test]
fn fixed_mailbox_without_sent_items_uses_json_with_envelope_recipients() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let extra = "mailbox = \"shared@example.com\"\nsave_to_sent_items = false";
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), extra));
    let att = pattern(1000, 9);
    let msg = message("json path", &[("a.bin", &att)]);
    submit(&p, &ca, &["bob@dest.test", "hidden@other.test"], &msg);
    let sent = mock.wait_sent(1);
    let Sent::Json { mailbox, body } = &sent[0] else {
        panic!("expected JSON sendMail, got {:?}", sent[0]);
    };
    assert_eq!(mailbox, "shared@example.com");
    let r = &api_requests(&mock, "/sendMail")[0];
    assert_eq!(r.path, "/v1.0/users/shared@example.com/sendMail");
    assert_eq!(r.one_header("content-type"), "application/json");
    assert_eq!(body["saveToSentItems"], false);
    let m = &body["message"];
    assert_eq!(m["subject"], "json path");
    assert_eq!(
        m["body"],
        json!({"contentType": "Text", "content": "The body of json path."})
    );
    assert_eq!(
        m["toRecipients"],
        json!([{"emailAddress": {"name": "Bob", "address": "bob@dest.test"}}])
    );
    assert_eq!(
        m["bccRecipients"],
        json!([{"emailAddress": {"address": "hidden@other.test"}}])
    );
    assert_eq!(m["attachments"][0]["name"], "a.bin");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(m["attachments"][0]["contentBytes"].as_str().unwrap())
        .unwrap();
    assert!(bytes == att);
    p.wait_queue_empty();
}

#[test]
fn expired_token_is_refreshed() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.set_expires_in(1);
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "t1"),
    );
    mock.wait_sent(1);
    // Past the token's one-second lifetime.
    std::thread::sleep(Duration::from_millis(1500));
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "t2"),
    );
    mock.wait_sent(2);
    assert_eq!(mock.token_requests().len(), 2);
    let auth: Vec<String> = api_requests(&mock, "/sendMail")
        .iter()
        .map(|r| r.one_header("authorization").to_string())
        .collect();
    assert_eq!(auth.len(), 2);
    assert_ne!(auth[0], auth[1], "second send used the refreshed token");
}

#[test]
fn api_401_forces_exactly_one_refresh_and_retry() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    submit(
        &p,
        &ca,
        &["bob@dest.test"],
        &dated_message("app@example.com", "bob@dest.test", "a"),
    );
    mock.wait_sent(1);
    mock.revoke_all();
    let msg = dated_message("app@example.com", "bob@dest.test", "after revoke");
    submit(&p, &ca, &["bob@dest.test"], &msg);
    let sent = mock.wait_sent(2);
    p.wait_queue_empty();
    assert_eq!(mock.token_requests().len(), 2, "one forced refresh");
    let sends = api_requests(&mock, "/sendMail");
    assert_eq!(sends.len(), 3, "1 + refused + retried");
    assert_eq!(
        sends[1].one_header("authorization"),
        sends[0].one_header("authorization")
    );
    assert_ne!(
        sends[2].one_header("authorization"),
        sends[1].one_header("authorization")
    );
    assert_eq!(sent.len(), 2);
    assert_forwarded(mime_of(&sent[1]).1, &msg);
    let log = p.log();
    assert!(!log.contains("credentials rejected"), "{log}");
    assert!(
        !log.contains("deferred"),
        "the retry happened within the attempt:\n{log}"
    );
}

#[test]
fn concurrent_deliveries_share_one_token_request() {
    let ca = TestCa::new();
    let mock = ProviderMock::start(&ca);
    mock.close_gate();
    let p = start(&ca, &config(&ca, &mock, &secret_auth(), ""));
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    for i in 0..6 {
        let msg = dated_message("app@example.com", "bob@dest.test", &format!("burst {i}"));
        c.send_message("app@example.com", &["bob@dest.test"], &msg)
            .expect_code(250, "DATA");
    }
    c.quit();
    mock.wait_gate_waiting(1);
    // Let the four workers all reach the token cache while the fetch hangs.
    std::thread::sleep(Duration::from_millis(500));
    mock.open_gate();
    mock.wait_sent(6);
    p.wait_queue_empty();
    assert_eq!(
        mock.token_requests().len(),
        1,
        "no stampede on the token endpoint"
    );
    let sends = api_requests(&mock, "/sendMail");
    assert_eq!(sends.len(), 6);
    assert!(
        sends
            .iter()
            .all(|r| r.one_header("authorization") == "Bearer tok-1")
    );
}

#[test]
fn check_config_reports_msgraph_mistakes_at_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let text = "[server]\nhostname = \"r.test\"\nstate_dir = \"/tmp/x\"\n[tls]\nself_signed = true\n[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"starttls\"\n[routes.default]\nupstreams = [\"graph\"]\n[upstreams.graph]\nkind = \"msgraph\"\ntenant_id = \"a/b\"\nclient_id = \"c\"\nclient_secret = \"env:POSTERN_TEST_SURELY_UNSET\"\nclient_key = \"env:X\"\nbase_url = \"http://graph.example\"\nuser = \"x@y.z\"\n";
    std::fs::write(&path, text).unwrap();
    let out = crate::common::clients::postern_cmd(
        &["check-config", "--config", path.to_str().unwrap()],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for key in [
        "upstreams.graph.tenant_id",
        "upstreams.graph.client_secret",
        "upstreams.graph.base_url",
        "upstreams.graph.user",
    ] {
        assert!(err.contains(key), "no error for {key}:\n{err}");
    }
}
