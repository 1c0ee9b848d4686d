//! Fault handling of the SendGrid, Postmark, Resend, Mailgun and SES kinds:
//! 429 with Retry-After, 500, 4xx with the provider's message, 401,
//! connection reset, wrong CA: retried or dead-lettered, never lost, never
//! delivered twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use crate::upstream_api::*;
use serde_json::Value;

// ---- fault injection, for every provider ----

fn assert_delivered_after_retry(kind: Kind, first: Scripted) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(first);
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("retry"));
    let reqs = p.delivered(&up, 2);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        up.count(),
        2,
        "{kind:?}: one failure, one delivery: {reqs:#?}"
    );
    if kind == Kind::Mailgun {
        // Each request has its own random multipart boundary.
        assert_eq!(
            form_parts(&reqs[0]),
            form_parts(&reqs[1]),
            "the retry sends the same parts"
        );
    } else {
        assert_eq!(
            reqs[0].body, reqs[1].body,
            "the retry sends the same request"
        );
    }
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    logged(&p, kind.ok().1);
}

fn rate_limited_then_ok(kind: Kind) {
    assert_delivered_after_retry(
        kind,
        Scripted::status(429)
            .header("Retry-After", "1")
            .body(br#"{"message":"Too many requests"}"#),
    );
}

fn server_error_then_ok(kind: Kind) {
    assert_delivered_after_retry(kind, Scripted::status(500).body(b"internal error"));
}

fn credentials_rejected_then_ok(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(Scripted::status(401).body(br#"{"message":"unauthorized"}"#));
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("401"));
    p.delivered(&up, 2);
    p.wait_queue_empty();
    let log = p.log();
    assert!(log.contains("credentials rejected"), "{log}");
    assert!(
        log.contains("ERROR"),
        "credentials alert must be an ERROR: {log}"
    );
    assert!(!log.contains(SECRET), "secret in the log: {log}");
    settle();
    assert_eq!(up.count(), 2);
}

fn rejection_is_dead_lettered(kind: Kind) {
    let ca = TestCa::new();
    let (bad, reason_text) = kind.rejection();
    let up = MockUpstream::with_default(&ca, bad);
    let p = start(&ca, &config(kind, up.port, &ca.ca_pem, &up.url()));
    let id = submit(&p, &["bob@dest.test"], &simple("refused"));
    p.delivered(&up, 1);
    let reason_path = p.dead_dir().join(format!("{id}.reason"));
    let ok = wait_until(Duration::from_secs(60), || reason_path.exists());
    assert!(ok, "no dead letter; log:\n{}", p.log());
    p.wait_queue_empty();
    let reason: Value =
        serde_json::from_slice(&std::fs::read(&reason_path).expect("read reason")).expect("JSON");
    let text = reason["reason"].as_str().expect("reason string");
    assert!(
        text.contains(reason_text),
        "{kind:?}: reason {text:?} lacks the provider's message {reason_text:?}"
    );
    settle();
    assert_eq!(up.count(), 1, "a permanent failure is not retried");
}

/// A TCP front that resets (RST) the first `reset_first` connections
/// during the TLS handshake and forwards every later one to `target`.
struct ResettingProxy {
    _bg: Background,
    port: u16,
    resets: Arc<AtomicUsize>,
}

impl ResettingProxy {
    fn start(target: u16, reset_first: usize) -> ResettingProxy {
        let (bg, listener, port) = Background::bind();
        let resets = Arc::new(AtomicUsize::new(0));
        let counter = resets.clone();
        bg.spawn(async move {
            use tokio::io::AsyncReadExt;
            while let Ok((mut inbound, _)) = listener.accept().await {
                if counter.load(Ordering::SeqCst) < reset_first {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Wait for the ClientHello, then abort with RST.
                    let mut buf = [0u8; 512];
                    let _ = inbound.read(&mut buf).await;
                    // Zero linger never blocks on drop; it is how a socket sends RST.
                    #[allow(deprecated)]
                    let _ = inbound.set_linger(Some(Duration::ZERO));
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        ResettingProxy {
            _bg: bg,
            port,
            resets,
        }
    }
}

/// The provider's config with a short request timeout and `extra` lines.
fn short_timeout(kind: Kind, up: &MockUpstream, ca: &TestCa, extra: &str) -> Config {
    let mut cfg = config(kind, up.port, &ca.ca_pem, &up.url());
    cfg.extra = cfg.extra.replace("timeout = \"10s\"", "timeout = \"2s\"") + extra;
    cfg
}

/// The first request is taken but never answered: with the default
/// `on_ambiguous = "retry"` the message is sent again, logged as a possible
/// duplicate, and delivered.
fn timeout_then_ok(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(Scripted::hang());
    let p = start(&ca, &short_timeout(kind, &up, &ca, ""));
    submit(&p, &["bob@dest.test"], &simple("timeout"));
    p.delivered(&up, 2);
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 2, "{kind:?}: the timed-out try and the retry");
    assert!(p.dead_files().is_empty(), "{:?}", p.dead_files());
    logged(&p, "possible duplicate");
    logged(&p, kind.ok().1);
}

/// With `on_ambiguous = "dead-letter"` a request that timed out after it
/// was sent is never sent again.
fn timeout_dead_letters_when_asked(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    up.push(Scripted::hang());
    let p = start(
        &ca,
        &short_timeout(kind, &up, &ca, "on_ambiguous = \"dead-letter\"\n"),
    );
    let id = submit(&p, &["bob@dest.test"], &simple("no duplicates"));
    let ok = wait_until(Duration::from_secs(60), || {
        p.dead_files().iter().any(|f| f == &id)
    });
    assert!(ok, "{kind:?}: not dead-lettered:\n{}", p.log());
    settle();
    assert_eq!(up.count(), 1, "{kind:?}: sent once, never again");
    let reason = std::fs::read_to_string(p.dead_dir().join(format!("{id}.reason"))).unwrap();
    assert!(reason.contains("may have delivered"), "{reason}");
}

fn connection_reset_then_ok(kind: Kind) {
    let ca = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    let proxy = ResettingProxy::start(up.port, 1);
    let p = start(&ca, &config(kind, proxy.port, &ca.ca_pem, &up.url()));
    submit(&p, &["bob@dest.test"], &simple("reset"));
    p.delivered(&up, 1);
    p.wait_queue_empty();
    settle();
    assert_eq!(
        proxy.resets.load(Ordering::SeqCst),
        1,
        "the first try was reset"
    );
    assert_eq!(up.count(), 1, "delivered exactly once");
    assert!(p.dead_files().is_empty());
}

fn wrong_ca_is_retried_then_delivered_once(kind: Kind) {
    let ca = TestCa::new();
    let other = TestCa::new();
    let up = MockUpstream::with_default(&ca, kind.ok().0);
    let mut p = start(&ca, &config(kind, up.port, &other.ca_pem, &up.url()));
    let id = submit(&p, &["bob@dest.test"], &simple("wrong ca"));
    // Several failed attempts, each a certificate error, none reaching the API.
    let ok = wait_until(Duration::from_secs(60), || {
        p.log().matches("cannot connect").count() >= 2
    });
    assert!(ok, "no retried connection failures:\n{}", p.log());
    assert_eq!(
        up.count(),
        0,
        "nothing may reach a server with an untrusted certificate"
    );
    assert!(p.queue_files().contains(&id), "message must stay queued");
    assert!(p.dead_files().is_empty());
    // The operator fixes ca_file; the queued message goes out once.
    p.restart(&config(kind, up.port, &ca.ca_pem, &up.url()));
    p.delivered(&up, 1);
    p.wait_queue_empty();
    settle();
    assert_eq!(up.count(), 1);
}

macro_rules! fault_tests {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use super::*;
            #[test]
            fn rate_limited_429_then_ok() { rate_limited_then_ok($kind) }
            #[test]
            fn server_error_500_then_ok() { server_error_then_ok($kind) }
            #[test]
            fn credentials_401_alert_then_ok() { credentials_rejected_then_ok($kind) }
            #[test]
            fn rejection_dead_letters_with_provider_message() { rejection_is_dead_lettered($kind) }
            #[test]
            fn connection_reset_then_ok() { super::connection_reset_then_ok($kind) }
            #[test]
            fn timeout_then_retried_and_delivered() { timeout_then_ok($kind) }
            #[test]
            fn timeout_dead_letters_with_on_ambiguous() { timeout_dead_letters_when_asked($kind) }
            #[test]
            fn wrong_ca_retried_then_delivered_once() { wrong_ca_is_retried_then_delivered_once($kind) }
        }
    )*};
}

fault_tests! {
    ses_faults => Kind::Ses,
    sendgrid_faults => Kind::Sendgrid,
    postmark_faults => Kind::Postmark,
    resend_faults => Kind::Resend,
    mailgun_faults => Kind::Mailgun,
}
