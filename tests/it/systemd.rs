//! systemd integration (issue 12): the test plays the service manager.
//! READY=1 comes only once the spool is recovered and every listener
//! accepts; STATUS= shows the queue; RELOADING=1 (with MONOTONIC_USEC)
//! and READY=1 frame a SIGHUP; STOPPING=1 comes at SIGTERM; WATCHDOG=1
//! pings come at half of WATCHDOG_USEC and stop when the spool writer or
//! the runtime stops making progress (held up from outside by strace);
//! sockets passed with LISTEN_FDS are adopted by address, so a restart
//! refuses no connection; the shipped units pass `systemd-analyze`.

use crate::common::clients::postern_bin;
use crate::common::postern::free_port;
use crate::common::systemd::{
    Frozen, Launch, NotifySocket, Service, has_line, monotonic_usec, socket_inode, value,
};
use crate::common::*;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const READY: &str = "READY=1";
const WATCHDOG: &str = "WATCHDOG=1";

/// A plain listener for the loopback network credential, then a STARTTLS
/// one for AUTH; breakers cool down fast so a recovered upstream is used
/// at once.
fn config(up: &MockUpstream) -> Config {
    Config::new(&up.url())
        .listeners(&["none", "starttls"])
        .with_loopback_network()
        .upstream("breaker_cooldown = \"1s\"")
}

fn launch(notify: &NotifySocket) -> Launch<'_> {
    Launch {
        notify: Some(notify.path()),
        ..Launch::default()
    }
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| has_line(m, WATCHDOG)).count()
}

/// Sends one message over the plain listener (network credential).
#[track_caller]
fn send_plain(port: u16, subject: &str) -> Vec<u8> {
    let mut c = SmtpClient::connect(port);
    c.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", subject);
    c.quit();
    msg
}

/// A fresh connection gets the 220 greeting: the listener is served.
#[track_caller]
fn greets(port: u16) {
    let mut c = SmtpClient::connect(port);
    let g = c.read_reply();
    assert_eq!(g.code, 220, "greeting on port {port}: {g:?}");
}

#[test]
fn ready_comes_after_recovery_and_bind_and_status_shows_the_queue() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503));
    let cfg = config(&up);
    let mut svc = Service::new(&ca, &cfg, vec![free_port(), free_port()]);
    let mut notify = NotifySocket::bind();
    svc.spawn(&launch(&notify));
    notify.expect_line(READY, Duration::from_secs(60));
    send_plain(svc.ports[0], "one");
    send_plain(svc.ports[0], "two");
    svc.kill9();

    // The second start has two messages to recover. A watchdog meant for
    // another process (WATCHDOG_PID) must not start.
    let mut notify = NotifySocket::bind();
    svc.spawn(&Launch {
        env: vec![
            ("WATCHDOG_USEC".into(), "1000000".into()),
            ("WATCHDOG_PID".into(), "1".into()),
        ],
        ..launch(&notify)
    });
    let ready = notify.expect_line(READY, Duration::from_secs(60));
    // Straight after READY, before anything else: both listeners accept
    // and greet, and the recovery is already behind us.
    greets(svc.ports[0]);
    greets(svc.ports[1]);
    assert!(
        svc.log()
            .lines()
            .any(|l| l.contains("recovered queued messages from the spool")
                && l.contains("messages=2")),
        "READY before the spool was recovered; log:\n{}",
        svc.log()
    );
    assert_eq!(
        notify.seen,
        vec![ready.clone()],
        "READY=1 is the first notification"
    );

    // STATUS= every few seconds, with the queue depth.
    let status = notify.expect("STATUS= with 2 queued", Duration::from_secs(20), |m| {
        value(m, "STATUS").is_some_and(|s| s.starts_with("2 queued;"))
    });
    assert!(
        status.contains("0 delivered since start"),
        "nothing was delivered yet: {status}"
    );
    up.set_default(Scripted::ok());
    let status = notify.expect(
        "STATUS= with the queue empty",
        Duration::from_secs(60),
        |m| value(m, "STATUS").is_some_and(|s| s.starts_with("0 queued;")),
    );
    let status = value(&status, "STATUS").unwrap_or_default().to_string();
    assert_eq!(
        status, "0 queued; 2 delivered in the last minute (0.0/s); 2 delivered since start",
        "{:#?}",
        notify.seen
    );
    assert_eq!(
        pings(&notify.seen),
        0,
        "no WATCHDOG=1 when WATCHDOG_PID names another process: {:#?}",
        notify.seen
    );
    assert!(
        !svc.log().contains("watchdog"),
        "watchdog started though WATCHDOG_PID is not ours; log:\n{}",
        svc.log()
    );
}

