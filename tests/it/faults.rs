//! Crash and fault tests under load: restarts (SIGTERM), crashes
//! (`kill -9`), reloads, upstream outages and a full disk while client
//! threads keep sending. Each checks, message by message, that everything
//! answered 250 reached the upstream whole, and counts duplicates.

use std::time::Duration;

use crate::common::load::{Coverage, Load, Report};
use crate::common::*;

fn networked(url: &str) -> Config {
    Config::new(url)
        .listeners(&["none"])
        .with_loopback_network()
}

/// Waits until the upstream holds every queued message (or a minute has
/// passed), lets a late redelivery show itself, and matches them up.
fn delivered(p: &Postern, up: &MockUpstream, report: &Report) -> Coverage {
    let want = report.queued.len();
    let _ = up.try_wait_for(want, Duration::from_secs(120));
    p.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1500));
    report.coverage(&up.requests())
}

fn assert_none_lost(c: &Coverage, report: &Report, log: &str) {
    assert!(
        c.missing.is_empty(),
        "{} of {} messages answered 250 never reached the upstream: {:?}\nlog tail:\n{}",
        c.missing.len(),
        report.queued.len(),
        c.missing,
        tail(log)
    );
    assert!(
        c.damaged.is_empty(),
        "delivered bytes differ from what was sent: {:?}",
        c.damaged
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn five_sigterm_restarts_during_load_deliver_everything_exactly_once() {
    // Eight clients, a new connection per message, 2,000 messages, five
    // restarts: what `systemctl restart` does to a busy relay.
    let ca = TestCa::new();
    // Slow answers keep deliveries in flight at every SIGTERM.
    let up = MockUpstream::with_default(&ca, Scripted::ok().delay(Duration::from_millis(30)));
    let cfg = networked(&up.url()).server("shutdown_timeout = \"10s\"");
    let mut p = Postern::start(&ca, &cfg);
    let load = Load::start(p.port(0), 8, 2000);
    for round in 1..=5 {
        assert!(
            load.wait_queued(round * 350, Duration::from_secs(120)),
            "load stalled before restart {round}: {} queued",
            load.queued()
        );
        p.sigterm();
        let st = p.wait_exit(Duration::from_secs(60));
        assert_eq!(
            st.code(),
            Some(0),
            "exit status {st}; log:\n{}",
            tail(&p.log())
        );
        p.restart(&cfg);
    }
    let report = load.finish();
    let c = delivered(&p, &up, &report);
    assert_none_lost(&c, &report, &p.log());
    assert!(
        c.duplicates.is_empty(),
        "a graceful stop must not deliver anything twice: {:?}",
        c.duplicates
    );
}

#[test]
fn five_kill9_during_load_lose_nothing_answered_250() {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::ok().delay(Duration::from_millis(50)));
    // The test configuration runs 4 delivery workers.
    let cfg = networked(&up.url());
    let mut p = Postern::start(&ca, &cfg);
    let load = Load::start(p.port(0), 8, 600);
    // Kill at moments that fall anywhere in an exchange: after 97, 211, ...
    // messages, not on round numbers.
    for (round, at) in [97, 211, 302, 419, 503].into_iter().enumerate() {
        assert!(
            load.wait_queued(at, Duration::from_secs(120)),
            "load stalled before kill {round}: {} queued",
            load.queued()
        );
        p.kill9();
        p.restart(&cfg);
    }
    let report = load.finish();
    let c = delivered(&p, &up, &report);
    assert_none_lost(&c, &report, &p.log());
    // Only what was in flight at a kill can arrive twice: a delivery the
    // upstream took but the spool had not yet crossed off (one per worker),
    // and a message spooled whose 250 the kill cut off, which the client
    // sends again (one per client).
    let extra: usize = c.duplicates.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 x5: {} queued, {} delivered twice or more",
        report.queued.len(),
        c.duplicates.len()
    );
    assert!(extra <= 5 * (4 + 8), "duplicates: {:?}", c.duplicates);
}

