//! The test plays systemd: a notify socket receiving sd_notify datagrams,
//! listening sockets handed over on fd 3.. with `LISTEN_FDS`/`LISTEN_PID`,
//! `WATCHDOG_USEC`, and a launcher that starts the real binary that way.
//! `Frozen` wraps strace to make chosen threads of the daemon stop making
//! progress (a real fault from outside; the binary has no test hooks).

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::postern::{CaPaths, Config};
use super::{TestCa, clients::postern_bin};

/// A unix datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    /// Every datagram received so far, in order.
    pub seen: Vec<String>,
    _dir: TempDir,
}

impl NotifySocket {
    pub fn bind() -> NotifySocket {
        let dir = tempfile::Builder::new()
            .prefix("notify-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket {
            sock,
            path,
            seen: Vec::new(),
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram within `timeout`, if any (also appended to `seen`).
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set read timeout");
        let mut buf = vec![0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                Some(msg)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Receives until a datagram has the line `line` (e.g. `READY=1`);
    /// returns it. Panics with everything seen after `timeout`.
    #[track_caller]
    pub fn expect_line(&mut self, line: &str, timeout: Duration) -> String {
        self.expect(line, timeout, |m| has_line(m, line))
    }

    /// Receives until `pred` holds for a datagram; returns it.
    #[track_caller]
    pub fn expect(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no sd_notify datagram with {what} within {timeout:?}; received: {:#?}",
                    self.seen
                );
            }
            if let Some(m) = self.recv(left)
                && pred(&m)
            {
                return m;
            }
        }
    }

    /// Everything that arrives during the next `window`.
    pub fn collect(&mut self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            if let Some(m) = self.recv(left) {
                out.push(m);
            }
        }
    }
}

