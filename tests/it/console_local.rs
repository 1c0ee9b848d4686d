//! The console without the IdP: break-glass `local_admins` (argon2id,
//! the SMTP AUTH lockout, a WARN audit event on every use) and `run
//! --demo`'s one-time sign-in link.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::clients::postern_bin;
use crate::common::*;
use crate::console::{Resp, form_encode, http, http_cookies, setup_with};

/// The break-glass form's token: the hidden field and its cookie.
fn signin_token(page: &Resp) -> String {
    let token = page
        .set_cookie("__Host-postern_signin")
        .expect("the sign-in page sets its CSRF cookie");
    assert!(
        page.body
            .contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "{}",
        page.body
    );
    token
}

#[test]
fn break_glass_signs_in_as_admin_with_warn_audit_and_lockout() {
    let extra = format!(
        "local_admins = [{{ username = \"breakglass\", password_hash = {} }}]",
        crate::common::postern::toml_str(password_hash())
    );
    let s = setup_with(
        &extra,
        &["auth_failures = 3", "auth_failure_delay = \"0s\""],
    );
    let page = http(s.admin, "GET", "/console/signin", None, None);
    assert!(page.body.contains("Break-glass"), "{}", page.body);
    let flags = page.set_cookie_line("__Host-postern_signin").unwrap();
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(flags.contains(flag), "{flags}");
    }
    let token = signin_token(&page);
    let post = |cookies: Option<&str>, form: &[(&str, &str)]| {
        http_cookies(
            s.admin,
            "POST",
            "/console/signin",
            cookies,
            Some(&form_encode(form)),
        )
    };
    // Login CSRF: the right password without the form's token (or with a
    // token its cookie does not carry) signs no one in.
    let r = post(None, &[("username", "breakglass"), ("password", PASSWORD)]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.session_cookie().is_none());
    let r = post(
        Some("__Host-postern_signin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        &[
            ("username", "breakglass"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.session_cookie().is_none());
    s.p.wait_log_line(&["console sign-in refused", "CSRF token"]);
    let cookie = format!("__Host-postern_signin={token}");
    let sign_in = |user: &str, pw: &str| {
        post(
            Some(&cookie),
            &[("username", user), ("password", pw), ("csrf", &token)],
        )
    };
    let r = sign_in("breakglass", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.session_cookie().expect("session");
    let page = s.get("/console/", &cookie);
    assert!(page.body.contains("breakglass (admin)"), "{}", page.body);
    let line =
        s.p.wait_log_line(&["console sign-in without the IdP", "breakglass"]);
    assert!(line.contains("WARN"), "{line}");

    // Wrong passwords, then the lockout refuses even the right one.
    for _ in 0..3 {
        let r = sign_in("breakglass", "wrong");
        assert_eq!(r.status, 200);
        assert!(r.session_cookie().is_none());
        assert!(r.body.contains("wrong username or password"), "{}", r.body);
    }
    let r = sign_in("breakglass", PASSWORD);
    assert!(r.session_cookie().is_none(), "signed in while locked out");
    s.p.wait_log_line(&["console sign-in refused", "locked out"]);
    // Unknown usernames are refused the same way.
    let r = sign_in("root", PASSWORD);
    assert!(r.session_cookie().is_none());
}

#[test]
fn local_admins_are_off_by_default() {
    let s = setup_with("", &[]);
    let page = http(s.admin, "GET", "/console/signin", None, None);
    assert!(!page.body.contains("Break-glass"), "{}", page.body);
    let r = http(
        s.admin,
        "POST",
        "/console/signin",
        None,
        Some(&form_encode(&[("username", "x"), ("password", "y")])),
    );
    assert!(r.session_cookie().is_none());
}

/// The embedded demo on its fixed ports (127.0.0.1:2525 and :8025): the
/// link printed to the terminal signs in once.
#[test]
fn demo_prints_a_one_time_console_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Stop(
        Command::new(postern_bin())
            .args(["run", "--demo"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("postern run --demo"),
    );
    let mut link = None;
    let mut seen = String::new();
    for line in BufReader::new(child.0.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if let Some(at) = line.find("http://127.0.0.1:8025/console/demo?token=") {
            link = Some(line[at..].trim().to_string());
            break;
        }
    }
    let link = link.unwrap_or_else(|| panic!("no console link printed:\n{seen}"));
    let path = link.strip_prefix("http://127.0.0.1:8025").unwrap();
    let r = http(8025, "GET", path, None, None);
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.session_cookie().expect("session");
    let page = http(8025, "GET", "/console/", Some(&cookie), None);
    assert!(page.body.contains("demo (admin)"), "{}", page.body);
    let again = http(8025, "GET", path, None, None);
    assert_eq!(again.status, 403, "the link worked twice");
    assert!(again.session_cookie().is_none());
}

/// Stops the demo daemon however the test ends.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
