//! `Postern`: the real binary as a child process with a generated config,
//! a private state_dir and captured logs. It exists so tests can start,
//! crash (`kill -9`), stop (SIGTERM) and restart the daemon on the same
//! spool exactly as an operator or the kernel would.

use std::fs::OpenOptions;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::TestCa;
use super::clients::{password_hash, postern_bin};

/// TOML basic string literal for `s`.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builder for the config file a test runs postern with. Defaults: one
/// STARTTLS listener, hostname `relay.test`, credential `app` (username `app`,
/// password [`super::PASSWORD`], senders `*@example.com`), route `default` →
/// upstream `api` (kind http, raw format, trusting the test CA), fast retries.
#[derive(Clone, Debug)]
pub struct Config {
    pub hostname: String,
    /// TLS mode of each listener; ports are assigned at start.
    pub listeners: Vec<String>,
    /// Extra lines for every `[[listeners]]` table (PROXY protocol keys).
    pub listener_lines: Vec<String>,
    /// Extra `key = value` lines for `[server]`.
    pub server: Vec<String>,
    /// Whether to write a `[tls]` section with the test certificate.
    pub tls: bool,
    /// Lines for `[delivery]`.
    pub delivery: Vec<String>,
    /// Raw TOML credential blocks.
    pub credentials: Vec<String>,
    pub upstream_url: String,
    /// `timeout` of `[upstreams.api]`.
    pub upstream_timeout: String,
    /// Extra lines for `[upstreams.api]`.
    pub upstream: Vec<String>,
    /// Lines for `[abuse]`. The default lifts the per-IP connection rate:
    /// every test client connects from 127.0.0.1, so the production default
    /// (60 a minute) would make unrelated tests flaky.
    pub abuse: Vec<String>,
    /// Upstreams of `[routes.default]` (define extra ones in `extra`).
    pub default_route: Vec<String>,
    /// Raw TOML appended at the end.
    pub extra: String,
    /// `[log] format` and `level`, and extra `[log]` lines.
    pub log_format: String,
    pub log_level: String,
    pub log: Vec<String>,
    /// A command postern runs under (`unshare ...`), its arguments
    /// followed by postern's own command line.
    pub wrapper: Vec<String>,
}

