//! DKIM signing end to end: keys made by `postern dkim keygen`, messages
//! signed by the running daemon, and every signature checked by an
//! independent verifier (Python dkimpy, DNS stubbed with the TXT lines
//! keygen printed). Also the policy around it: unsigned mail rejected when
//! configured, closest parent domain, key validity windows, and upstreams
//! with `dkim = false` receiving the message without postern's signature.

use crate::common::clients::{postern_cmd, py_script};
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A key made by `postern dkim keygen` and what it printed.
#[derive(Clone, Debug)]
struct Key {
    domain: String,
    selector: String,
    algorithm: String,
    path: PathBuf,
    /// The `S._domainkey.D. IN TXT ( ... )` line.
    zone_line: String,
    stdout: String,
}

impl Key {
    /// A `[[dkim]]` block for this key, with extra lines (validity window).
    fn block(&self, extra: &str) -> String {
        format!(
            "[[dkim]]\ndomain = \"{}\"\nselector = \"{}\"\nalgorithm = \"{}\"\nprivate_key = \"file:{}\"\n{extra}\n",
            self.domain,
            self.selector,
            self.algorithm,
            self.path.display()
        )
    }
}

fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> Key {
    let out = postern_cmd(
        &[
            "dkim",
            "keygen",
            "--domain",
            domain,
            "--selector",
            selector,
            "--algorithm",
            algorithm,
            "--out",
            &dir.to_string_lossy(),
        ],
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkim keygen failed: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let zone_line = stdout
        .lines()
        .find(|l| l.contains(" IN TXT ("))
        .unwrap_or_else(|| panic!("no TXT zone line in keygen output:\n{stdout}"))
        .to_string();
    Key {
        domain: domain.into(),
        selector: selector.into(),
        algorithm: algorithm.into(),
        path: dir.join(format!("{domain}.{selector}.pem")),
        zone_line,
        stdout,
    }
}

/// Keys shared by all tests of this binary (RSA generation is slow in
/// debug builds): RSA and Ed25519 for example.com, Ed25519 for
/// sub.example.com.
struct Keys {
    rsa: Key,
    ed: Key,
    sub_ed: Key,
    old_ed: Key,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("dkim-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Keys {
            rsa: keygen(&dir, "example.com", "rsa1", "rsa"),
            ed: keygen(&dir, "example.com", "ed1", "ed25519"),
            sub_ed: keygen(&dir, "sub.example.com", "subed", "ed25519"),
            old_ed: keygen(&dir, "example.com", "old", "ed25519"),
        }
    })
}

fn python_bin() -> PathBuf {
    std::env::var_os("POSTERN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

/// One signature as dkimpy saw it.
#[derive(Debug)]
struct Sig {
    d: String,
    s: String,
    a: String,
    h: String,
    l: Option<String>,
    ok: bool,
}

/// Runs dkimpy over `msg` with DNS answered from `keys`' zone lines.
fn verify(msg: &[u8], keys: &[&Key], dir: &Path) -> (Vec<Sig>, bool) {
    let file = tempfile::NamedTempFile::new_in(dir).expect("temp message file");
    std::fs::write(file.path(), msg).expect("write message");
    let mut cmd = Command::new(python_bin());
    cmd.arg(py_script("dkim_verify.py")).arg(file.path());
    for k in keys {
        cmd.arg("--record").arg(&k.zone_line);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}); run tests/run.sh (it creates .venv with dkimpy) or set POSTERN_PYTHON",
            python_bin().display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkim_verify.py failed ({:?}); is dkimpy installed (tests/requirements.txt)?\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("verifier output is not JSON ({e}): {stdout}"));
    let sigs = v["signatures"]
        .as_array()
        .expect("signatures array")
        .iter()
        .map(|s| Sig {
            d: s["d"].as_str().unwrap_or_default().into(),
            s: s["s"].as_str().unwrap_or_default().into(),
            a: s["a"].as_str().unwrap_or_default().into(),
            h: s["h"].as_str().unwrap_or_default().into(),
            l: s["l"].as_str().map(str::to_string),
            ok: s["ok"].as_bool().unwrap_or(false),
        })
        .collect();
    (sigs, v["verify_first"].as_bool().unwrap_or(false))
}

/// Config: credential `app` may send as anyone; `[[dkim]]` blocks appended.
fn config(up: &MockUpstream, dkim: &str) -> Config {
    let mut cfg = Config::new(&up.url());
    cfg.credentials = vec![Config::password_credential("app", "app", &["*"])];
    cfg.extra = dkim.to_string();
    cfg
}

