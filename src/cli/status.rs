//! `postern status`: what the running daemon is doing.

use std::process::ExitCode;

use super::target::{Target, ask, clean, decode, needs_daemon, size, span, stamp};
use crate::control::{Request, StatusReport};

pub fn status(target: &Target, json: bool) -> ExitCode {
    let report = target.state_dir().and_then(|dir| {
        let v = ask(&dir, &Request::Status)
            .map_err(|e| format!("postern: {}", needs_daemon("status", &e)))?;
        decode::<StatusReport>(v).map_err(|e| format!("postern: {e}"))
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("postern: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print(&report);
    }
    ExitCode::SUCCESS
}

fn print(r: &StatusReport) {
    let field = |name: &str, value: String| println!("{name:<13} {value}");
    println!(
        "postern {} (pid {}), up {}; state_dir {}",
        r.version,
        r.pid,
        span(r.uptime_s),
        clean(&r.state_dir)
    );
    let listeners: Vec<String> = r
        .listeners
        .iter()
        .map(|l| format!("{} ({})", l.address, l.tls))
        .collect();
    field("listeners:", listeners.join(", "));
    field("connections:", format!("{} open", r.connections));
    if let Some(c) = &r.cluster {
        let state = match c.state.as_str() {
            "shared" => "redis: shared limits",
            "local" => "redis: unreachable (local limits, each node its share)",
            _ => "redis: unreachable (refusing with 451 4.3.0)",
        };
        field("cluster:", format!("node {}; {state}", clean(&c.node_id)));
    }
    let q = &r.queue;
    let oldest = q
        .oldest_age_s
        .map_or(String::new(), |a| format!("; oldest {}", span(a)));
    field(
        "queue:",
        format!(
            "{} queued ({}), {} held, {} being delivered, {} waiting for a breaker; {} dead ({}){oldest}",
            q.queued,
            size(q.queued_bytes),
            q.held,
            q.delivering,
            q.waiting_for_breakers,
            q.dead,
            size(q.dead_bytes),
        ),
    );
    let d = &r.delivery;
    field(
        "delivery:",
        format!(
            "last minute {} delivered, {} failed; last 5 minutes {} delivered, {} failed ({:.1}/min)",
            d.delivered_1m,
            d.failed_1m,
            d.delivered_5m,
            d.failed_5m,
            d.delivered_5m as f64 / 5.0
        ),
    );
    println!("upstreams:");
    for u in &r.upstreams {
        let token = u.token.as_ref().map_or(String::new(), |t| {
            let mut s = format!("; token {}", t.state);
            if let Some(e) = t.expires_in_s {
                s.push_str(&format!(" (expires in {})", span(e)));
            }
            if let Some(err) = &t.last_error {
                let age = t
                    .last_error_age_s
                    .map_or(String::new(), |a| format!(" {} ago", span(a)));
                s.push_str(&format!("; last refresh failed{age}: {}", clean(err)));
            }
            s
        });
        println!("  {:<16} breaker {}{token}", clean(&u.name), u.breaker);
    }
    if r.lockouts.is_empty() {
        field("lockouts:", "none".to_string());
    } else {
        println!("lockouts:");
        for l in &r.lockouts {
            println!("  {:<40} {} left", clean(&l.key), span(l.remaining_s));
        }
    }
    if r.suspended.is_empty() {
        field("suspended:", "none".to_string());
    } else {
        println!("suspended:");
        for s in &r.suspended {
            let until = s.until.map_or("until resumed".to_string(), |u| {
                format!("until {}", stamp(u))
            });
            let reason = s
                .reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {}", clean(r)));
            println!(
                "  {:<16} since {}, {until} (by {}){reason}",
                clean(&s.credential),
                stamp(s.since),
                s.by
            );
        }
    }
    if r.busiest_quota_keys.is_empty() {
        field(
            "quota keys:",
            "none counting (hour and day counters only)".to_string(),
        );
    } else {
        println!("busiest quota keys (messages and recipients this hour / today):");
        for k in &r.busiest_quota_keys {
            println!(
                "  {:<40} messages {}/{}, recipients {}/{}",
                clean(&k.key),
                k.messages_hour,
                k.messages_day,
                k.recipients_hour,
                k.recipients_day
            );
        }
    }
}
