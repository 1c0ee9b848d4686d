//! The admin console against the real binary and an independent SAML
//! IdP (pysaml2, tests/py/saml_idp.py, on loopback): the SP-initiated
//! sign-in with role mapping, cookie flags and security headers, sign-out,
//! CSRF and role checks on every action, the pages with their data, and
//! every attack on the ACS refused with no session cookie set.

use std::process::Command;

pub use crate::common::console::*;
use crate::common::postern::{free_port, toml_str};
use crate::common::{Config, MockUpstream, Postern, TestCa};

#[test]
fn sso_sign_in_maps_roles_with_secure_cookie_headers_and_sign_out() {
    let s = setup("");
    let r = s.post_acs(&s.idp_response("alice", "good"));
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").expect("Set-Cookie");
    for flag in [
        "__Host-postern_session=",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let cookie = r.session_cookie().unwrap();

    let page = s.get("/console/", &cookie);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice (admin)"), "{}", page.body);
    assert!(page.body.contains("chart.svg?range=hour"));
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let chart = s.get("/console/chart.svg?range=day", &cookie);
    assert_eq!(chart.header("content-type"), Some("image/svg+xml"));
    assert!(chart.body.starts_with("<svg") && chart.body.contains("polyline"));

    // Roles: operator and viewer map; a person in no mapped group gets 403.
    for (user, role) in [("otto", "operator"), ("victor", "viewer")] {
        let c = s.sign_in(user);
        let page = s.get("/console/", &c);
        assert!(
            page.body.contains(&format!("{user} ({role})")),
            "{}",
            page.body
        );
    }
    let r = s.post_acs(&s.idp_response("nora", "good"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.session_cookie().is_none());
    s.p.wait_log_line(&["console sign-in refused", "no role"]);

    // Without a cookie, or with a forged one: the sign-in page.
    let r = http(s.admin, "GET", "/console/", None, None);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/signin"))
    );
    let r = s.get("/console/", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(r.status, 303);

    // Sign-out needs the token, ends the session and clears the cookie.
    let r = s.post("/console/signout", &cookie, &[]);
    assert_eq!(r.status, 403);
    let csrf = s.csrf(&cookie);
    let r = s.post("/console/signout", &cookie, &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = s.get("/console/", &cookie);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/signin"))
    );

    // The SP metadata names the ACS.
    let md = http(s.admin, "GET", "/saml/metadata", None, None);
    assert_eq!(md.status, 200);
    assert!(
        md.body
            .contains(&format!("http://127.0.0.1:{}/saml/acs", s.admin)),
        "{}",
        md.body
    );
}

/// Every forged or misdirected response is refused and sets no cookie;
/// the same response posted twice signs in only once.
#[test]
fn attacks_on_the_acs_are_refused_without_a_session() {
    let s = setup("");
    // Each variant and (part of) the reason its refusal is audited with.
    let variants = [
        ("unsigned", "must be signed"),
        ("otherkey", "must be signed"),
        ("rsa-sha1", "must be signed"),
        ("xsw1", "2 assertions"),
        ("xsw2", "2 assertions"),
        ("xsw3", "2 assertions"),
        ("xsw4", "2 assertions"),
        ("xsw5", "2 assertions"),
        ("xsw6", "2 assertions"),
        ("xsw7", "2 assertions"),
        ("xsw8", "2 assertions"),
        ("audience", "AudienceRequirement"),
        ("noaudience", "no AudienceRestriction"),
        ("destination", "is not the ACS URL"),
        ("recipient", "Recipient does not match"),
        ("expired", "expired"),
        ("notyet", "not valid until"),
        ("issuer", "Issuer does not match"),
        ("status", "is not Success"),
    ];
    for (v, _) in variants {
        let r = s.post_acs(&s.idp_response("alice", v));
        assert_eq!(r.status, 403, "variant {v} was not refused: {}", r.body);
        assert!(r.session_cookie().is_none(), "variant {v} set a cookie");
    }
    // A comment in the NameID (signed for admin@corp.evil).
    let r = s.post_acs(&s.idp_response("admin@corp.evil", "comment"));
    assert_eq!(r.status, 403, "comment injection: {}", r.body);
    assert!(r.session_cookie().is_none());
    // Replay: the first use signs in, the second does not.
    let good = s.idp_response("alice", "good");
    assert_eq!(s.post_acs(&good).status, 303);
    let r = s.post_acs(&good);
    assert_eq!(r.status, 403, "replay: {}", r.body);
    assert!(r.session_cookie().is_none());
    // Garbage and oversized bodies.
    let r = s.post_acs("not base64!");
    assert_eq!(r.status, 403);
    // 150 KiB of XML (200 KiB posted) is read and judged; 300 KiB posted
    // is not read at all.
    let padded = format!("<x>{}</x>", " ".repeat(150 * 1024));
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(padded)
    };
    let r = s.post_acs(&b64);
    assert_eq!(r.status, 403);
    let big = "A".repeat(300 * 1024);
    let r = s.post_acs(&big);
    assert!([400, 403, 413].contains(&r.status), "{}", r.status);
    assert!(r.session_cookie().is_none());
    let audit = s.p.log();
    // libxmlsec1's own error output does not reach the log unformatted.
    assert!(!audit.contains("func=xmlSec"), "{audit}");
    let refusals: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("console sign-in refused"))
        .collect();
    let expected: Vec<&str> = variants
        .iter()
        .map(|(_, why)| *why)
        .chain([
            "comments are not allowed",
            "InResponseTo",
            "not base64",
            "not a SAML protocol Response",
            "no SAMLResponse",
        ])
        .collect();
    assert_eq!(refusals.len(), expected.len(), "{}", refusals.join("\n"));
    for (line, why) in refusals.iter().zip(&expected) {
        assert!(line.contains(why), "expected {why:?} in {line}");
    }
    // The variants are signed by the IdP script, as an attacker would;
    // its rsa-sha256 signature of the unchanged response is accepted, so
    // each refusal above is for what its variant changed.
    let r = s.post_acs(&s.idp_response("alice", "resigned"));
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.session_cookie().is_some());
}

