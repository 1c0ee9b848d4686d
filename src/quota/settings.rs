//! What `[quota]` (and a credential's `quota`) configures, as the engine
//! uses it: built by `config`, owned here.

use std::num::NonZeroU32;

/// One limit key after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting {
    /// Not written here: the layer below decides.
    #[default]
    Inherit,
    Unlimited,
    Max(NonZeroU32),
}

impl Setting {
    /// `self` unless it inherits, then `below`.
    pub fn or(self, below: Setting) -> Setting {
        if self == Setting::Inherit {
            below
        } else {
            self
        }
    }

    /// The effective maximum; `None` when there is no limit.
    pub fn max(self) -> Option<NonZeroU32> {
        match self {
            Setting::Max(n) => Some(n),
            _ => None,
        }
    }
}

/// Minute, hour and day limits for one unit (messages or recipients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Windows {
    pub per_minute: Setting,
    pub per_hour: Setting,
    pub per_day: Setting,
    /// How many may go back to back before `per_minute` pacing applies;
    /// default: `per_minute` itself.
    pub burst: Setting,
}

impl Windows {
    pub fn over(self, below: Windows) -> Windows {
        Windows {
            per_minute: self.per_minute.or(below.per_minute),
            per_hour: self.per_hour.or(below.per_hour),
            per_day: self.per_day.or(below.per_day),
            burst: self.burst.or(below.burst),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_minute.max().is_none()
            && self.per_hour.max().is_none()
            && self.per_day.max().is_none()
    }
}

/// A set of limits (one layer, or the merged result of several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub messages: Windows,
    pub recipients: Windows,
}

impl Limits {
    /// This layer's keys on top of `below`.
    pub fn over(&self, below: &Limits) -> Limits {
        Limits {
            messages: self.messages.over(below.messages),
            recipients: self.recipients.over(below.recipients),
        }
    }
}

/// `[[quota.rules]]`: different sender limits for senders matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Lower-cased `user@domain`, `*@domain` or `*`.
    pub senders: Vec<String>,
    /// One counter for all matching senders instead of one per address.
    pub shared: bool,
    pub limits: Limits,
}

/// The validated `[quota]` section. Everything defaults to unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub credential: Limits,
    pub sender: Limits,
    pub domain: Limits,
    pub ip: Limits,
    /// In configuration order.
    pub rules: Vec<Rule>,
}
