//! The admin console against the real binary and an independent SAML
//! IdP (pysaml2, tests/py/saml_idp.py, on loopback): the SP-initiated
//! sign-in with role mapping, cookie flags and security headers, sign-out,
//! CSRF and role checks on every action, the pages with their data, and
//! every attack on the ACS refused with no session cookie set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::clients::{py_script, python_bin};
use crate::common::postern::{free_port, toml_str};
use crate::common::*;

/// One HTTP/1.1 response.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The session cookie's value a `Set-Cookie` set, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.strip_prefix("__Host-postern_session="))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .find(|v| !v.is_empty())
    }
}

pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_escape(k), url_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// One request on a new connection to 127.0.0.1:`port` (plain HTTP).
pub fn http(port: u16, method: &str, path: &str, cookie: Option<&str>, body: Option<&str>) -> Resp {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: __Host-postern_session={c}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.split("value=\"").nth(1)?.split('"').next()?;
    Some(v.replace("&amp;", "&").replace("&quot;", "\""))
}

/// The pysaml2 IdP, killed on drop.
pub struct TestIdp {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestIdp {
    pub fn start(dir: PathBuf, sp_entity: &str, acs: &str) -> TestIdp {
        let port = free_port();
        let mut child = Command::new(python_bin())
            .arg(py_script("saml_idp.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&dir)
            .args(["--sp-entity", sp_entity, "--acs", acs])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/py/saml_idp.py (pysaml2 from tests/requirements.txt; xmlsec1)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "saml_idp.py did not start");
        TestIdp { child, port, dir }
    }

    pub fn metadata(&self) -> PathBuf {
        self.dir.join("idp_metadata.xml")
    }
}

/// postern with the console signing in through the test IdP.
pub struct Setup {
    pub ca: TestCa,
    pub up: MockUpstream,
    pub p: Postern,
    pub idp: TestIdp,
    pub admin: u16,
    _dir: tempfile::TempDir,
}

pub const ROLES: &str = "roles = { \"postern-admins\" = \"admin\", \"postern-operators\" = \"operator\", \"postern-viewers\" = \"viewer\" }";

pub fn setup(extra: &str) -> Setup {
    setup_with(extra, &[])
}

/// `setup` with extra `[abuse]` lines.
pub fn setup_with(extra: &str, abuse: &[&str]) -> Setup {
    setup_full(extra, abuse, "")
}

/// `setup_with` and `tables`: lines for `[admin.saml]`, then any further
/// tables of the configuration.
pub fn setup_full(extra: &str, abuse: &[&str], tables: &str) -> Setup {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let public = format!("http://127.0.0.1:{admin}");
    let idp = TestIdp::start(
        dir.path().join("idp"),
        &format!("{public}/saml/metadata"),
        &format!("{public}/saml/acs"),
    );
    let mut cfg = Config::new(&up.url());
    for line in abuse {
        cfg = cfg.abuse(line);
    }
    cfg.credentials.push(Config::password_credential(
        "billing",
        "billing",
        &["*@example.com"],
    ));
    cfg.extra.push_str(&format!(
        "\n[admin]\naddress = \"127.0.0.1:{admin}\"\n[admin.console]\npublic_url = \"{public}\"\n{extra}\n[admin.saml]\nidp_metadata = {}\n{ROLES}\n{tables}\n",
        toml_str(&idp.metadata().to_string_lossy())
    ));
    let p = Postern::start(&ca, &cfg);
    Setup {
        ca,
        up,
        p,
        idp,
        admin,
        _dir: dir,
    }
}

impl Setup {
    /// The SP-initiated flow up to the IdP's answer: postern's redirect,
    /// the IdP's login form posted for `user` with `variant`; returns the
    /// SAMLResponse (base64) the IdP would have the browser post.
    pub fn idp_response(&self, user: &str, variant: &str) -> String {
        let r = http(self.admin, "GET", "/saml/login", None, None);
        assert_eq!(r.status, 303, "{}", r.body);
        let loc = r
            .header("location")
            .expect("redirect to the IdP")
            .to_string();
        let prefix = format!("http://127.0.0.1:{}/sso?", self.idp.port);
        let query = loc.strip_prefix(&prefix).unwrap_or_else(|| panic!("{loc}"));
        let saml_request: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), url_unescape(v)))
            .collect();
        let body = form_encode(&[
            ("username", user),
            ("password", &format!("pw-{user}")),
            ("SAMLRequest", &saml_request["SAMLRequest"]),
            ("variant", variant),
        ]);
        let r = http(self.idp.port, "POST", "/login", None, Some(&body));
        assert_eq!(r.status, 200, "IdP: {}", r.body);
        hidden(&r.body, "SAMLResponse").expect("SAMLResponse in the IdP's page")
    }

    /// An IdP-initiated response for `user` (answering no request).
    pub fn unsolicited(&self, user: &str) -> String {
        let body = form_encode(&[
            ("username", user),
            ("password", &format!("pw-{user}")),
            ("variant", "unsolicited"),
        ]);
        let r = http(self.idp.port, "POST", "/login", None, Some(&body));
        assert_eq!(r.status, 200, "IdP: {}", r.body);
        hidden(&r.body, "SAMLResponse").expect("SAMLResponse in the IdP's page")
    }

    pub fn post_acs(&self, saml_response: &str) -> Resp {
        let body = form_encode(&[("SAMLResponse", saml_response)]);
        http(self.admin, "POST", "/saml/acs", None, Some(&body))
    }

    /// Signs `user` in; the session cookie.
    pub fn sign_in(&self, user: &str) -> String {
        let r = self.post_acs(&self.idp_response(user, "good"));
        assert_eq!(r.status, 303, "sign-in of {user}: {}", r.body);
        assert_eq!(r.header("location"), Some("/console/"));
        r.session_cookie().expect("a session cookie")
    }

    pub fn get(&self, path: &str, cookie: &str) -> Resp {
        http(self.admin, "GET", path, Some(cookie), None)
    }

    /// The CSRF token of the session (from any page's sign-out form).
    pub fn csrf(&self, cookie: &str) -> String {
        let r = self.get("/console/", cookie);
        assert_eq!(r.status, 200, "{}", r.body);
        hidden(&r.body, "csrf").expect("csrf token in the page")
    }

    pub fn post(&self, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Resp {
        http(
            self.admin,
            "POST",
            path,
            Some(cookie),
            Some(&form_encode(pairs)),
        )
    }
}

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
