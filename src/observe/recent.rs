//! The recent audit events and per-minute counts the admin console shows
//! (kept only when the console is configured):
//! a `tracing` layer that keeps the last [`KEEP`] audit events in memory
//! and counts accepted / delivered / deferred / refused per minute over
//! the last day. It sees the same events as `[log] audit_file` (target
//! [`audit::TARGET`](super::audit::TARGET)), so nothing is counted twice
//! or in a second place.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Audit events kept for the console's audit page.
pub const KEEP: usize = 2000;
/// Minutes of counts kept: one day.
pub const MINUTES: usize = 24 * 60;
/// The event kinds counted per minute, in chart order.
pub const COUNTED: [&str; 4] = ["accepted", "delivered", "deferred", "refused"];

/// One audit event: its time (Unix seconds) and fields as text.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: u64,
    pub fields: BTreeMap<String, String>,
}

impl Event {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

struct State {
    events: VecDeque<Event>,
    /// (minute since the epoch, counts in COUNTED order), oldest first.
    minutes: VecDeque<(u64, [u64; 4])>,
}

/// Off unless the console runs: without it nobody reads these, and each
/// event would cost a lock and a copy of its fields.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Starts keeping events (the daemon calls it when `[admin.console]` is
/// configured).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

static STATE: Mutex<State> = Mutex::new(State {
    events: VecDeque::new(),
    minutes: VecDeque::new(),
});

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records one event (the layer calls this; tests may too).
pub fn record(fields: BTreeMap<String, String>) {
    let time = now();
    let kind = fields.get("event").cloned().unwrap_or_default();
    let Ok(mut s) = STATE.lock() else { return };
    if let Some(i) = COUNTED.iter().position(|k| *k == kind) {
        let minute = time / 60;
        match s.minutes.back_mut() {
            Some((m, counts)) if *m == minute => counts[i] += 1,
            _ => {
                let mut counts = [0; 4];
                counts[i] = 1;
                s.minutes.push_back((minute, counts));
                while s.minutes.len() > MINUTES {
                    s.minutes.pop_front();
                }
            }
        }
    }
    s.events.push_back(Event { time, fields });
    while s.events.len() > KEEP {
        s.events.pop_front();
    }
}

/// The kept events, newest first.
pub fn events() -> Vec<Event> {
    STATE
        .lock()
        .map(|s| s.events.iter().rev().cloned().collect())
        .unwrap_or_default()
}

/// Counts for each of the last `n` minutes, oldest first, the current
/// (unfinished) minute last; minutes without events are zeros.
pub fn per_minute(n: usize) -> Vec<[u64; 4]> {
    let current = now() / 60;
    let mut out = vec![[0; 4]; n];
    if let Ok(s) = STATE.lock() {
        for (m, counts) in &s.minutes {
            let age = current.saturating_sub(*m) as usize;
            if age < n {
                out[n - 1 - age] = *counts;
            }
        }
    }
    out
}

/// The layer; install it for target `audit` only (`observe::init` does).
pub struct Layer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != super::audit::TARGET || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let mut v = Fields(BTreeMap::new());
        event.record(&mut v);
        record(v.0);
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}