fn session(ca: &TestCa, p: &Postern) -> SmtpClient {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    c
}

fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <{from}>\r\nTo: Bob <bob@dest.test>\r\nCc: carol@dest.test\r\n\
         Subject: {subject}\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nX-Not-Signed: yes\r\n\r\n{body}",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

/// Sends `content` and returns what reached the upstream.
fn relay(ca: &TestCa, p: &Postern, up: &MockUpstream, from: &str, content: &[u8]) -> Vec<u8> {
    let before = up.count();
    let mut c = session(ca, p);
    c.send_message(from, &["bob@dest.test"], content)
        .expect(250, "2.0.0", "end of DATA");
    c.quit();
    p.delivered(up, before + 1)[before].body.clone()
}

/// The signatures postern put in front, in order: (a=, s=) pairs.
fn leading_signatures(msg: &[u8]) -> usize {
    let text = String::from_utf8_lossy(msg);
    let mut n = 0;
    for line in text.split("\r\n") {
        if line.starts_with("DKIM-Signature:") {
            n += 1;
        } else if !line.starts_with([' ', '\t']) {
            break;
        }
    }
    n
}

#[test]
fn keygen_prints_a_split_record_and_guards_the_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let k = keys();
    for key in [&k.rsa, &k.ed] {
        let mode = std::fs::metadata(&key.path)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.path.display());
        assert!(
            std::fs::read_to_string(&key.path)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert!(
            key.stdout.contains(&key.block("").trim_end().to_string()),
            "{}",
            key.stdout
        );
    }
    let prefix = "rsa1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A";
    assert!(k.rsa.zone_line.starts_with(prefix), "{}", k.rsa.zone_line);
    assert!(k.rsa.zone_line.ends_with("\" )"), "{}", k.rsa.zone_line);
    // 2048-bit SPKI: 392 base64 chars + 18 of tags = 410 bytes → 255 + 155.
    let parts: Vec<&str> = k.rsa.zone_line.split('"').skip(1).step_by(2).collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [255, 155]
    );
    assert!(
        k.ed.zone_line
            .starts_with("ed1._domainkey.example.com. IN TXT ( \"v=DKIM1; k=ed25519; p=")
    );
    assert_eq!(
        k.ed.zone_line.matches('"').count(),
        2,
        "one string: {}",
        k.ed.zone_line
    );

    // Never overwrite a key; bad arguments are usage errors (exit 2).
    let dir = k.ed.path.parent().unwrap().to_string_lossy().into_owned();
    let again = postern_cmd(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "ed1",
            "--algorithm",
            "ed25519",
            "--out",
            &dir,
        ],
        b"",
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    let bits = postern_cmd(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "x",
            "--bits",
            "1024",
            "--out",
            &dir,
        ],
        b"",
    );
    assert_eq!(
        bits.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bits.stderr)
    );
    assert!(!Path::new(&dir).join("example.com.x.pem").exists());
}

#[test]
fn rsa_signature_verifies_and_a_changed_byte_fails() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &config(&up, &k.rsa.block("")));
    let sent = message("app@example.com", "rsa signed", "Hello, RSA.\r\n");
    let got = relay(&ca, &p, &up, "app@example.com", &sent);
    assert_eq!(leading_signatures(&got), 1, "{}", show(&got));
    let (sigs, first) = verify(&got, &[&k.rsa], p.dir());
    assert_eq!(sigs.len(), 1);
    let s = &sigs[0];
    assert!(s.ok && first, "{sigs:?}");
    assert_eq!(
        (s.d.as_str(), s.s.as_str(), s.a.as_str()),
        ("example.com", "rsa1", "rsa-sha256")
    );
    assert_eq!(s.l, None, "no l= tag");
    let h: Vec<String> = s.h.split(':').map(|x| x.to_ascii_lowercase()).collect();
    let mut h_sorted = h.clone();
    h_sorted.sort();
    assert_eq!(
        h_sorted,
        [
            "cc",
            "content-type",
            "date",
            "from",
            "from",
            "message-id",
            "mime-version",
            "subject",
            "to"
        ],
        "h= lists the present headers, From once more: {h:?}"
    );
    // After the signatures: postern's Received header, then the client's bytes.
    let after = &got[got
        .windows(11)
        .position(|w| w == b"\r\nReceived:")
        .expect("Received")
        + 2..];
    assert_forwarded(after, &sent);

    // Tamper with one body byte: the same verifier must now fail.
    let mut bad = got.clone();
    let pos = bad.windows(5).rposition(|w| w == b"Hello").expect("body");
    bad[pos] = b'J';
    let (sigs, first) = verify(&bad, &[&k.rsa], p.dir());
    assert!(
        !sigs[0].ok && !first,
        "a modified message must fail: {sigs:?}"
    );
    // And a header change too.
    let bad = String::from_utf8_lossy(&got).replace("Subject: rsa signed", "Subject: rsa signef");
    let (sigs, _) = verify(bad.as_bytes(), &[&k.rsa], p.dir());
    assert!(!sigs[0].ok, "{sigs:?}");
}

