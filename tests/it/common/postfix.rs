//! `Postfix`: a private Postfix instance configured as a smarthost client of
//! postern, the way a Linux server hands its mail (cron, scripts, local
//! MTAs) to a relay: `relayhost = [127.0.0.1]:PORT`, SASL AUTH, TLS required
//! and verified against the test CA. It exists so the client matrix
//! (tests/it/clients.rs) drives the real MTA, not an imitation of it.
//!
//! The instance lives entirely in a temporary directory (its own
//! `config_directory`, `queue_directory`, `data_directory` and log file), has
//! no SMTP listener, and its master process is a child of the test, killed
//! with its whole process group when the `Postfix` value is dropped. The
//! system's Postfix (if any) is never touched. Postfix needs root to start
//! (it drops to `mail_owner`), and the Debian package's `postfix` user and
//! `postdrop` group.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const POSTFIX: &str = "/usr/sbin/postfix";
const SENDMAIL: &str = "/usr/sbin/sendmail";
const POSTQUEUE: &str = "/usr/sbin/postqueue";
const MASTER: &str = "/usr/lib/postfix/sbin/master";

/// How the Postfix SMTP client reaches postern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostfixTls {
    /// `smtp_tls_security_level = encrypt`: STARTTLS, required.
    Starttls,
    /// `smtp_tls_wrappermode = yes` (port 465 style), plus `encrypt`.
    Wrapper,
}

/// What the instance is told about postern, its relayhost.
pub struct Smarthost<'a> {
    /// `relayhost = [127.0.0.1]:port`.
    pub port: u16,
    pub tls: PostfixTls,
    /// `smtp_tls_CAfile`.
    pub ca_file: &'a Path,
    pub user: &'a str,
    pub password: &'a str,
    /// `Some(name)`: `smtp_tls_security_level = secure`, so the certificate
    /// must chain to `ca_file` and name `name`; `None`: `encrypt` (TLS
    /// required, the certificate not checked).
    pub verify_name: Option<&'a str>,
    /// More main.cf lines.
    pub extra: &'a [&'a str],
}

/// A running private Postfix instance.
pub struct Postfix {
    /// Holds the instance's directories for as long as it lives.
    _dir: TempDir,
    pub config_dir: PathBuf,
    pub log_path: PathBuf,
    master: Option<Child>,
}

/// The `myhostname` (and so the EHLO name) of the instance.
pub const POSTFIX_HOSTNAME: &str = "postfix.client.test";

// Only the services a null client needs: no smtpd, no local delivery.
// Every service unchrooted (column 5 = n), so no files need copying into a jail.
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

fn require(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: Postfix is not installed; run tests/run.sh (it installs the \
         Debian package postfix without configuring or starting the system instance)"
    );
}