#[test]
fn a_hundred_reloads_during_load_drop_no_session_and_lose_nothing() {
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let cfg = networked(&up.url());
    let p = Postern::start(&ca, &cfg);
    let load = Load::start(p.port(0), 4, 100_000);
    for i in 0..100 {
        assert!(p.sighup(), "reload {i} failed; log:\n{}", tail(&p.log()));
    }
    let report = load.stop();
    assert!(
        report.queued.len() > 100,
        "only {} queued",
        report.queued.len()
    );
    assert_eq!(report.unanswered, 0, "sessions dropped during reloads");
    assert!(report.refused.is_empty(), "refused: {:?}", report.refused);
    let c = delivered(&p, &up, &report);
    assert_none_lost(&c, &report, &p.log());
    assert!(c.duplicates.is_empty(), "{:?}", c.duplicates);
}

/// Sends one message on a new connection; returns the final reply line.
fn send_one(port: u16, subject: &str) -> (crate::common::load::Outcome, Vec<u8>) {
    let msg = simple_message("app@example.com", "bob@dest.test", subject);
    let out = crate::common::load::try_send(port, "app@example.com", "bob@dest.test", &msg);
    (out, msg)
}

/// Starts postern with its state directory on a 4 MiB tmpfs, in postern's
/// own mount namespace; returns it and the state directory as the test
/// reaches it (through /proc/PID/root).
fn on_small_tmpfs(ca: &TestCa, cfg: &mut Config) -> (Postern, std::path::PathBuf) {
    let mut p = Postern::start(ca, cfg);
    p.sigterm();
    p.wait_exit(Duration::from_secs(60));
    let state = p.state_dir.to_string_lossy().into_owned();
    cfg.wrapper = vec![
        "unshare".into(),
        "-m".into(),
        "sh".into(),
        "-c".into(),
        format!("mount -t tmpfs -o size=4m tmpfs '{state}' && exec \"$0\" \"$@\""),
    ];
    p.restart(cfg);
    let root = std::path::PathBuf::from(format!("/proc/{}/root{state}", p.pid()));
    (p, root)
}

