//! `kind = "ses"` against a real SES emulator: moto in server mode,
//! reached over plain http on loopback (the one case `base_url` may be
//! http). postern signs (DKIM) and spools the message; the raw message moto
//! received must be byte-identical to the spool file. The exact request
//! shape, SigV4 signature and fault handling against a scripted server are
//! in upstream_json.rs; AWS's SigV4 test vectors are unit tests in
//! src/upstream/ses.rs.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::postern::{free_port, toml_str};
use crate::common::*;

const REGION: &str = "eu-west-1";
const AKID: &str = "AKIDPOSTERNMOTO";

/// `moto_server` next to the test Python (the venv tests/run.sh makes), or
/// on PATH.
fn moto_server_bin() -> PathBuf {
    let venv = Path::new(&crate::common::clients::python_bin())
        .parent()
        .map(|d| d.join("moto_server"));
    if let Some(p) = venv.filter(|p| p.exists()) {
        return p;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("moto_server");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "moto_server not found: run the tests through tests/run.sh, which installs \
         tests/requirements.txt (moto[server]) into .venv and sets POSTERN_PYTHON"
    )
}

/// A moto_server process on a loopback port; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    fn start(dir: &Path) -> Moto {
        let port = free_port();
        let log = dir.join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log");
        let err = out.try_clone().expect("moto log");
        let child = Command::new(moto_server_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn moto_server");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let up = wait_until(Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up || matches!(moto.child.try_wait(), Ok(Some(_))) {
            panic!("moto_server did not start:\n{}", moto.log());
        }
        moto
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn script(&self, args: &[&str]) -> String {
        let out = python("moto_ses.py", args);
        assert!(
            out.status.success(),
            "moto_ses.py {args:?} failed: {}\nmoto log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn verify(&self, identity: &str) {
        self.script(&["verify", &self.endpoint, REGION, AKID, identity]);
    }

    /// The raw messages moto accepted.
    fn sent(&self) -> Vec<serde_json::Value> {
        let text = self.script(&["sent", &self.endpoint]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("moto sent list: {e}: {text}"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plain TCP forwarder `listen_port` → `target`, started on demand: until
/// it runs, postern's connections to `listen_port` are refused.
struct Forwarder {
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Forwarder {
    fn start(listen_port: u16, target: u16) -> Forwarder {
        let listener = TcpListener::bind(("127.0.0.1", listen_port))
            .unwrap_or_else(|e| panic!("bind forwarder on {listen_port}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((inbound, _)) => {
                        let _ = inbound.set_nonblocking(false);
                        if let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) {
                            pipe(&inbound, &outbound);
                            pipe(&outbound, &inbound);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Forwarder {
            stop,
            accept: Some(accept),
        }
    }
}

/// Copies `from` → `to` until EOF, then closes `to`'s write side.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (mut from, mut to) = (
        from.try_clone().expect("clone"),
        to.try_clone().expect("clone"),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.flush();
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// An ed25519 key from `postern dkim keygen`; returns the `[[dkim]]` block.
fn dkim_block(dir: &Path) -> String {
    let out = crate::common::clients::postern_cmd(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "ses1",
            "--algorithm",
            "ed25519",
            "--out",
            &dir.to_string_lossy(),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "dkim keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = dir.join("example.com.ses1.pem");
    format!(
        "[[dkim]]\ndomain = \"example.com\"\nselector = \"ses1\"\nalgorithm = \"ed25519\"\n\
         private_key = {}\n",
        toml_str(&format!("file:{}", key.display()))
    )
}

const MESSAGE: &[u8] = b"From: Billing <billing@example.com>\r\n\
To: Bob <bob@dest.test>\r\n\
Subject: Invoice 42 via SES\r\n\
Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <ses-42@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Total: 42 EUR\r\n\
.a line starting with a dot\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IK\r\n\
--b1--\r\n";

#[test]
fn ses_delivers_the_signed_spooled_bytes_to_moto() {
    let ca = TestCa::new();
    let work = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(work.path());
    // postern talks to this port; nothing listens there until the spool
    // file has been read, so the message waits in the queue.
    let ses_port = free_port();

    let cfg = ses_config(ses_port, &dkim_block(work.path()));
    let p = start(&ca, &cfg);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    let rcpts = ["bob@dest.test", "dave@other.test"];
    let r = c.send_message("app@example.com", &rcpts, MESSAGE);
    r.expect(250, "2.0.0", "end of data");
    let id = r.queue_id().expect("queue id");
    c.quit();

    // The first attempt fails (connection refused) and is retried.
    let ok = wait_until(Duration::from_secs(60), || {
        p.log().contains("event=\"deferred\"") || p.log().contains("event=deferred")
    });
    assert!(ok, "no deferred attempt:\n{}", p.log());
    let (env, spooled) = read_spool_file(&p.queue_dir().join(&id));
    assert_eq!(env["rcpt_to"], serde_json::json!(rcpts), "{env}");
    assert!(
        spooled.starts_with(b"DKIM-Signature: "),
        "spooled message is not DKIM-signed:\n{}",
        show(&spooled[..spooled.len().min(300)])
    );
    assert!(
        spooled.ends_with(MESSAGE),
        "spool ends with the client's bytes"
    );

    moto.verify("app@example.com");
    let _forwarder = Forwarder::start(ses_port, moto_port(&moto));
    p.wait_queue_empty();
    assert!(
        p.dead_files().is_empty(),
        "{:?}\n{}",
        p.dead_files(),
        p.log()
    );

    let sent = moto.sent();
    assert_eq!(sent.len(), 1, "exactly one message at moto: {sent:#?}");
    let m = &sent[0];
    let raw = m["raw_data"].as_str().expect("raw_data");
    assert_bytes_eq(raw.as_bytes(), &spooled, "moto raw message vs spool file");
    assert_eq!(m["source"], "app@example.com");
    // moto lists Destination first, then adds header addresses itself.
    let dest: Vec<&str> = m["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(&dest[..2], &rcpts, "{dest:?}");
    // The delivery log carries the SES MessageId moto assigned.
    let msg_id = m["id"].as_str().expect("id");
    let logged = wait_until(Duration::from_secs(30), || p.log().contains(msg_id));
    assert!(logged, "SES MessageId {msg_id} not logged:\n{}", p.log());
}

/// Loopback-trusted credential on route `aws` → `[upstreams.ses]` at
/// `ses_port` (plain http, as moto speaks), plus `extra` TOML.
fn ses_config(ses_port: u16, extra: &str) -> Config {
    let mut cfg = Config::new("https://127.0.0.1:9/unused").listeners(&["none"]);
    cfg.credentials = vec![format!(
        "{}route = \"aws\"\n",
        Config::networks_credential("local", &["127.0.0.0/8"], &["*@example.com"])
    )];
    cfg.extra = format!(
        "[routes.aws]\nupstreams = [\"ses\"]\n\n[upstreams.ses]\nkind = \"ses\"\n\
         base_url = \"http://127.0.0.1:{ses_port}\"\nregion = \"{REGION}\"\n\
         access_key_id = \"env:POSTERN_TEST_AKID\"\n\
         secret_access_key = \"env:POSTERN_TEST_SECRET\"\ntimeout = \"10s\"\n\n{extra}"
    );
    cfg
}

fn start(ca: &TestCa, cfg: &Config) -> Postern {
    Postern::start_with_env(
        ca,
        cfg,
        &[
            ("POSTERN_TEST_AKID", AKID),
            (
                "POSTERN_TEST_SECRET",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
        ],
    )
}

/// A client's SES control headers (configuration set, sending
/// authorization ARNs, tags) never reach SES: the operator's
/// `configuration_set` is the only one that applies.
#[test]
fn client_ses_control_headers_do_not_reach_ses() {
    let ca = TestCa::new();
    let work = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start(work.path());
    moto.verify("app@example.com");
    let p = start(&ca, &ses_config(moto_port(&moto), ""));
    let mut msg = b"X-SES-CONFIGURATION-SET: attacker-set\r\nX-SES-MESSAGE-TAGS: cost=evil\r\n\
X-SES-SOURCE-ARN: arn:aws:ses:eu-west-1:999999999999:identity/example.com\r\n\
X-SES-FROM-ARN: arn:aws:ses:eu-west-1:999999999999:identity/example.com\r\n\
X-SES-RETURN-PATH-ARN: arn:aws:ses:eu-west-1:999999999999:identity/example.com\r\n"
        .to_vec();
    msg.extend_from_slice(MESSAGE);
    let mut c = SmtpClient::connect(p.port(0));
    c.greet();
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "end of data");
    c.quit();
    p.wait_queue_empty();
    let sent = moto.sent();
    assert_eq!(sent.len(), 1, "{sent:#?}\n{}", p.log());
    let raw = sent[0]["raw_data"].as_str().expect("raw_data");
    assert!(
        !raw.to_ascii_lowercase().contains("x-ses-"),
        "a client's X-SES-* header reached SES:\n{raw}"
    );
    assert!(raw.contains("Subject: Invoice 42 via SES"), "{raw}");
}

fn moto_port(m: &Moto) -> u16 {
    m.endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("moto port")
}
