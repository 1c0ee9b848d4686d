//! HAProxy and redis-server as child processes on loopback, for the
//! scale-out tests (tests/it/cluster.rs): each test runs private
//! instances from a config in its own directory, never the system ones.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::postern::free_port;
use super::util::wait_until;

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let up = wait_until(Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "{what} did not listen on {port}; log:\n{}", log_of(log));
}

/// HAProxy in `mode tcp`, round robin over `backends`, sending PROXY v2.
pub struct Haproxy {
    _dir: tempfile::TempDir,
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Haproxy {
    /// `backends`: the nodes' SMTP ports on 127.0.0.1.
    pub fn start(backends: &[u16]) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("postern-haproxy-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let mut cfg = format!(
            "global\n  maxconn 2000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\nfrontend smtp\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\nbackend nodes\n  balance roundrobin\n"
        );
        for (i, b) in backends.iter().enumerate() {
            cfg.push_str(&format!("  server n{i} 127.0.0.1:{b} send-proxy-v2\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("haproxy (Debian package haproxy; tests/run.sh installs it)");
        wait_listening(port, "haproxy", &log);
        Haproxy {
            _dir: dir,
            port,
            log,
            child,
        }
    }

    pub fn log(&self) -> String {
        log_of(&self.log)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server without persistence, on a fixed port so it can
/// be stopped and started again where the nodes expect it.
pub struct Redis {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Extra redis-server arguments (`--requirepass ...`).
    args: Vec<String>,
    /// TLS only (`--port 0 --tls-port`), with these copies of a test CA's
    /// files in `dir`.
    tls: bool,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// With extra redis-server arguments.
    pub fn start_with(args: &[&str]) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("postern-redis-")
            .tempdir()
            .expect("tempdir");
        let mut r = Redis {
            dir,
            port: free_port(),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            tls: false,
        };
        r.spawn();
        r
    }

    /// TLS only: no plaintext port, `ca`'s server certificate (it names
    /// 127.0.0.1 and localhost), clients not asked for certificates.
    pub fn start_tls(ca: &super::TestCa, args: &[&str]) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("postern-redis-")
            .tempdir()
            .expect("tempdir");
        // Copies, so this Redis can outlive (and restart without) `ca`.
        for (from, to) in [
            (&ca.ca_pem, "ca.pem"),
            (&ca.cert_pem, "server.pem"),
            (&ca.key_pem, "server.key"),
        ] {
            std::fs::copy(from, dir.path().join(to)).expect("copy TLS file");
        }
        let mut r = Redis {
            dir,
            port: free_port(),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            tls: true,
        };
        r.spawn();
        r
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The listening arguments: a plaintext port, or only a TLS one.
    fn port_args(&self) -> Vec<String> {
        let port = self.port.to_string();
        if !self.tls {
            return vec!["--port".into(), port];
        }
        let file = |name: &str| self.dir.path().join(name).to_string_lossy().into_owned();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            file("server.pem"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis log");
        let child = Command::new("redis-server")
            .args(self.port_args())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("redis-server (Debian package redis-server; tests/run.sh installs it)");
        self.child = Some(child);
        wait_listening(self.port, "redis-server", &self.log_path());
    }

    /// SIGKILL: Redis gone without warning (its data too: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs one redis-cli command against this instance; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if self.tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(self.dir.path().join("ca.pem"));
        }
        let out = cmd.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