/// Whether the sd_notify datagram `msg` has the line `line`.
pub fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// The value of `KEY=` in `msg`.
pub fn value<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC=`.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// How one start of the daemon is wired to its "service manager".
#[derive(Default)]
pub struct Launch<'a> {
    pub notify: Option<&'a Path>,
    /// Sockets to pass as fds 3, 4, ... (`LISTEN_FDS`, `LISTEN_PID`).
    pub sockets: Vec<RawFd>,
    /// `LISTEN_FDNAMES`, when set.
    pub fd_names: Option<String>,
    /// Extra environment (`WATCHDOG_USEC`, ...).
    pub env: Vec<(String, String)>,
}

/// The daemon started the way systemd starts it, on a config and
/// state_dir that survive restarts.
pub struct Service {
    dir: TempDir,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub ports: Vec<u16>,
    ca: CaPaths,
    child: Option<Child>,
}

impl Service {
    /// Writes `cfg` with `ports` (one per listener); starts nothing.
    pub fn new(ca: &TestCa, cfg: &Config, ports: Vec<u16>) -> Service {
        assert_eq!(ports.len(), cfg.listeners.len(), "one port per listener");
        let dir = tempfile::Builder::new()
            .prefix("postern-systemd-")
            .tempdir()
            .expect("tempdir");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).expect("create state_dir");
        let s = Service {
            config_path: dir.path().join("postern.toml"),
            log_path: dir.path().join("postern.log"),
            state_dir,
            ports,
            ca: CaPaths {
                ca: ca.ca_pem.clone(),
                cert: ca.cert_pem.clone(),
                key: ca.key_pem.clone(),
            },
            child: None,
            dir,
        };
        s.write_config(cfg);
        s
    }

    pub fn write_config(&self, cfg: &Config) {
        let text = cfg.render(&self.ca, &self.state_dir, &self.ports);
        std::fs::write(&self.config_path, text).expect("write config");
    }

    /// Starts `postern run` through `sh`, which exports its own pid as
    /// `LISTEN_PID` and then execs postern (same pid), the way systemd
    /// sets it between fork and exec. Does not wait for anything.
    pub fn spawn(&mut self, launch: &Launch) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        let log2 = log.try_clone().expect("clone log");
        let script = if launch.sockets.is_empty() {
            "exec \"$@\""
        } else {
            "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\""
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script, "sh", postern_bin(), "run", "--config"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for var in [
            "NOTIFY_SOCKET",
            "JOURNAL_STREAM",
            "CREDENTIALS_DIRECTORY",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        ] {
            cmd.env_remove(var);
        }
        if let Some(n) = launch.notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        if !launch.sockets.is_empty() {
            cmd.env("LISTEN_FDS", launch.sockets.len().to_string());
        }
        if let Some(names) = &launch.fd_names {
            cmd.env("LISTEN_FDNAMES", names);
        }
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let fds = launch.sockets.clone();
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close) run
        // between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, so a source already at 3.. is not
                // overwritten before it is moved.
                let mut high = Vec::with_capacity(fds.len());
                for &fd in &fds {
                    let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                    if h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high.push(h);
                }
                for (i, &h) in high.iter().enumerate() {
                    // dup2 clears FD_CLOEXEC on the new descriptor.
                    if libc::dup2(h, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(h);
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn postern"));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("postern not running").id()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// Waits for the process to exit; panics with the log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut().expect("postern not running");
            if let Some(st) = c.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "postern did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with the log) if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        let c = self.child.as_mut().expect("postern not running");
        if let Ok(Some(st)) = c.try_wait() {
            self.child = None;
            panic!("postern exited ({st}); log:\n{}", self.log());
        }
    }

    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("postern not running");
        c.kill().expect("kill -9");
        c.wait().expect("reap");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (30 s) for a log line with every one of `parts`; returns it.
    #[track_caller]
    pub fn wait_log_line(&self, parts: &[&str]) -> String {
        let mut found = String::new();
        let ok = super::wait_until(Duration::from_secs(30), || {
            match self
                .log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
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

    /// Thread ids of the daemon's threads whose name starts with `prefix`
    /// (names are cut to 15 bytes by the kernel).
    pub fn threads(&self, prefix: &str) -> Vec<u32> {
        let dir = format!("/proc/{}/task", self.pid());
        let mut out: Vec<u32> = std::fs::read_dir(&dir)
            .expect("read /proc/PID/task")
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let tid: u32 = e.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                comm.trim_end().starts_with(prefix).then_some(tid)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The inodes of the sockets the daemon holds open.
    pub fn socket_inodes(&self) -> Vec<u64> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|l| {
                let l = l.to_str()?.to_string();
                l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The inode of the socket behind `fd` (as /proc/PID/fd shows it).
pub fn socket_inode(fd: &impl AsRawFd) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("stat own fd")
        .ino()
}

/// Some threads of a process held up by strace's syscall fault injection
/// (`-e inject=SET:delay_enter=...`): each traced thread's next call in
/// SET waits ten minutes, as a thread blocked on a hung disk or a wedged
/// lock would. Dropping it ends strace, which lets the threads go on.
pub struct Frozen {
    strace: Child,
    tids: Vec<u32>,
}

impl Frozen {
    /// Attaches to exactly `tids` (not the whole process) and waits until
    /// every one of them is traced.
    pub fn start(tids: &[u32], syscalls: &str) -> Frozen {
        assert!(!tids.is_empty(), "no threads to freeze");
        let mut cmd = Command::new("strace");
        cmd.args(["-qq", "-o", "/dev/null"])
            .arg("-e")
            .arg(format!("inject={syscalls}:delay_enter=600s"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for t in tids {
            cmd.arg("-p").arg(t.to_string());
        }
        let strace = cmd.spawn().expect("run strace (tests/run.sh installs it)");
        let mut f = Frozen {
            strace,
            tids: tids.to_vec(),
        };
        // A thread that exited meanwhile (an idle blocking-pool thread)
        // cannot run either.
        let traced = super::wait_until(Duration::from_secs(20), || {
            f.tids.iter().all(|t| {
                std::fs::read_to_string(format!("/proc/{t}/status")).map_or(true, |s| {
                    s.lines()
                        .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
                })
            })
        });
        if !traced {
            use std::io::Read;
            let _ = f.strace.kill();
            let _ = f.strace.wait();
            let mut err = String::new();
            if let Some(mut e) = f.strace.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("strace did not attach to {tids:?}: {err}");
        }
        f
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SIGTERM: strace detaches cleanly and the delayed calls proceed.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.strace.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.strace.wait();
    }
}
