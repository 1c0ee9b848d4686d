//! Delivery rate over the last minutes (`postern status`): how many
//! attempts succeeded and failed in the last 1 and 5 minutes.
//!
//! One counter pair per second in a ring of [`WINDOW`] slots, each tagged
//! with the second it counts, so recording is a lock and two additions and
//! reading never needs a sweep.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds remembered.
const WINDOW: usize = 300;

#[derive(Clone, Copy, Default)]
struct Slot {
    second: u64,
    delivered: u32,
    failed: u32,
}

/// Attempt outcomes per second over the last [`WINDOW`] seconds.
pub struct Meter {
    slots: Mutex<Vec<Slot>>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            slots: Mutex::new(vec![Slot::default(); WINDOW]),
        }
    }
}

/// What the meter saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub delivered_1m: u64,
    pub failed_1m: u64,
    pub delivered_5m: u64,
    pub failed_5m: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Meter {
    /// Counts one attempt: delivered or failed.
    pub fn record(&self, delivered: bool) {
        self.record_at(now_secs(), delivered);
    }

    fn record_at(&self, second: u64, delivered: bool) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(second % WINDOW as u64) as usize];
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        if delivered {
            slot.delivered = slot.delivered.saturating_add(1);
        } else {
            slot.failed = slot.failed.saturating_add(1);
        }
    }

    /// Counts over the last minute and the last five.
    pub fn rates(&self) -> Rates {
        self.rates_at(now_secs())
    }

    fn rates_at(&self, now: u64) -> Rates {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = Rates::default();
        for s in slots.iter() {
            // A slot from the future (the clock stepped back) counts as now.
            let age = now.saturating_sub(s.second);
            if age >= WINDOW as u64 || (s.delivered == 0 && s.failed == 0) {
                continue;
            }
            r.delivered_5m += u64::from(s.delivered);
            r.failed_5m += u64::from(s.failed);
            if age < 60 {
                r.delivered_1m += u64::from(s.delivered);
                r.failed_1m += u64::from(s.failed);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
