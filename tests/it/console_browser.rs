//! The console in a real browser (tests/py/console_browser.py: Debian's
//! chromium, headless, through Selenium with /usr/bin/chromedriver): sign
//! in through the pysaml2 IdP's login page, the overview with its charts,
//! a dead letter found in the queue and retried until delivered, a
//! credential suspended (and the next SMTP AUTH/MAIL then refused here),
//! sign-out. Screenshots of each page are left in
//! `target/tmp/console_browser/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::clients::{py_script, python_bin};
use crate::common::*;
use crate::console::setup;

#[test]
fn sign_in_retry_suspend_and_sign_out_in_chromium() {
    let s = setup("");
    s.up.push(Scripted::status(400).body(b"bad recipient"));
    let mut c = SmtpClient::connect(s.p.port(0));
    c.greet_starttls(&s.ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "auth");
    let msg = simple_message("app@example.com", "bob@dest.test", "browser");
    let r = c.send_message("app@example.com", &["bob@dest.test"], &msg);
    c.quit();
    let id = r.queue_id().expect("queue id");
    assert!(wait_until(Duration::from_secs(30), || s
        .p
        .dead_files()
        .contains(&id)));

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console_browser");
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(python_bin())
        .arg(py_script("console_browser.py"))
        .args(["--console", &format!("http://127.0.0.1:{}", s.admin)])
        .arg("--out")
        .arg(&out)
        .args(["--dead", &id, "--credential", "app"])
        .output()
        .expect("run console_browser.py (selenium; chromium and chromium-driver)");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"),
        "console_browser.py failed:\n{}\n{}\npostern log:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        s.p.log()
    );
    // What the browser did, seen from outside: delivered upstream ...
    s.p.delivered(&s.up, 2);
    assert!(s.p.dead_files().is_empty());
    // ... and the suspended credential refused.
    let mut c = SmtpClient::connect(s.p.port(0));
    c.greet_starttls(&s.ca);
    c.auth_plain("app", PASSWORD)
        .expect(535, "5.7.8", "AUTH of the suspended credential");
    c.cmd("MAIL FROM:<app@example.com>")
        .expect(530, "5.7.0", "MAIL after the refused AUTH");
    c.quit();
    s.p.wait_log_line(&["console action", "suspend", "alice", "admin"]);
    for shot in [
        "03-overview",
        "04-queue",
        "05-message",
        "07-audit-delivered",
        "10-suspended",
        "12-signed-out",
    ] {
        let f = out.join(format!("{shot}.png"));
        assert!(
            f.metadata().is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            f.display()
        );
    }
}