/// Whether the test runs with effective UID 0 (the `Uid:` line of /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Postfix {
    /// Writes a private configuration relaying everything to postern as
    /// `relay` says, creates the queue and starts the master daemon.
    pub fn start(relay: &Smarthost<'_>) -> Postfix {
        for p in [POSTFIX, SENDMAIL, POSTQUEUE, MASTER] {
            require(p);
        }
        assert!(
            is_root(),
            "the Postfix smarthost tests need root: Postfix's master refuses to start \
             otherwise (it drops to mail_owner itself); run the suite as root (a CI \
             container) or with sudo"
        );
        let dir = tempfile::Builder::new()
            .prefix("postern-postfix-")
            .tempdir()
            .expect("postfix tempdir");
        // The daemons run as the `postfix` user and must reach their directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod postfix tempdir");
        let config_dir = dir.path().join("etc");
        let queue_dir = dir.path().join("queue");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("maillog");
        // data_directory is left to `postfix check`, which creates it owned by mail_owner.
        for d in [&config_dir, &queue_dir] {
            std::fs::create_dir(d).expect("create postfix dir");
        }
        // Readable by the smtp client only before it drops privileges, like /etc/postfix/sasl_passwd.
        let sasl = config_dir.join("sasl_passwd");
        std::fs::write(
            &sasl,
            format!(
                "[127.0.0.1]:{} {}:{}\n",
                relay.port, relay.user, relay.password
            ),
        )
        .expect("write sasl_passwd");
        std::fs::set_permissions(&sasl, std::fs::Permissions::from_mode(0o600))
            .expect("chmod sasl_passwd");
        let wrapper = match relay.tls {
            PostfixTls::Starttls => "no",
            PostfixTls::Wrapper => "yes",
        };
        let mut main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
# postlogd writes only below the listed prefixes (default /var, /dev/stdout).
maillog_file = {log}
maillog_file_prefixes = {root}
myhostname = {POSTFIX_HOSTNAME}
mydomain = example.com
myorigin = $mydomain
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:{port}
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = texthash:{sasl}
smtp_sasl_security_options = noanonymous
smtp_tls_security_level = {level}
smtp_tls_secure_cert_match = {name}
smtp_tls_wrappermode = {wrapper}
smtp_tls_CAfile = {ca}
smtp_tls_loglevel = 1
",
            queue = queue_dir.display(),
            data = data_dir.display(),
            log = log_path.display(),
            root = dir.path().display(),
            sasl = sasl.display(),
            ca = relay.ca_file.display(),
            port = relay.port,
            level = if relay.verify_name.is_some() {
                "secure"
            } else {
                "encrypt"
            },
            name = relay.verify_name.unwrap_or("nexthop"),
        );
        for line in relay.extra {
            main_cf.push_str(line);
            main_cf.push('\n');
        }
        std::fs::write(config_dir.join("main.cf"), main_cf).expect("write main.cf");
        std::fs::write(config_dir.join("master.cf"), MASTER_CF).expect("write master.cf");

        // `postfix check` creates the queue subdirectories with the right owners.
        run(
            Command::new(POSTFIX)
                .arg("-c")
                .arg(&config_dir)
                .arg("check"),
            "postfix check",
        );
        // Without -w the master stays in the foreground (as its own process
        // group leader), so the test owns it like any other child.
        let master = Command::new(MASTER)
            .arg("-c")
            .arg(&config_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postfix master");
        let mut pf = Postfix {
            _dir: dir,
            config_dir,
            log_path,
            master: Some(master),
        };
        pf.wait_started();
        pf
    }

    fn wait_started(&mut self) {
        let ok = super::util::wait_until(Duration::from_secs(30), || {
            if let Some(Ok(Some(_))) = self.master.as_mut().map(Child::try_wait) {
                return true;
            }
            self.log().contains("daemon started")
        });
        if let Some(Ok(Some(st))) = self.master.as_mut().map(Child::try_wait) {
            self.master = None;
            panic!(
                "postfix master exited during startup ({st}); log:\n{}",
                self.log()
            );
        }
        assert!(
            ok,
            "postfix master did not start within 30s; log:\n{}",
            self.log()
        );
    }

    /// Submits `msg` with Postfix's `sendmail -C DIR -f FROM -- RCPTS`, as a
    /// local program (cron, a script, an application) does.
    pub fn sendmail(&self, from: &str, rcpts: &[&str], msg: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(SENDMAIL)
            .arg("-C")
            .arg(&self.config_dir)
            .arg("-f")
            .arg(from)
            .arg("--")
            .args(rcpts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postfix sendmail");
        child
            .stdin
            .take()
            .expect("sendmail stdin")
            .write_all(msg)
            .expect("write to sendmail");
        let out = child.wait_with_output().expect("wait for sendmail");
        assert!(
            out.status.success(),
            "postfix sendmail failed ({}): {}{}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `postqueue -p` output (the queue listing).
    pub fn queue_listing(&self) -> String {
        let out = run(
            Command::new(POSTQUEUE)
                .arg("-c")
                .arg(&self.config_dir)
                .arg("-p"),
            "postqueue -p",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (60 s) until the log has a line containing every one of `parts`.
    #[track_caller]
    pub fn wait_log_line(&self, parts: &[&str]) -> String {
        let mut found = String::new();
        let ok = super::util::wait_until(Duration::from_secs(60), || {
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
        assert!(
            ok,
            "no postfix log line with {parts:?}; log:\n{}",
            self.log()
        );
        found
    }

    /// What the instance logged so far (its private maillog_file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        // SIGTERM is `postfix abort`: the master passes it on and exits.
        let pid = master.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        // Wait for the exit without reaping: while the master is a zombie
        // its PID (the process group ID) cannot be reused, so the group kill
        // below reaches only daemons it started, none of which may outlive the test.
        super::util::wait_until(Duration::from_secs(10), || zombie(pid));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = master.kill();
        let _ = master.wait();
    }
}

/// Whether `pid` has exited but not been reaped (state `Z` in /proc).
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesized command name, which may contain spaces.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}
