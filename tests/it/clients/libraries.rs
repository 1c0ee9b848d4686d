//! The mail libraries of the matrix (tests/it/clients.rs): Python
//! smtplib, PHPMailer, nodemailer and Perl Net::SMTP.

use super::*;

// --------------------------------------------------------- Python smtplib

fn smtplib_sends(tls: Tls) {
    let w = World::new();
    let out = w.path("smtplib.eml");
    let port = w.port(tls).to_string();
    let mut cmd = Command::new(crate::common::clients::python_bin());
    cmd.arg(crate::common::clients::py_script("send_mail.py"))
        .args([
            "--port",
            &port,
            "--mode",
            tls.name(),
            "--cafile",
            &w.ca_file(),
            "--user",
            "app",
            "--password",
            &token().0,
            "--sender",
            FROM,
            "--to",
            &RCPTS.join(","),
            "--subject",
            SUBJECT,
            "--body-file",
            &s(&w.body),
            "--attach-file",
            &s(&w.pdf),
            "--attach-type",
            "application/pdf",
            "--out",
            &s(&out),
        ]);
    let text = run_client(&w, "send_mail.py (smtplib)", &mut cmd);
    assert!(
        text.contains("DATA-REPLY: 250 2.0.0 Ok: queued as "),
        "{text}"
    );
    let sent = std::fs::read(&out).expect("smtplib.eml");
    // smtplib announces its EHLO name as given by the script.
    check_delivery(
        &w,
        Expect {
            ehlo: "pyclient.test",
            sent: Some(sent),
            output: Some(&text),
            smtputf8: false,
        },
    );
}

#[test]
fn python_smtplib_starttls() {
    smtplib_sends(Tls::Starttls);
}

#[test]
fn python_smtplib_implicit_tls() {
    smtplib_sends(Tls::Implicit);
}

// ------------------------------------------------------------- PHPMailer

fn phpmailer_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/php", "php-cli");
    need(
        "/usr/share/php/libphp-phpmailer/autoload.php",
        "PHPMailer (libphp-phpmailer)",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/php/phpmailer_send.php");
    let mut cmd = Command::new("/usr/bin/php");
    cmd.arg(&script)
        .arg(format!("--port={}", w.port(tls)))
        .arg(format!("--mode={}", tls.name()))
        .arg(format!("--cafile={}", w.ca_file()))
        .arg("--user=app")
        .arg(format!("--password={}", token().0))
        .arg(format!("--from={FROM}"))
        .arg(format!("--to={}", RCPTS.join(",")))
        .arg(format!("--subject={SUBJECT}"))
        .arg(format!("--body-file={}", s(&w.body)))
        .arg(format!("--attach-file={}", s(&w.pdf)))
        .arg("--attach-type=application/pdf");
    let out = run_client(&w, "PHPMailer", &mut cmd);
    assert!(out.contains("SENT: queued as "), "{out}");
    check_delivery(
        &w,
        Expect {
            ehlo: "phpmailer.client.test",
            sent: None,
            output: Some(&out),
            smtputf8: false,
        },
    );
}

#[test]
fn phpmailer_starttls() {
    phpmailer_sends(Tls::Starttls);
}

#[test]
fn phpmailer_implicit_tls() {
    phpmailer_sends(Tls::Implicit);
}

// ------------------------------------------------------------ nodemailer

fn nodemailer_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/node", "Node.js");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    need(
        &s(&dir.join("node_modules/nodemailer/package.json")),
        "nodemailer (npm ci in tests/node)",
    );
    let port = w.port(tls).to_string();
    let mut cmd = Command::new("/usr/bin/node");
    cmd.arg(dir.join("send.js")).args([
        &port,
        tls.name(),
        &w.ca_file(),
        "app",
        &token().0,
        FROM,
        &RCPTS.join(","),
        SUBJECT,
        &s(&w.body),
        &s(&w.pdf),
        "application/pdf",
    ]);
    let out = run_client(&w, "nodemailer", &mut cmd);
    assert!(out.contains("RESPONSE: 250 2.0.0 Ok: queued as "), "{out}");
    check_delivery(
        &w,
        Expect {
            ehlo: "nodemailer.client.test",
            sent: None,
            output: Some(&out),
            smtputf8: false,
        },
    );
}

#[test]
fn nodemailer_starttls() {
    nodemailer_sends(Tls::Starttls);
}

#[test]
fn nodemailer_implicit_tls() {
    nodemailer_sends(Tls::Implicit);
}

// ------------------------------------------------------- Perl Net::SMTP

fn perl_sends(tls: Tls) {
    let w = World::new();
    need("/usr/bin/perl", "perl");
    let modules = Command::new("/usr/bin/perl")
        .args([
            "-MNet::SMTP",
            "-MIO::Socket::SSL",
            "-MAuthen::SASL",
            "-e",
            "1",
        ])
        .output()
        .expect("run perl");
    assert!(
        modules.status.success(),
        "Perl modules missing (libio-socket-ssl-perl, libauthen-sasl-perl); run tests/run.sh: {}",
        String::from_utf8_lossy(&modules.stderr)
    );
    let out = w.path("perl.eml");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/perl/net_smtp_send.pl");
    let port = w.port(tls).to_string();
    let mut cmd = Command::new("/usr/bin/perl");
    cmd.arg(&script).args([
        "--port",
        &port,
        "--mode",
        tls.name(),
        "--cafile",
        &w.ca_file(),
        "--user",
        "app",
        "--password",
        &token().0,
        "--from",
        FROM,
        "--to",
        &RCPTS.join(","),
        "--subject",
        SUBJECT,
        "--body-file",
        &s(&w.body),
        "--attach-file",
        &s(&w.pdf),
        "--attach-type",
        "application/pdf",
        "--out",
        &s(&out),
    ]);
    let text = run_client(&w, "Net::SMTP", &mut cmd);
    assert!(
        text.contains("DATA-REPLY: 250 2.0.0 Ok: queued as "),
        "{text}"
    );
    // datasend turns LF into CRLF (and dot-stuffs, undone by postern).
    let sent = crlf(&std::fs::read(&out).expect("perl.eml"));
    check_delivery(
        &w,
        Expect {
            ehlo: "perl.client.test",
            sent: Some(sent),
            output: Some(&text),
            smtputf8: false,
        },
    );
}

#[test]
fn perl_net_smtp_starttls() {
    perl_sends(Tls::Starttls);
}

#[test]
fn perl_net_smtp_implicit_tls() {
    perl_sends(Tls::Implicit);
}