#[test]
fn ed25519_signature_verifies() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(&ca, &config(&up, &k.ed.block("")));
    let got = relay(
        &ca,
        &p,
        &up,
        "app@example.com",
        &message("app@example.com", "ed signed", "Hi.\r\n"),
    );
    let (sigs, first) = verify(&got, &[&k.ed], p.dir());
    assert_eq!(sigs.len(), 1);
    assert!(sigs[0].ok && first, "{sigs:?}");
    assert_eq!(sigs[0].a, "ed25519-sha256");
    let mut bad = got.clone();
    let n = bad.len();
    bad[n - 4] ^= 0x01;
    assert!(!verify(&bad, &[&k.ed], p.dir()).0[0].ok);
}

/// Dual signing over a range of content: both signatures of every message
/// verify.
#[test]
fn dual_signed_messages_of_every_shape_verify() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &config(&up, &format!("{}{}", k.rsa.block(""), k.ed.block(""))),
    );
    let long_line = "x".repeat(990);
    let attachment = {
        use base64::Engine;
        let bytes: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "From: <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: attachment\r\n\
             Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <att@example.com>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
             --b1\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"data.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
            lines.join("\r\n")
        )
    };
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("plain", "", message("app@example.com", "plain", "Hello.\r\n.dot line\r\n")),
        (
            "8bit",
            " BODY=8BITMIME",
            message("app@example.com", "eight bit", "Gr\u{fc}\u{df}e, \u{e9}t\u{e9}, \u{65e5}\u{672c}\r\n"),
        ),
        (
            "smtputf8",
            " BODY=8BITMIME SMTPUTF8",
            "From: J\u{f6}rg <j\u{f6}rg@example.com>\r\nTo: <bob@dest.test>\r\n\
                 Subject: Gr\u{fc}\u{df}e aus K\u{f6}ln\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
                 Message-ID: <utf8@example.com>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                 \u{fc}ml\u{e4}ut\r\n"
                .as_bytes()
            .to_vec(),
        ),
        (
            "long lines and trailing space",
            "",
            message("app@example.com", "long", &format!("{long_line}\r\n{long_line}  \r\n\tend \r\n\r\n\r\n")),
        ),
        ("attachment", "", attachment.into_bytes()),
    ];
    for (name, params, content) in &cases {
        let before = up.count();
        let mut c = session(&ca, &p);
        c.cmd(&format!("MAIL FROM:<app@example.com>{params}"))
            .expect(250, "2.1.0", name);
        c.cmd("RCPT TO:<bob@dest.test>").expect(250, "2.1.5", name);
        c.data(content).expect(250, "2.0.0", name);
        c.quit();
        let got = p.delivered(&up, before + 1)[before].body.clone();
        assert_eq!(leading_signatures(&got), 2, "{name}: {}", show(&got));
        let (sigs, first) = verify(&got, &[&k.rsa, &k.ed], p.dir());
        let algs: Vec<&str> = sigs.iter().map(|s| s.a.as_str()).collect();
        assert_eq!(algs, ["rsa-sha256", "ed25519-sha256"], "{name}");
        assert!(
            sigs.iter().all(|s| s.ok) && first,
            "{name}: {sigs:?}\n{}",
            show(&got)
        );
    }

    // Bare LF input is normalized to CRLF before signing; what leaves
    // verifies and has no bare LF.
    let before = up.count();
    let mut c = session(&ca, &p);
    let bare = b"From: <app@example.com>\nTo: <bob@dest.test>\nSubject: bare lf\n\
        Date: Mon, 02 Mar 2026 10:00:00 +0000\nMessage-ID: <lf@example.com>\n\nline one\nline two\r\n";
    c.send_message("app@example.com", &["bob@dest.test"], bare)
        .expect(250, "2.0.0", "bare LF");
    c.quit();
    let got = p.delivered(&up, before + 1)[before].body.clone();
    assert_eq!(bare_newline(&got), None, "{}", show(&got));
    assert!(contains(&got, b"\r\nline one\r\nline two\r\n"));
    let (sigs, _) = verify(&got, &[&k.rsa, &k.ed], p.dir());
    assert!(sigs.len() == 2 && sigs.iter().all(|s| s.ok), "{sigs:?}");
}