#[test]
fn reload_and_stop_are_announced() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = config(&up);
    let mut svc = Service::new(&ca, &cfg, vec![free_port(), free_port()]);
    let mut notify = NotifySocket::bind();
    svc.spawn(&launch(&notify));
    notify.expect_line(READY, Duration::from_secs(60));

    for (what, broken) in [("good", false), ("broken", true)] {
        if broken {
            std::fs::write(&svc.config_path, "[server]\nno_such_key = 1\n").expect("write");
        }
        let before = monotonic_usec();
        svc.signal(libc::SIGHUP);
        let reloading = notify.expect_line("RELOADING=1", Duration::from_secs(30));
        let after = monotonic_usec();
        let stamp: u64 = value(&reloading, "MONOTONIC_USEC")
            .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"))
            .parse()
            .expect("MONOTONIC_USEC is a number");
        assert!(
            (before..=after).contains(&stamp),
            "MONOTONIC_USEC={stamp} is not CLOCK_MONOTONIC at the reload ({before}..{after})"
        );
        notify.expect_line(READY, Duration::from_secs(30));
        // READY=1 follows the reload's outcome, good or refused.
        let outcome = if broken {
            "configuration reload failed"
        } else {
            "configuration reloaded"
        };
        assert!(
            svc.log().contains(outcome),
            "{what} reload: READY=1 before {outcome:?}; log:\n{}",
            svc.log()
        );
        greets(svc.ports[0]);
    }

    // An open session at SIGTERM: STOPPING=1 comes at once, and is the
    // last word.
    let mut open = SmtpClient::connect(svc.ports[0]);
    open.greet();
    svc.signal(libc::SIGTERM);
    notify.expect_line("STOPPING=1", Duration::from_secs(10));
    let status = svc.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status}; log:\n{}", svc.log());
    let last = notify
        .seen
        .iter()
        .rfind(|m| value(m, "STATUS").is_none())
        .cloned()
        .unwrap_or_default();
    assert!(has_line(&last, "STOPPING=1"), "{:#?}", notify.seen);
}

/// Starts with WATCHDOG_USEC=2s (pings every second) and checks they come.
fn watched(ca: &TestCa, up: &MockUpstream) -> (Service, NotifySocket) {
    let cfg = config(up);
    let mut svc = Service::new(ca, &cfg, vec![free_port(), free_port()]);
    let mut notify = NotifySocket::bind();
    svc.spawn(&Launch {
        env: vec![("WATCHDOG_USEC".into(), "2000000".into())],
        ..launch(&notify)
    });
    notify.expect_line(READY, Duration::from_secs(60));
    // Every ping well inside the 2 s systemd would allow.
    let mut last = Instant::now();
    let mut n = 0;
    let deadline = last + Duration::from_secs(4);
    while Instant::now() < deadline {
        if let Some(m) = notify.recv(deadline.saturating_duration_since(Instant::now()))
            && has_line(&m, WATCHDOG)
        {
            let gap = last.elapsed();
            assert!(
                gap < Duration::from_millis(1900),
                "{gap:?} between pings: {:#?}",
                notify.seen
            );
            last = Instant::now();
            n += 1;
        }
    }
    assert!(
        (2..=5).contains(&n),
        "{n} WATCHDOG=1 in 4 s with WATCHDOG_USEC=2s (want about one a second): {:#?}",
        notify.seen
    );
    (svc, notify)
}