#[test]
fn below_min_free_space_mail_gets_452_at_mail_and_service_resumes_when_space_returns() {
    use crate::common::load::Outcome;
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = networked(&up.url());
    cfg.server.push("min_free_space = \"2MiB\"".into());
    let (p, root) = on_small_tmpfs(&ca, &mut cfg);
    let (out, _) = send_one(p.port(0), "room");
    assert!(matches!(out, Outcome::Queued(_)), "{out:?}");
    // An announced size that would eat into the reserve is refused at
    // MAIL; the same session may still send a message that fits.
    let mut s = SmtpClient::connect(p.port(0));
    s.greet();
    let r = s.cmd("MAIL FROM:<app@example.com> SIZE=3000000");
    r.expect(452, "4.3.1", "MAIL with SIZE over the reserve");
    assert!(r.text().contains("Insufficient system storage"), "{r:?}");
    s.cmd("MAIL FROM:<app@example.com> SIZE=1000")
        .expect_code(250, "MAIL with a SIZE that fits");
    s.cmd("QUIT").expect_code(221, "QUIT");
    // 3 MiB taken by something else: under 2 MiB left, so MAIL is refused
    // (once the last roomy measurement, at most a second old, expires).
    let filler = root.join("filler");
    std::fs::write(&filler, vec![1u8; 3 << 20]).expect("write filler");
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..3 {
        let (out, _) = send_one(p.port(0), &format!("low {i}"));
        match out {
            Outcome::Refused(r) => assert!(
                r.starts_with("452 4.3.1 Insufficient system storage"),
                "{r}"
            ),
            other => panic!("below the reserve: {other:?}"),
        }
    }
    assert!(
        p.log().contains("below [server] min_free_space"),
        "{}",
        tail(&p.log())
    );
    // Space returns: the next MAIL measures again and is accepted.
    std::fs::remove_file(&filler).expect("remove filler");
    let (out, _) = send_one(p.port(0), "after");
    assert!(matches!(out, Outcome::Queued(_)), "{out:?}");
    up.try_wait_for(2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_full_disk_answers_452_loses_nothing_and_recovers_by_itself() {
    use crate::common::load::Outcome;
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, Scripted::status(503).body(b"down"));
    let mut cfg = networked(&up.url());
    // No reserve: this test is about the writes themselves failing.
    cfg.server.push("min_free_space = \"0\"".into());
    let (p, root) = on_small_tmpfs(&ca, &mut cfg);
    let spool = root.join("spool");

    let mut queued = Vec::new();
    for i in 0..10 {
        let (out, msg) = send_one(p.port(0), &format!("before full {i}"));
        let Outcome::Queued(id) = out else {
            panic!("before the disk filled: {out:?}")
        };
        queued.push((id, msg));
    }
    // Fill the filesystem to the last byte.
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while f.write_all(&byte[..]).is_ok() {
            byte[0] = 1;
        }
    }
    // The last page of the spool's segment may still have room for a
    // few small records (then such a message is stored and answered 250, and
    // must be delivered like the others); once a write fails, every
    // message is refused until space returns.
    let mut refused = 0;
    for i in 0..12 {
        let (out, msg) = send_one(p.port(0), &format!("while full {i}"));
        match out {
            Outcome::Refused(reply) => {
                assert!(reply.starts_with("452 4.3.1"), "{reply}");
                refused += 1;
            }
            Outcome::Queued(id) if refused == 0 => queued.push((id, msg)),
            other => panic!("with the disk full, after {refused} refusals: {other:?}"),
        }
    }
    assert!(refused >= 5, "only {refused} of 12 refused on a full disk");
    // Deliveries keep failing meanwhile (their retry records cannot be
    // written either); every accepted message is still on disk.
    std::thread::sleep(Duration::from_secs(2));
    let on_disk = queued_on_disk(&spool);
    for (id, _) in &queued {
        assert!(
            on_disk.contains(id),
            "{id} lost on a full disk: {on_disk:?}"
        );
    }
    // Space returns: service resumes without a restart.
    std::fs::remove_file(&filler).expect("remove filler");
    for i in 0..5 {
        let (out, msg) = send_one(p.port(0), &format!("after full {i}"));
        let Outcome::Queued(id) = out else {
            panic!("after space returned: {out:?}; log:\n{}", tail(&p.log()))
        };
        queued.push((id, msg));
    }
    // The upstream comes back (a reload points at a healthy one): each
    // message accepted before, during and after is delivered once, whole.
    let healthy = MockUpstream::start(&ca);
    let mut back = networked(&healthy.url());
    back.wrapper = cfg.wrapper.clone();
    assert!(p.reload(&back), "reload failed; log:\n{}", tail(&p.log()));
    healthy
        .try_wait_for(queued.len(), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wait_until(Duration::from_secs(60), || queued_on_disk(&spool)
            .is_empty()),
        "queue not empty: {:?}",
        queued_on_disk(&spool)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let reqs = healthy.requests();
    assert_eq!(reqs.len(), queued.len(), "delivered more than once");
    for (id, msg) in &queued {
        let got: Vec<&Recorded> = reqs
            .iter()
            .filter(|r| r.header("x-postern-queue-id") == Some(id.as_str()))
            .collect();
        assert_eq!(got.len(), 1, "{id} delivered {} times", got.len());
        assert_forwarded(&got[0].body, msg);
    }
}

#[test]
fn an_upstream_outage_a_429_storm_and_slow_answers_during_load_lose_nothing() {
    let ca = TestCa::new();
    let down = MockUpstream::with_default(&ca, Scripted::status(503).body(b"outage"));
    let mut cfg = networked(&down.url());
    // Answers after 10 s are slow, not lost: the timeout is above them.
    cfg.upstream_timeout = "30s".into();
    let p = Postern::start(&ca, &cfg);
    let load = Load::start(p.port(0), 4, 200);
    // A minute of outage while the clients send, then a storm of 429s.
    std::thread::sleep(Duration::from_secs(60));
    down.set_default(
        Scripted::status(429)
            .header("retry-after", "1")
            .body(b"slow down"),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(down.count() > 0, "the outage was never tried");
    // Back, but the first answers take 10 s (a reload points at the healthy
    // upstream so that its requests are exactly the deliveries).
    let healthy = MockUpstream::start(&ca);
    for _ in 0..8 {
        healthy.push(Scripted::ok().delay(Duration::from_secs(10)));
    }
    let mut back = networked(&healthy.url());
    back.upstream_timeout = "30s".into();
    assert!(p.reload(&back), "reload failed; log:\n{}", tail(&p.log()));
    let report = load.finish();
    assert!(report.queued.len() >= 200, "refused: {:?}", report.refused);
    let c = delivered(&p, &healthy, &report);
    assert_none_lost(&c, &report, &p.log());
    assert!(c.duplicates.is_empty(), "{:?}", c.duplicates);
    assert!(
        list_dir(&p.dead_dir()).is_empty(),
        "a temporary outage dead-lettered {:?}",
        list_dir(&p.dead_dir())
    );
}

/// A TCP front for the upstream that, while `cutting`, resets each
/// connection (RST both ways) once the client has sent a few hundred to a
/// few thousand bytes: inside the TLS handshake, the HTTP/2 preface, the
/// request headers or the body, a different point for each connection.
struct CuttingProxy {
    _bg: Background,
    port: u16,
    cutting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    fn start(target: u16) -> CuttingProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (bg, listener, port) = Background::bind();
        let cutting = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (on, counter) = (cutting.clone(), cuts.clone());
        bg.spawn(async move {
            let mut n = 0usize;
            while let Ok((inbound, _)) = listener.accept().await {
                n += 1;
                let budget = 300 + (n * 397) % 3000;
                let (on, counter) = (on.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    // Zero linger: closing sends RST, not FIN.
                    for s in [&inbound, &outbound] {
                        #[allow(deprecated)]
                        let _ = s.set_linger(Some(Duration::ZERO));
                    }
                    let (mut ci, co) = inbound.into_split();
                    let (mut si, mut so) = outbound.into_split();
                    let down = tokio::spawn(async move {
                        let mut co = co;
                        let _ = tokio::io::copy(&mut si, &mut co).await;
                    });
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 1024];
                    loop {
                        let want = if on.load(Ordering::SeqCst) {
                            (budget - sent).min(buf.len())
                        } else {
                            buf.len()
                        };
                        if want == 0 {
                            break;
                        }
                        match ci.read(&mut buf[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => {
                                if so.write_all(&buf[..k]).await.is_err() {
                                    return;
                                }
                                sent += k;
                            }
                        }
                    }
                    // Budget spent while cutting: reset both sides.
                    counter.fetch_add(1, Ordering::SeqCst);
                    down.abort();
                });
            }
        });
        CuttingProxy {
            _bg: bg,
            port,
            cutting,
            cuts,
        }
    }
}