impl Config {
    pub fn new(upstream_url: &str) -> Config {
        Config {
            hostname: "relay.test".into(),
            listeners: vec!["starttls".into()],
            listener_lines: Vec::new(),
            server: Vec::new(),
            tls: true,
            delivery: vec![
                "retry_initial = \"200ms\"".into(),
                "retry_max = \"1s\"".into(),
            ],
            credentials: vec![Self::password_credential("app", "app", &["*@example.com"])],
            upstream_url: upstream_url.into(),
            upstream_timeout: "10s".into(),
            upstream: Vec::new(),
            abuse: vec!["connections_per_ip_per_minute = \"unlimited\"".into()],
            default_route: vec!["api".into()],
            extra: String::new(),
            log_format: "text".into(),
            log_level: "info".into(),
            log: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    /// A username/password credential block using [`super::PASSWORD`].
    pub fn password_credential(name: &str, username: &str, senders: &[&str]) -> String {
        format!(
            "[credentials.{name}]\nusername = {}\nsecret_hash = {}\nallowed_senders = [{}]\n",
            toml_str(username),
            toml_str(password_hash()),
            senders
                .iter()
                .map(|s| toml_str(s))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// A source-address credential block.
    pub fn networks_credential(name: &str, cidrs: &[&str], senders: &[&str]) -> String {
        format!(
            "[credentials.{name}]\nnetworks = [{}]\nallowed_senders = [{}]\n",
            cidrs
                .iter()
                .map(|s| toml_str(s))
                .collect::<Vec<_>>()
                .join(", "),
            senders
                .iter()
                .map(|s| toml_str(s))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    pub fn listeners(mut self, modes: &[&str]) -> Config {
        self.listeners = modes.iter().map(|m| m.to_string()).collect();
        self
    }

    pub fn server(mut self, line: &str) -> Config {
        self.server.push(line.into());
        self
    }

    pub fn upstream(mut self, line: &str) -> Config {
        self.upstream.push(line.into());
        self
    }

    pub fn abuse(mut self, line: &str) -> Config {
        self.abuse.push(line.into());
        self
    }

    /// Every listener takes PROXY headers, from `trusted` (a CIDR) only.
    pub fn behind_proxy(mut self, trusted: &str) -> Config {
        self.listener_lines = vec![
            "proxy_protocol = true".into(),
            format!("trusted_proxies = [{}]", toml_str(trusted)),
        ];
        self
    }

    pub fn credential(mut self, block: String) -> Config {
        self.credentials.push(block);
        self
    }

    /// Adds credential `local` trusting 127.0.0.0/8 for `*@example.com`.
    pub fn with_loopback_network(self) -> Config {
        self.credential(Self::networks_credential(
            "local",
            &["127.0.0.0/8"],
            &["*@example.com"],
        ))
    }

    /// Renders the TOML for the given ports and state directory.
    pub fn render(&self, ca: &CaPaths, state_dir: &Path, ports: &[u16]) -> String {
        let mut t = String::new();
        t.push_str("[server]\n");
        t.push_str(&format!("hostname = {}\n", toml_str(&self.hostname)));
        t.push_str(&format!(
            "state_dir = {}\n",
            toml_str(&state_dir.to_string_lossy())
        ));
        for l in &self.server {
            t.push_str(l);
            t.push('\n');
        }
        if self.tls {
            t.push_str("\n[tls]\n");
            t.push_str(&format!(
                "certificate = {}\n",
                toml_str(&ca.cert.to_string_lossy())
            ));
            t.push_str(&format!(
                "private_key = {}\n",
                toml_str(&ca.key.to_string_lossy())
            ));
        }
        for (mode, port) in self.listeners.iter().zip(ports) {
            t.push_str("\n[[listeners]]\n");
            t.push_str(&format!(
                "address = \"127.0.0.1:{port}\"\ntls = {}\n",
                toml_str(mode)
            ));
            for l in &self.listener_lines {
                t.push_str(l);
                t.push('\n');
            }
        }
        t.push_str("\n[delivery]\nworkers = 4\n");
        for l in &self.delivery {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&format!(
            "\n[log]\nformat = {}\nlevel = {}\n",
            toml_str(&self.log_format),
            toml_str(&self.log_level)
        ));
        for l in &self.log {
            t.push_str(l);
            t.push('\n');
        }
        for c in &self.credentials {
            t.push('\n');
            t.push_str(c);
        }
        if !self.abuse.is_empty() {
            t.push_str("\n[abuse]\n");
            for l in &self.abuse {
                t.push_str(l);
                t.push('\n');
            }
        }
        let route: Vec<String> = self.default_route.iter().map(|u| toml_str(u)).collect();
        t.push_str(&format!(
            "\n[routes.default]\nupstreams = [{}]\n",
            route.join(", ")
        ));
        t.push_str("\n[upstreams.api]\nkind = \"http\"\n");
        t.push_str(&format!("url = {}\n", toml_str(&self.upstream_url)));
        t.push_str(&format!(
            "ca_file = {}\ntimeout = {}\n",
            toml_str(&ca.ca.to_string_lossy()),
            toml_str(&self.upstream_timeout)
        ));
        for l in &self.upstream {
            t.push_str(l);
            t.push('\n');
        }
        if !self.extra.is_empty() {
            t.push('\n');
            t.push_str(&self.extra);
            t.push('\n');
        }
        t
    }
}

/// Where the test CA's PEM files are (copied out so `Postern` needs no borrow).
#[derive(Clone, Debug)]
pub struct CaPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A free loopback port (bind to :0 and release; collisions are unlikely).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("local addr").port()
}

/// A running (or stopped) postern process and its private directory.
pub struct Postern {
    dir: TempDir,
    ca: CaPaths,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub ports: Vec<u16>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Postern {
    /// Starts postern with `cfg` and waits until every listener accepts.
    pub fn start(ca: &TestCa, cfg: &Config) -> Postern {
        Self::start_with_env(ca, cfg, &[])
    }

    /// Like [`Postern::start`] with extra environment variables.
    pub fn start_with_env(ca: &TestCa, cfg: &Config, envs: &[(&str, &str)]) -> Postern {
        let dir = tempfile::Builder::new()
            .prefix("postern-test-")
            .tempdir()
            .expect("tempdir");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).expect("create state_dir");
        let mut p = Postern {
            config_path: dir.path().join("postern.toml"),
            log_path: dir.path().join("postern.log"),
            state_dir,
            ports: cfg.listeners.iter().map(|_| free_port()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ca: CaPaths {
                ca: ca.ca_pem.clone(),
                cert: ca.cert_pem.clone(),
                key: ca.key_pem.clone(),
            },
            child: None,
            dir,
        };
        p.spawn(cfg);
        p
    }

    /// Private directory of this instance (config, logs, state).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    fn spawn(&mut self, cfg: &Config) {
        assert!(self.child.is_none(), "postern is already running");
        let text = cfg.render(&self.ca, &self.state_dir, &self.ports);
        std::fs::write(&self.config_path, text).expect("write config");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = match cfg.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(postern_bin());
                c
            }
            None => Command::new(postern_bin()),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn postern run"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for &port in &self.ports.clone() {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    self.child = None;
                    panic!(
                        "postern exited during startup ({status}); config:\n{}\nlog:\n{}",
                        std::fs::read_to_string(&self.config_path).unwrap_or_default(),
                        self.log()
                    );
                }
                if Instant::now() > deadline {
                    panic!(
                        "postern did not listen on port {port} within 60s; log:\n{}",
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // A port picked by another test could answer for us; make sure ours is alive.
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            panic!(
                "postern exited right after startup ({status}); log:\n{}",
                self.log()
            );
        }
    }

    /// Restarts a stopped postern with (possibly) another config; same ports and state_dir.
    pub fn restart(&mut self, cfg: &Config) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn(cfg);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("postern not running").id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("postern not running");
        c.kill().expect("kill -9 postern");
        c.wait().expect("reap postern");
    }

    /// Sends SIGTERM (does not wait).
    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed");
    }

    /// Writes `cfg` over the config file (same ports and state_dir), sends
    /// SIGHUP and waits until the daemon logs the outcome. Returns whether
    /// the new config was taken.
    pub fn reload(&self, cfg: &Config) -> bool {
        let text = cfg.render(&self.ca, &self.state_dir, &self.ports);
        std::fs::write(&self.config_path, text).expect("write config");
        self.sighup()
    }

    /// Sends SIGHUP and waits for the reload's log line; true if it succeeded.
    pub fn sighup(&self) -> bool {
        let outcomes = |log: &str| log.matches("configuration reload").count();
        let before = outcomes(&self.log());
        let st = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -HUP failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if outcomes(&log) > before {
                let last = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("configuration reload"))
                    .unwrap_or("");
                return !last.contains("failed");
            }
            assert!(
                Instant::now() < deadline,
                "no reload outcome logged within 30s; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut().expect("postern not running");
            if let Some(st) = c.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "postern did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (60 s) until the log has a line containing every one of
    /// `parts` and returns it; log lines are written after the fact they
    /// report (a queue file is removed before "delivered" is logged).
    #[track_caller]
    pub fn wait_log_line(&self, parts: &[&str]) -> String {
        let mut found = String::new();
        let ok = super::util::wait_until(Duration::from_secs(60), || {
            match self
                .log()
                .lines()
                .find(|l| parts.iter().all(|part| l.contains(part)))
            {
                Some(l) => {
                    found = l.to_string();
                    true
                }
                None => false,
            }
        });
        assert!(ok, "no log line with {parts:?}; log:\n{}", self.log());
        found
    }

    /// Everything postern wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.state_dir.join("spool").join("queue")
    }

    pub fn dead_dir(&self) -> PathBuf {
        self.state_dir.join("spool").join("dead")
    }

    /// File names in spool/queue (empty if the directory does not exist),
    /// and the ids of the messages that so far live only in the spool's
    /// segment log: everything queued on disk.
    pub fn queue_files(&self) -> Vec<String> {
        super::util::queued_on_disk(&self.state_dir.join("spool"))
    }

    /// File names in spool/dead.
    pub fn dead_files(&self) -> Vec<String> {
        super::util::list_dir(&self.dead_dir())
    }

    /// Waits (60 s) for `n` requests at `up`; on timeout panics with postern's log.
    #[track_caller]
    pub fn delivered(&self, up: &super::MockUpstream, n: usize) -> Vec<super::Recorded> {
        up.try_wait_for(n, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\npostern log:\n{}", self.log()))
    }

    /// Waits for `sent` to arrive at `up` as its only request, byte for byte
    /// (as forwarded), and for the queue to empty; returns the request.
    #[track_caller]
    pub fn only_delivery(&self, up: &super::MockUpstream, sent: &[u8]) -> super::Recorded {
        let mut reqs = self.delivered(up, 1);
        super::util::assert_forwarded(&reqs[0].body, sent);
        self.wait_queue_empty();
        assert_eq!(up.count(), 1, "exactly one request reached the upstream");
        reqs.swap_remove(0)
    }

    /// Waits until spool/queue is empty; panics with the log after 60 s.
    pub fn wait_queue_empty(&self) {
        let ok = super::util::wait_until(Duration::from_secs(60), || self.queue_files().is_empty());
        assert!(
            ok,
            "spool/queue never emptied: {:?}\nlog:\n{}",
            self.queue_files(),
            self.log()
        );
    }
}

impl Drop for Postern {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