/// After a fault has had `settle` to take effect, no ping for 3 s
/// (three ping periods; systemd would restart postern after two).
#[track_caller]
fn assert_pings_stop(notify: &mut NotifySocket, settle: Duration, svc: &Service) {
    notify.collect(settle);
    let quiet = notify.collect(Duration::from_secs(3));
    assert_eq!(
        pings(&quiet),
        0,
        "WATCHDOG=1 kept coming: {quiet:#?}\nlog:\n{}",
        svc.log()
    );
}

#[track_caller]
fn assert_pings_resume(notify: &mut NotifySocket) {
    notify.expect_line(WATCHDOG, Duration::from_secs(5));
    let again = notify.collect(Duration::from_secs(3));
    assert!(pings(&again) >= 2, "pings did not resume: {again:#?}");
}

/// The fault: every spool writer thread's next fdatasync hangs (what a
/// hung disk does), so the message being queued sits in its commit.
#[test]
fn watchdog_stops_while_a_spool_write_hangs() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let (mut svc, mut notify) = watched(&ca, &up);
    let writers = svc.threads("spool-writer-");
    assert_eq!(writers.len(), 1, "spool writer threads");
    let frozen = Frozen::start(&writers, "fdatasync");
    let port = svc.ports[0];
    let sender = std::thread::spawn(move || send_plain(port, "stuck"));
    assert_pings_stop(&mut notify, Duration::from_secs(2), &svc);
    // The runtime is fine (it answers new connections); the writer is not.
    greets(svc.ports[1]);
    svc.assert_running();
    svc.wait_log_line(&["withholding WATCHDOG=1", "spool write has been running"]);
    assert_eq!(up.count(), 0);

    drop(frozen);
    let sent = sender
        .join()
        .expect("the stuck message is queued (250) once fsync returns");
    assert_pings_resume(&mut notify);
    let reqs = up
        .try_wait_for(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", svc.log()));
    assert_forwarded(&reqs[0].body, &sent);
}

/// The fault: every runtime thread's next system call hangs, as if a task
/// blocked them all; the spool writers idle on, and pings must still stop.
#[test]
fn watchdog_stops_while_the_runtime_is_stuck() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let (mut svc, mut notify) = watched(&ca, &up);
    let workers = svc.threads("tokio-rt-worker");
    let frozen = Frozen::start(&workers, "all");
    assert_pings_stop(&mut notify, Duration::from_secs(2), &svc);
    svc.assert_running();
    svc.wait_log_line(&[
        "withholding WATCHDOG=1",
        "async runtime has made no progress",
    ]);
    drop(frozen);
    assert_pings_resume(&mut notify);
    send_plain(svc.ports[0], "after");
    up.try_wait_for(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", svc.log()));
}

#[test]
fn socket_activation_adopts_matching_sockets_and_closes_the_rest() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    // fd 3: the STARTTLS listener's address; fd 4: no listener has it;
    // fd 5: not TCP at all. The plain listener binds itself.
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let stray = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let unix = std::os::unix::net::UnixListener::bind(dir.path().join("u.sock")).expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let stray_port = stray.local_addr().expect("addr").port();
    let mut svc = Service::new(&ca, &config(&up), vec![free_port(), smtp_port]);
    let mut notify = NotifySocket::bind();
    svc.spawn(&Launch {
        sockets: vec![smtp.as_raw_fd(), stray.as_raw_fd(), unix.as_raw_fd()],
        fd_names: Some("submission:stray:local".into()),
        ..launch(&notify)
    });
    notify.expect_line(READY, Duration::from_secs(60));

    let held = svc.socket_inodes();
    assert!(
        held.contains(&socket_inode(&smtp)),
        "passed socket not kept"
    );
    assert!(
        !held.contains(&socket_inode(&stray)),
        "unmatched socket not closed"
    );
    assert!(
        !held.contains(&socket_inode(&unix)),
        "unix socket not closed"
    );
    let log = svc.log();
    svc.wait_log_line(&[
        "using the listening socket passed by systemd",
        &format!("127.0.0.1:{smtp_port}"),
        "submission",
    ]);
    svc.wait_log_line(&[
        "matches no [[listeners]]",
        &format!("127.0.0.1:{stray_port}"),
        "stray",
    ]);
    svc.wait_log_line(&["cannot use", "not a TCP socket", "local"]);
    assert!(
        !log.contains(&format!("listening address=127.0.0.1:{stray_port}")),
        "{log}"
    );

    // The adopted socket serves the full STARTTLS + AUTH path.
    let mut c = SmtpClient::connect(smtp_port);
    c.greet_starttls(&ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let msg = simple_message("app@example.com", "bob@dest.test", "adopted");
    c.send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "send over the adopted socket");
    c.quit();
    let reqs = up
        .try_wait_for(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", svc.log()));
    assert_forwarded(&reqs[0].body, &msg);
    send_plain(svc.ports[0], "self-bound");
}