#[test]
fn unsigned_reject_names_the_domain_and_nothing_leaves() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let dkim = format!("[dkim_policy]\nunsigned = \"reject\"\n{}", k.ed.block(""));
    let p = Postern::start(&ca, &config(&up, &dkim));
    let mut c = session(&ca, &p);
    let r = c.send_message(
        "app@other.org",
        &["bob@dest.test"],
        &message("app@other.org", "nokey", "x\r\n"),
    );
    r.expect(550, "5.7.1", "From domain without key");
    assert!(
        r.text().contains("No DKIM key for domain other.org"),
        "{r:?}"
    );
    // The session goes on; a message for a signed domain passes, and it is
    // the only one the upstream ever sees.
    let ok = c.send_message(
        "app@example.com",
        &["bob@dest.test"],
        &message("app@example.com", "haskey", "y\r\n"),
    );
    ok.expect(250, "2.0.0", "From domain with key");
    c.quit();
    let reqs = p.delivered(&up, 1);
    p.wait_queue_empty();
    assert_eq!(up.count(), 1);
    assert!(contains(&reqs[0].body, b"Subject: haskey"));
    assert!(p.dead_files().is_empty());
}

/// A subdomain without an active key of its own is signed with the closest
/// parent's key; a key past its not_after is not used; a key before its
/// not_before is not used.
#[test]
fn closest_parent_domain_and_validity_windows() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let dkim = format!(
        "{}{}{}",
        k.ed.block(""),
        k.old_ed.block("not_after = 2020-01-01T00:00:00Z"),
        k.sub_ed
            .block("not_before = 2020-01-01T00:00:00Z\nnot_after = 2021-01-01T00:00:00Z"),
    );
    let p = Postern::start(&ca, &config(&up, &dkim));
    let all = [&k.ed, &k.old_ed, &k.sub_ed];
    for (from, want) in [
        ("app@example.com", "ed1"),
        ("app@mail.sub.example.com", "ed1"),
        ("app@SUB.Example.com", "ed1"),
    ] {
        let got = relay(&ca, &p, &up, from, &message(from, "parent", "z\r\n"));
        let (sigs, _) = verify(&got, &all, p.dir());
        let seen: Vec<(&str, &str, bool)> = sigs
            .iter()
            .map(|s| (s.d.as_str(), s.s.as_str(), s.ok))
            .collect();
        assert_eq!(seen, [("example.com", want, true)], "From {from}");
    }

    // With a current window the subdomain's own key is the closest one.
    let up2 = MockUpstream::start(&ca);
    let dkim = format!(
        "{}{}",
        k.ed.block(""),
        k.sub_ed.block("not_before = 2020-01-01T00:00:00Z")
    );
    let p2 = Postern::start(&ca, &config(&up2, &dkim));
    let from = "app@mail.sub.example.com";
    let got = relay(&ca, &p2, &up2, from, &message(from, "sub", "z\r\n"));
    let (sigs, _) = verify(&got, &all, p2.dir());
    let seen: Vec<(&str, &str, bool)> = sigs
        .iter()
        .map(|s| (s.d.as_str(), s.s.as_str(), s.ok))
        .collect();
    assert_eq!(seen, [("sub.example.com", "subed", true)]);
    // Unknown domains pass unsigned under the default policy.
    let got = relay(
        &ca,
        &p2,
        &up2,
        "app@other.org",
        &message("app@other.org", "unsigned", "z\r\n"),
    );
    assert_eq!(leading_signatures(&got), 0);
    assert!(got.starts_with(b"Received: "), "{}", show(&got));
}

