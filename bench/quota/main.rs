//! Cost of the quota checks per message, with 10,000 distinct sender keys.
//!
//! The budget: quota checks under 5% of end-to-end throughput
//! (~2,000 msg/s, i.e. 500 µs per message), so well under 25 µs per message.
//! Every limit kind is switched on for every key kind, high enough that
//! nothing is refused, so each check walks the full path (four keys, GCRA
//! plus hour and day windows). Run: `cargo bench --bench quota`.

use postern::quota::{ClientKey, DEFAULT_IPV6_PREFIX, Quotas, Subject};
use postern::quota::{Limits, Rule as QuotaRule, Setting, Settings as QuotaConfig, Windows};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SENDERS: usize = 10_000;
const ROUNDS: usize = 100;

fn max(n: u32) -> Setting {
    Setting::Max(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

fn everything() -> Limits {
    let w = Windows {
        per_minute: max(10_000_000),
        per_hour: max(100_000_000),
        per_day: max(1_000_000_000),
        burst: Setting::Inherit,
    };
    Limits {
        messages: w,
        recipients: w,
    }
}

struct Key {
    credential: String,
    sender: String,
    ip: IpAddr,
}

fn keys() -> Vec<Key> {
    (0..SENDERS)
        .map(|i| Key {
            credential: format!("app{}", i % 50),
            sender: format!("user{i}@dept{}.example.com", i % 100),
            ip: IpAddr::from([10, 0, (i / 250 % 256) as u8, (i % 250) as u8]),
        })
        .collect()
}

/// One message with one recipient, as a session would do it.
fn message(q: &Quotas, k: &Key, over: &Limits) -> bool {
    let s = Subject {
        credential: &k.credential,
        credential_quota: Some(over),
        sender: &k.sender,
        from_domain: "",
        client: ClientKey::of(k.ip, DEFAULT_IPV6_PREFIX),
    };
    q.check_message(&s).is_ok() && q.check_recipient(&s).is_ok()
}

fn run(q: &Quotas, keys: &[Key], over: &Limits) -> (Duration, usize) {
    let start = Instant::now();
    let mut ok = 0;
    for _ in 0..ROUNDS {
        for k in keys {
            ok += usize::from(message(q, k, over));
        }
    }
    (start.elapsed(), ok)
}

fn main() {
    let cfg = QuotaConfig {
        credential: everything(),
        sender: everything(),
        domain: everything(),
        ip: everything(),
        rules: vec![QuotaRule {
            name: "dept7".into(),
            senders: vec!["*@dept7.example.com".into()],
            shared: false,
            limits: everything(),
        }],
    };
    let dir = std::env::temp_dir().join(format!("postern-quota-bench-{}", std::process::id()));
    let q = Arc::new(Quotas::new(&cfg, dir.join("quota-state.json")));
    let keys = Arc::new(keys());
    let over = Limits {
        messages: Windows {
            per_minute: max(20_000_000),
            ..everything().messages
        },
        ..everything()
    };

    // Warm up: every key exists in the tables before timing.
    let (_, ok) = run(&q, &keys[..], &over);
    assert_eq!(ok, SENDERS * ROUNDS, "nothing may be refused");
    println!("keys tracked: {}", q.len());

    let (t, ok) = run(&q, &keys[..], &over);
    assert_eq!(ok, SENDERS * ROUNDS);
    let n = (SENDERS * ROUNDS) as f64;
    let per_msg = t.as_nanos() as f64 / n;
    println!(
        "1 thread : {n:.0} messages in {t:.2?}: {per_msg:.0} ns/message (check_message + check_recipient), {:.0} ns/check",
        per_msg / 2.0
    );
    println!(
        "           share of a 500 µs message (2,000 msg/s end to end): {:.3}%",
        per_msg / 500_000.0 * 100.0
    );

    let threads = 2;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (q, keys) = (Arc::clone(&q), Arc::clone(&keys));
            std::thread::spawn(move || run(&q, &keys[..], &over).1)
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let t = start.elapsed();
    assert_eq!(ok, threads * SENDERS * ROUNDS);
    let total = (threads * SENDERS * ROUNDS) as f64;
    println!(
        "{threads} threads: {total:.0} messages in {t:.2?}: {:.0} messages/s aggregate, {:.0} ns/message wall",
        total / t.as_secs_f64(),
        t.as_nanos() as f64 / total
    );

    // Saving holds the quota lock only to copy counters, 1024 keys at a
    // time; compare the slowest single message check while a save runs
    // with the slowest over the same time without one (scheduling noise).
    let slowest = |save: bool| {
        let stop = Arc::new(AtomicBool::new(false));
        let checker = {
            let (q, keys, stop) = (Arc::clone(&q), Arc::clone(&keys), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut worst = Duration::ZERO;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    message(&q, &keys[i % SENDERS], &over);
                    worst = worst.max(t.elapsed());
                    i += 1;
                }
                worst
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        let written = if save {
            q.persist().unwrap_or(false)
        } else {
            std::thread::sleep(Duration::from_millis(100));
            false
        };
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (checker.join().unwrap_or_default(), written, took)
    };
    let (quiet, _, _) = slowest(false);
    let (worst, written, took) = slowest(true);
    let size = std::fs::metadata(q.state_file()).map_or(0, |m| m.len());
    println!(
        "persist  : {} keys, written={written}, {size} bytes in {took:.2?}",
        q.len()
    );
    println!(
        "           slowest message check during the save {worst:.2?} (without a save: {quiet:.2?})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