#[test]
fn csrf_and_roles_guard_every_action() {
    let s = setup("");
    let viewer = s.sign_in("victor");
    let operator = s.sign_in("otto");
    let vt = s.csrf(&viewer);
    let ot = s.csrf(&operator);
    // A viewer may not retry, purge or suspend, even with its token.
    for (action, id) in [
        ("retry", "0000000000000000000000"),
        ("purge", "0000000000000000000000"),
        ("suspend", "billing"),
    ] {
        let r = s.post(
            "/console/action",
            &viewer,
            &[("csrf", &vt), ("action", action), ("id", id)],
        );
        assert_eq!(r.status, 403, "viewer {action}: {}", r.body);
    }
    // An operator needs the token: none, or another session's, is refused.
    let r = s.post(
        "/console/action",
        &operator,
        &[("action", "suspend"), ("id", "billing")],
    );
    assert_eq!(r.status, 403);
    let r = s.post(
        "/console/action",
        &operator,
        &[("csrf", &vt), ("action", "suspend"), ("id", "billing")],
    );
    assert_eq!(r.status, 403);
    let page = s.get("/console/credentials", &operator);
    assert!(!page.body.contains("suspended"), "{}", page.body);
    // With its token the suspension is made, and audited with the NameID.
    let r = s.post(
        "/console/action",
        &operator,
        &[
            ("csrf", &ot),
            ("action", "suspend"),
            ("id", "billing"),
            ("duration", "1h"),
            ("reason", "leaked"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let page = s.get("/console/credentials", &operator);
    assert!(page.body.contains("suspended"), "{}", page.body);
    s.p.wait_log_line(&["console action", "otto", "operator", "suspend"]);
    // Reload and message bodies are admin-only.
    let r = s.post("/console/reload", &operator, &[("csrf", &ot)]);
    assert_eq!(r.status, 403);
    let admin = s.sign_in("alice");
    let at = s.csrf(&admin);
    let r = s.post("/console/reload", &admin, &[]);
    assert_eq!(r.status, 403, "reload without a token");
    let r = s.post("/console/reload", &admin, &[("csrf", &at)]);
    assert_eq!(r.status, 303);
    s.p.wait_log_line(&["console action", "alice", "admin", "reload"]);
    // The daemon did reload, as on SIGHUP.
    s.p.wait_log_line(&["configuration reloaded"]);
}

/// IdP-initiated sign-in is refused unless `allow_idp_initiated`; with
/// it, the replay cache still lets each assertion sign in once.
#[test]
fn idp_initiated_sign_in_is_off_by_default_and_replays_are_refused() {
    let s = setup("");
    let r = s.post_acs(&s.unsolicited("alice"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.session_cookie().is_none());
    s.p.wait_log_line(&["console sign-in refused", "InResponseTo"]);

    let s = setup_full("", &[], "allow_idp_initiated = true");
    let response = s.unsolicited("otto");
    let r = s.post_acs(&response);
    assert_eq!(r.status, 303, "{}", r.body);
    let page = s.get("/console/", &r.session_cookie().unwrap());
    assert!(page.body.contains("otto (operator)"), "{}", page.body);
    let r = s.post_acs(&response);
    assert_eq!(
        r.status, 403,
        "a replayed IdP-initiated response: {}",
        r.body
    );
    assert!(r.session_cookie().is_none());
    s.p.wait_log_line(&["console sign-in refused", "used before"]);
}

/// With `sp_certificate` and `sp_private_key` the AuthnRequest redirect
/// is signed (RSA-SHA256), verified by pysaml2 with the certificate, and
/// the certificate is in the SP metadata.
#[test]
fn authn_requests_are_signed_with_the_sp_key() {
    let keys = tempfile::tempdir().unwrap();
    let (key, crt) = (keys.path().join("sp.key"), keys.path().join("sp.crt"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=postern-sp",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = format!(
        "sp_certificate = {}\nsp_private_key = {}",
        toml_str(&crt.to_string_lossy()),
        toml_str(&format!("file:{}", key.display()))
    );
    let s = setup_full("", &[], &lines);
    std::fs::copy(&crt, s.idp.dir.join("sp.crt")).unwrap();
    let r = http(s.admin, "GET", "/saml/login", None, None);
    let loc = r.header("location").expect("redirect").to_string();
    assert!(
        loc.contains(
            "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="
        ),
        "{loc}"
    );
    let path = loc
        .split_once(&format!("127.0.0.1:{}", s.idp.port))
        .unwrap()
        .1;
    let page = http(s.idp.port, "GET", path, None, None);
    assert!(
        page.body.contains("<p id=\"request-signature\">valid</p>"),
        "{}",
        page.body
    );
    // A changed request no longer verifies (the check can fail).
    let tampered = path.replacen("SAMLRequest=", "SAMLRequest=AA", 1);
    let page = http(s.idp.port, "GET", &tampered, None, None);
    assert!(
        !page.body.contains("<p id=\"request-signature\">valid</p>"),
        "{}",
        page.body
    );
    let cert_body: String = std::fs::read_to_string(&crt)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("-----"))
        .collect();
    let md = http(s.admin, "GET", "/saml/metadata", None, None);
    assert!(md.body.contains(&cert_body[..64]), "{}", md.body);
    // And the sign-in still works.
    s.sign_in("alice");
}

/// Off loopback the console is HTTPS with `[tls]`'s certificate (bound on
/// every address, reached over loopback as every test): its pages answer
/// over TLS and not in plain HTTP.
#[test]
fn off_loopback_the_console_is_served_over_https() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let public = format!("https://localhost:{admin}");
    let idp = TestIdp::start(
        dir.path().join("idp"),
        &format!("{public}/saml/metadata"),
        &format!("{public}/saml/acs"),
    );
    let mut cfg = Config::new(&up.url());
    cfg.extra = format!(
        "[admin]\naddress = \"0.0.0.0:{admin}\"\nbearer_token = \"env:POSTERN_TEST_ADMIN_TOKEN\"\n[admin.console]\npublic_url = \"{public}\"\n[admin.saml]\nidp_metadata = {}\n{ROLES}\n",
        toml_str(&idp.metadata().to_string_lossy())
    );
    let _p = Postern::start_with_env(&ca, &cfg, &[("POSTERN_TEST_ADMIN_TOKEN", "t")]);
    let (status, body) = crate::common::http::get(admin, "/console/signin", None, Some(&ca));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Sign in with your identity provider"),
        "{body}"
    );
    let (status, body) = crate::common::http::get(admin, "/saml/metadata", None, Some(&ca));
    assert_eq!(status, 200);
    assert!(body.contains(&format!("{public}/saml/acs")), "{body}");
    // Plain HTTP gets no page.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    use std::io::{Read, Write};
    let _ = tcp.write_all(b"GET /console/signin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    assert!(
        !String::from_utf8_lossy(&raw).contains("Sign in"),
        "served in plain HTTP"
    );
}