#[test]
fn socket_activation_keeps_connections_across_a_restart() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
    let plain_port = plain.local_addr().expect("addr").port();
    let own_port = free_port();
    let mut svc = Service::new(&ca, &config(&up), vec![plain_port, own_port]);
    let fd = plain.as_raw_fd();
    fn activated(notify: &NotifySocket, fd: std::os::fd::RawFd) -> Launch<'_> {
        Launch {
            sockets: vec![fd],
            ..launch(notify)
        }
    }
    let mut notify = NotifySocket::bind();
    svc.spawn(&activated(&notify, fd));
    notify.expect_line(READY, Duration::from_secs(60));
    let first = send_plain(plain_port, "before the restart");

    svc.signal(libc::SIGTERM);
    assert!(svc.wait_exit(Duration::from_secs(60)).success());
    // Down: the listener postern bound itself refuses, the passed one
    // (still held by the "service manager") takes the connection.
    let refused = TcpStream::connect(("127.0.0.1", own_port));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{refused:?}"
    );
    let mut waiting = SmtpClient::connect(plain_port);

    let mut notify = NotifySocket::bind();
    let started = Instant::now();
    svc.spawn(&activated(&notify, fd));
    notify.expect_line(READY, Duration::from_secs(60));
    waiting.greet();
    let msg = simple_message("app@example.com", "bob@dest.test", "during the restart");
    waiting
        .send_message("app@example.com", &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "connection made while postern was down");
    waiting.quit();
    assert!(started.elapsed() < Duration::from_secs(60));
    let reqs = up
        .try_wait_for(2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", svc.log()));
    assert_forwarded(&reqs[0].body, &first);
    assert_forwarded(&reqs[1].body, &msg);
}

fn units_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd"))
}

/// The shipped units with `/usr/bin/postern` replaced by the binary under
/// test, in a directory of their own.
fn units_for_this_build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for unit in ["postern.service", "postern.socket"] {
        let text = std::fs::read_to_string(units_dir().join(unit)).expect("read unit");
        assert!(
            unit != "postern.service" || text.contains("ExecStart=/usr/bin/postern run"),
            "{text}"
        );
        std::fs::write(
            dir.path().join(unit),
            text.replace("/usr/bin/postern", postern_bin()),
        )
        .expect("write unit");
    }
    dir
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let dir = units_for_this_build();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("postern.service"))
        .arg(dir.path().join("postern.socket"))
        .output()
        .expect("run systemd-analyze (tests/run.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Issue 12 measured 1.6 before the watchdog and socket activation.
#[test]
fn service_exposure_stays_at_or_below_1_6() {
    let dir = units_for_this_build();
    for unit in [
        units_dir().join("postern.service"),
        dir.path().join("postern.service"),
    ] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=16", "--no-pager"])
            .arg(&unit)
            .output()
            .expect("run systemd-analyze (tests/run.sh installs systemd)");
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for postern.service: "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no exposure level in:\n{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        assert!(
            level <= 1.6,
            "{}: exposure {level} > 1.6\n{text}",
            unit.display()
        );
        assert!(
            out.status.success(),
            "--threshold=16 failed: {}\n{text}",
            out.status
        );
    }
}