#[test]
fn connection_resets_mid_request_during_load_lose_nothing() {
    use std::sync::atomic::Ordering;
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let proxy = CuttingProxy::start(up.port);
    // Each reset fails every request in flight on that connection: a short
    // cool-down keeps the breaker from resting through the whole test.
    let cfg = networked(&format!("https://127.0.0.1:{}/send", proxy.port))
        .upstream("breaker_cooldown = \"1s\"");
    let p = Postern::start(&ca, &cfg);
    let load = Load::start(p.port(0), 4, 200);
    std::thread::sleep(Duration::from_secs(15));
    let cuts = proxy.cuts.load(Ordering::SeqCst);
    assert!(cuts >= 3, "only {cuts} connections were reset");
    proxy.cutting.store(false, Ordering::SeqCst);
    let report = load.finish();
    assert!(report.queued.len() >= 200, "refused: {:?}", report.refused);
    let c = delivered(&p, &up, &report);
    assert_none_lost(&c, &report, &p.log());
    assert!(
        list_dir(&p.dead_dir()).is_empty(),
        "resets dead-lettered {:?}",
        list_dir(&p.dead_dir())
    );
    // A reset after the whole request was sent is ambiguous: retried, so
    // a duplicate is possible, but only for a message whose attempt was cut.
    assert!(
        c.duplicates.len() <= cuts,
        "{} duplicates from {cuts} resets",
        c.duplicates.len()
    );
}
