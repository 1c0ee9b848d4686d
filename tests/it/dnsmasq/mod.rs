//! A real DNS server on loopback for the DNS tests (`tests/dns_check.rs`,
//! `tests/validation.rs`): dnsmasq, started with only the records a test
//! gives it and nothing else (no /etc/hosts, no resolv.conf, no upstream),
//! so answers are exactly the test zone. Names under `.test` that the test
//! did not define answer NXDOMAIN (`--local=/test/`); names anywhere else
//! are refused.
//!
//! dnsmasq comes from Debian's `dnsmasq-base` package, which tests/run.sh
//! installs; a missing binary fails the test with that hint.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dnsmasq; stopped when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
    for dir in candidates {
        let p = dir.join("dnsmasq");
        if p.is_file() {
            return p;
        }
    }
    panic!("dnsmasq not found: install Debian's dnsmasq-base (tests/run.sh does)");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr").port()
}

/// `--txt-record=NAME,S1,S2`: a TXT value split into character-strings of
/// at most 255 bytes, as a zone file would publish a long DKIM key. (On
/// the command line dnsmasq keeps quotes literally and splits at every
/// comma, so values must not contain commas.)
pub fn txt(name: &str, value: &str) -> String {
    assert!(
        !value.contains(','),
        "dnsmasq splits TXT values at commas: {value}"
    );
    let strings: Vec<&str> = value
        .as_bytes()
        .chunks(255)
        .map(|c| std::str::from_utf8(c).expect("ASCII TXT value"))
        .collect();
    format!("--txt-record={name},{}", strings.join(","))
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (dnsmasq options such as
    /// `--mx-host=...`, `--host-record=...`, [`txt`]).
    pub fn start(records: &[String]) -> Dnsmasq {
        let bin = binary();
        for _attempt in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("postern-dns-")
                .tempdir()
                .expect("tempdir");
            let log = dir.path().join("dnsmasq.log");
            let port = free_port();
            let out = std::fs::File::create(&log).expect("create dnsmasq log");
            let err = out.try_clone().expect("clone log handle");
            let child = Command::new(&bin)
                .args([
                    "--keep-in-foreground",
                    &format!("--port={port}"),
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--log-facility=-",
                    "--log-queries",
                    "--local=/test/",
                ])
                .args(records)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let mut d = Dnsmasq {
                child,
                port,
                log,
                _dir: dir,
            };
            if d.wait_ready() {
                return d;
            }
            // Port taken between picking and binding: try another one.
        }
        panic!("dnsmasq did not start on any of 5 ports");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                eprintln!("dnsmasq exited during startup:\n{}", self.log());
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("dnsmasq did not listen within 30s:\n{}", self.log());
    }

    /// `127.0.0.1:PORT`, for `--resolver` and `[validation] resolver`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// dnsmasq's log (every query it answered), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    #[allow(dead_code)]
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing answers DNS on (bound and released).
#[allow(dead_code)]
pub fn dead_resolver() -> String {
    format!("127.0.0.1:{}", free_port())
}