#[test]
fn dkim_false_upstream_gets_the_message_without_our_signature() {
    let k = keys();
    let ca = TestCa::new();
    let signed_up = MockUpstream::start(&ca);
    let plain_up = MockUpstream::start(&ca);
    let mut cfg = config(&signed_up, "");
    cfg.credentials.push(
        Config::password_credential("rebuild", "rebuild", &["*"])
            .replace("allowed_senders", "route = \"rebuild\"\nallowed_senders"),
    );
    cfg.extra = format!(
        "{}{}\n[routes.rebuild]\nupstreams = [\"rebuilder\"]\n\n[upstreams.rebuilder]\nkind = \"http\"\n\
         url = \"{}\"\nca_file = \"{}\"\ndkim = false\n",
        k.rsa.block(""),
        k.ed.block(""),
        plain_up.url(),
        ca.ca_pem.display()
    );
    let p = Postern::start(&ca, &cfg);

    let sent = message("app@example.com", "to signing upstream", "one\r\n");
    let got = relay(&ca, &p, &signed_up, "app@example.com", &sent);
    assert_eq!(leading_signatures(&got), 2);
    let (sigs, _) = verify(&got, &[&k.rsa, &k.ed], p.dir());
    assert!(sigs.iter().all(|s| s.ok), "{sigs:?}");

    let sent = message("app@example.com", "to rebuilding upstream", "two\r\n");
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain("rebuild", PASSWORD)
        .expect(235, "2.7.0", "AUTH rebuild");
    c.send_message("app@example.com", &["bob@dest.test"], &sent)
        .expect(250, "2.0.0", "end of DATA");
    c.quit();
    let got = p.delivered(&plain_up, 1)[0].body.clone();
    assert!(!contains(&got, b"DKIM-Signature"), "{}", show(&got));
    // Exactly postern's Received header + the client's bytes: nothing else
    // was removed.
    assert_forwarded(&got, &sent);
    assert_eq!(signed_up.count(), 1);
}

/// Raw 8-bit headers from a legacy sender are repaired (RFC 2047) before
/// signing: the signatures cover the repaired, pure-ASCII header that
/// leaves, and dkimpy verifies them.
#[test]
fn repaired_8bit_headers_are_signed_and_verify() {
    let k = keys();
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let p = Postern::start(
        &ca,
        &config(&up, &format!("{}{}", k.rsa.block(""), k.ed.block(""))),
    );
    let cases: Vec<(&str, Vec<u8>, &str, serde_json::Value)> = vec![
        (
            "raw UTF-8",
            b"From: \"M\xc3\xbcller, Hans\" <app@example.com>\r\nTo: J\xc3\xb6rg Gro\xc3\x9f <bob@dest.test>\r\n\
Subject: Rechnung f\xc3\xbcr M\xc3\xa4rz \xe2\x80\x94 Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, D\xc3\xbcsseldorf und M\xc3\xbcnchen\r\n\
Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <utf8-dkim@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
                .to_vec(),
            "Rechnung für März — Grüße aus Köln, Düsseldorf und München",
            serde_json::json!([["Müller, Hans", "app@example.com"]]),
        ),
        (
            "raw Latin-1",
            b"From: M\xfcller <app@example.com>\r\nTo: <bob@dest.test>\r\nSubject: Rechnung f\xfcr M\xe4rz\r\n\
Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <latin1-dkim@example.com>\r\n\r\nhi\r\n"
                .to_vec(),
            "Rechnung für März",
            serde_json::json!([["Müller", "app@example.com"]]),
        ),
    ];
    for (name, content, subject, from) in &cases {
        let got = relay(&ca, &p, &up, "app@example.com", content);
        let end = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header/body separator");
        assert!(got[..end].is_ascii(), "{name}: {}", show(&got));
        assert_eq!(leading_signatures(&got), 2, "{name}: {}", show(&got));
        let (sigs, first) = verify(&got, &[&k.rsa, &k.ed], p.dir());
        assert!(
            sigs.len() == 2 && sigs.iter().all(|s| s.ok) && first,
            "{name}: {sigs:?}\n{}",
            show(&got)
        );
        for s in &sigs {
            let h: Vec<String> = s.h.split(':').map(|h| h.to_ascii_lowercase()).collect();
            assert!(
                h.contains(&"subject".to_string()) && h.contains(&"from".to_string()),
                "{name}: h={}",
                s.h
            );
        }
        let py = decode_headers(&got, &["Subject", "From"]);
        assert_eq!(py["headers"]["Subject"][0], *subject, "{name}: {py}");
        assert_eq!(py["addresses"]["From"], *from, "{name}: {py}");
    }
}
