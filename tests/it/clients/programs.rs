//! The command-line clients of the matrix (tests/it/clients.rs): swaks,
//! curl, msmtp and PHP `mail()` through msmtp.

use super::*;

// ---------------------------------------------------------------- swaks

fn swaks_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/swaks", "swaks");
    let server = format!("127.0.0.1:{}", w.port(tls));
    let subject = format!("Subject: {SUBJECT}");
    let to = RCPTS.join(",");
    let (body, pdf, ca) = (
        format!("@{}", s(&w.body)),
        format!("@{}", s(&w.pdf)),
        w.ca_file(),
    );
    let run = swaks(&[
        "--server",
        &server,
        if tls == Tls::Implicit {
            "--tls-on-connect"
        } else {
            "--tls"
        },
        "--tls-verify",
        "--tls-ca-path",
        &ca,
        "--auth",
        "--auth-user",
        "app",
        "--auth-password",
        &token().0,
        "--ehlo",
        "swaks.client.test",
        "--from",
        FROM,
        "--to",
        &to,
        "--header",
        &subject,
        "--attach-type",
        "text/plain; charset=UTF-8",
        "--attach-body",
        &body,
        "--attach-type",
        "application/pdf",
        "--attach-name",
        PDF_NAME,
        "--attach",
        &pdf,
    ]);
    assert!(
        run.status.success(),
        "swaks failed:\n{}\npostern log:\n{}",
        run.output,
        w.p.log()
    );
    check_delivery(
        &w,
        Expect {
            ehlo: "swaks.client.test",
            sent: None,
            output: Some(&run.output),
            smtputf8: false,
        },
    );
}

#[test]
fn swaks_starttls() {
    swaks_sends(Tls::Starttls);
}

#[test]
fn swaks_implicit_tls() {
    swaks_sends(Tls::Implicit);
}

// ----------------------------------------------------------------- curl

fn curl_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/curl", "curl");
    // The URL path is the EHLO name; curl builds the MIME message from -F.
    let scheme = if tls == Tls::Implicit {
        "smtps"
    } else {
        "smtp"
    };
    let url = format!("{scheme}://127.0.0.1:{}/curl.client.test", w.port(tls));
    let mut cmd = Command::new("/usr/bin/curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--max-time",
        "60",
        "--url",
        &url,
    ])
    .args(["--ssl-reqd", "--cacert", &w.ca_file()])
    .args(["--user", &format!("app:{}", token().0)])
    .args([
        "--mail-from",
        FROM,
        "--mail-rcpt",
        RCPTS[0],
        "--mail-rcpt",
        RCPTS[1],
    ])
    .args(["-H", &format!("Subject: {SUBJECT}")])
    .args(["-H", &format!("From: App <{FROM}>")])
    .args(["-H", &format!("To: {}", RCPTS.join(", "))])
    .args([
        "-F",
        &format!(
            "=<{};type=text/plain; charset=UTF-8;encoder=quoted-printable",
            s(&w.body)
        ),
    ])
    .args([
        "-F",
        &format!("=@{};type=application/pdf;encoder=base64", s(&w.pdf)),
    ]);
    run_client(&w, "curl", &mut cmd);
    check_delivery(
        &w,
        Expect {
            ehlo: "curl.client.test",
            sent: None,
            output: None,
            smtputf8: false,
        },
    );
}

#[test]
fn curl_starttls() {
    curl_sends(Tls::Starttls);
}

#[test]
fn curl_implicit_tls() {
    curl_sends(Tls::Implicit);
}

// ---------------------------------------------------------------- msmtp

/// An msmtp configuration file (mode 0600: it holds the token) for `tls`.
fn msmtp_config(w: &World, tls: Tls, domain: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.path("msmtprc");
    let text = format!(
        "defaults\nlogfile {log}\n\naccount postern\nhost 127.0.0.1\nport {port}\ndomain {domain}\n\
         tls on\ntls_starttls {starttls}\ntls_trust_file {ca}\nauth on\nuser app\npassword {token}\n\
         from {FROM}\n\naccount default : postern\n",
        log = s(&w.path("msmtp.log")),
        port = w.port(tls),
        starttls = if tls == Tls::Starttls { "on" } else { "off" },
        ca = w.ca_file(),
        token = token().0,
    );
    std::fs::write(&path, text).expect("write msmtprc");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod msmtprc");
    path
}

/// Postern's reply to the final dot, as msmtp logged it for the one message
/// it sent (`smtpmsg='250 2.0.0 Ok: queued as ID'`).
fn msmtp_log(w: &World) -> String {
    let log = std::fs::read_to_string(w.path("msmtp.log")).expect("read msmtp.log");
    assert_eq!(
        log.lines().count(),
        1,
        "one msmtp log line per message:\n{log}"
    );
    assert!(
        log.contains("exitcode=EX_OK"),
        "msmtp did not log success:\n{log}"
    );
    let msg = log
        .split_once("smtpmsg='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(msg, _)| msg.to_string());
    msg.unwrap_or_else(|| panic!("no smtpmsg='...' in msmtp's log:\n{log}"))
}

fn msmtp_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/msmtp", "msmtp");
    let conf = msmtp_config(&w, tls, "msmtp.client.test");
    let msg = raw_message("msmtp");
    let file = w.path("raw.eml");
    std::fs::write(&file, &msg).expect("write raw.eml");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec /usr/bin/msmtp -C \"$1\" -- \"$2\" \"$3\" < \"$4\"")
        .args(["msmtp", &s(&conf), RCPTS[0], RCPTS[1], &s(&file)]);
    run_client(&w, "msmtp", &mut cmd);
    let log = msmtp_log(&w);
    check_delivery(
        &w,
        Expect {
            ehlo: "msmtp.client.test",
            sent: Some(crlf(&msg)),
            output: Some(&log),
            smtputf8: false,
        },
    );
}

#[test]
fn msmtp_starttls() {
    msmtp_sends(Tls::Starttls);
}

#[test]
fn msmtp_implicit_tls() {
    msmtp_sends(Tls::Implicit);
}

// ------------------------------------------------ PHP mail() through msmtp

#[test]
fn php_mail_through_msmtp_starttls() {
    let w = World::new();
    need("/usr/bin/php", "php-cli");
    need("/usr/bin/msmtp", "msmtp");
    let conf = msmtp_config(&w, Tls::Starttls, "php-mail.client.test");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/php/mail_send.php");
    let mut cmd = Command::new("/usr/bin/php");
    cmd.arg("-n")
        .arg("-d")
        .arg(format!("sendmail_path=/usr/bin/msmtp -C {} -t", s(&conf)))
        .arg(&script)
        .arg(format!("--to={}", RCPTS.join(",")))
        .arg(format!("--from={FROM}"))
        .arg(format!("--subject={SUBJECT}"))
        .arg(format!("--body-file={}", s(&w.body)))
        .arg(format!("--attach-file={}", s(&w.pdf)))
        .arg("--attach-type=application/pdf");
    let out = run_client(&w, "php mail()", &mut cmd);
    assert!(out.contains("MAIL: OK"), "{out}");
    let log = msmtp_log(&w);
    check_delivery(
        &w,
        Expect {
            ehlo: "php-mail.client.test",
            sent: None,
            output: Some(&log),
            smtputf8: false,
        },
    );
}
