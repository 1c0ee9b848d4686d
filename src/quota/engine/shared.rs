//! What the engine hands to the shared counters in Redis
//! (`src/cluster/quota.rs`): the keys a check counts against with their
//! limits, the refusal for a window Redis reports exhausted, and the
//! limits as one node enforces them alone while Redis is down.

use super::{Compiled, Span, Subject, Unit, windows};
use crate::quota::{Limits, Refusal, Rule, Setting, Settings, Windows};
use std::num::NonZeroU32;

impl Compiled {
    /// The keys a check of `unit` counts against (those with a limit), in
    /// target order, for the shared counters in Redis
    /// (`src/cluster/quota.rs`). Borrows: the caller encodes the Redis
    /// command while it holds the engine, so a check copies no key.
    pub(crate) fn plan<'a>(
        &'a self,
        s: &'a Subject<'a>,
        unit: Unit,
    ) -> [Option<crate::cluster::quota::Planned<'a>>; 4] {
        self.targets(s).map(|t| {
            let t = t?;
            let w = windows(&t.limits, unit);
            (!w.is_unlimited()).then(|| crate::cluster::quota::Planned {
                dim: t.dim.name(),
                key: t.key,
                windows: w,
            })
        })
    }

    /// The refusal for a shared check that `over` refused.
    pub(crate) fn refusal(
        &self,
        s: &Subject<'_>,
        unit: Unit,
        over: crate::cluster::quota::Over,
    ) -> Refusal {
        let span = match over.span {
            2 => Span::Hour,
            3 => Span::Day,
            _ => Span::Minute,
        };
        // `over.index` counts the planned (limited) targets only, as
        // `plan` sent them.
        let target = self
            .targets(s)
            .into_iter()
            .flatten()
            .filter(|t| !windows(&t.limits, unit).is_unlimited())
            .nth(over.index);
        match target {
            Some(t) => Refusal {
                rule: self.rule_name(t.layer, unit, span),
                key: format!("{} {}", t.dim.name(), t.key),
                retry_after: over.wait,
                unavailable: false,
            },
            None => Refusal {
                rule: "quota".to_string(),
                key: "a shared counter".to_string(),
                retry_after: over.wait,
                unavailable: false,
            },
        }
    }
}

/// `limits` as one of `nodes` nodes enforces them alone.
pub(crate) fn share_limits(l: &Limits, nodes: u32) -> Limits {
    let one = |s: Setting| match s {
        Setting::Max(n) => {
            NonZeroU32::new(crate::cluster::share(n.get(), nodes)).map_or(s, Setting::Max)
        }
        other => other,
    };
    let win = |w: Windows| Windows {
        per_minute: one(w.per_minute),
        per_hour: one(w.per_hour),
        per_day: one(w.per_day),
        burst: one(w.burst),
    };
    Limits {
        messages: win(l.messages),
        recipients: win(l.recipients),
    }
}

/// Every limit of `cfg` as one of `nodes` nodes enforces them alone.
pub(crate) fn share_settings(cfg: &Settings, nodes: u32) -> Settings {
    Settings {
        credential: share_limits(&cfg.credential, nodes),
        sender: share_limits(&cfg.sender, nodes),
        domain: share_limits(&cfg.domain, nodes),
        ip: share_limits(&cfg.ip, nodes),
        rules: cfg
            .rules
            .iter()
            .map(|r| Rule {
                limits: share_limits(&r.limits, nodes),
                ..r.clone()
            })
            .collect(),
    }
}
