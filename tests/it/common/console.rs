//! The console tests' harness (tests/it/console*.rs): a small HTTP/1.1
//! client with cookies and forms, the pysaml2 IdP (tests/py/saml_idp.py)
//! on loopback, and postern with `[admin.console]` / `[admin.saml]`
//! signing in through it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::clients::{py_script, python_bin};
use super::postern::{free_port, toml_str};
use super::*;

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
        self.set_cookie("__Host-postern_session")
    }
    /// The value a `Set-Cookie` gave cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookie_line(name)
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .filter(|v| !v.is_empty())
    }
    /// The whole `Set-Cookie` line for cookie `name` (without the name).
    pub fn set_cookie_line(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.strip_prefix(name)?.strip_prefix('='))
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
    let header = cookie.map(|c| format!("__Host-postern_session={c}"));
    http_cookies(port, method, path, header.as_deref(), body)
}

/// [`http`] with the whole `Cookie:` header value given.
pub fn http_cookies(
    port: u16,
    method: &str,
    path: &str,
    cookies: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(c) = cookies {
        req.push_str(&format!("Cookie: {c}\r\n"));
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
