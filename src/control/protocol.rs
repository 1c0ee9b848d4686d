//! The control socket's messages (see the module doc of `control` for the
//! wire format). Everything here is plain data, shared by the daemon and
//! the CLI; the CLI also builds [`MessageSummary`] and [`MessageView`]
//! itself when it reads a stopped daemon's spool.

use serde::{Deserialize, Serialize};

use crate::access::suspend::Suspension;
use crate::deliver::Rates;
use crate::quota::KeyUsage;
use crate::spool::HistoryEntry;
use crate::upstream::oauth::TokenStatus;

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Ping,
    SpoolList {
        #[serde(default)]
        dead: bool,
    },
    SpoolShow {
        id: String,
    },
    SpoolRetry {
        #[serde(default)]
        ids: Vec<String>,
        #[serde(default)]
        all_dead: bool,
    },
    SpoolPurge {
        #[serde(default)]
        ids: Vec<String>,
        #[serde(default)]
        all_dead: bool,
    },
    SpoolHold {
        ids: Vec<String>,
    },
    SpoolRelease {
        ids: Vec<String>,
    },
    /// Move another node's spool (a path the daemon can read) into this one.
    SpoolAdopt {
        path: String,
    },
    Status,
    CredentialSuspend {
        name: String,
        #[serde(default)]
        for_secs: Option<u64>,
        #[serde(default)]
        reason: Option<String>,
    },
    CredentialResume {
        name: String,
    },
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    pub fn ok(result: serde_json::Value) -> Response {
        Response {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(text.into()),
        }
    }
}

/// `ping`: who answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub version: String,
    pub pid: u32,
}

/// What `spool adopt` moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptReport {
    pub queued: Vec<String>,
    pub dead: Vec<String>,
    /// Files left where they were, each with why.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
}

impl AdoptReport {
    pub fn of(a: &crate::spool::Adopted) -> AdoptReport {
        AdoptReport {
            queued: a.queued.iter().map(|r| r.envelope.id.clone()).collect(),
            dead: a.dead.clone(),
            skipped: a.skipped.clone(),
        }
    }
}

/// One line of `spool list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub id: String,
    /// `queued` (waiting for its next attempt), `delivering`,
    /// `waiting-breaker` (every upstream of its route has an open
    /// breaker), `held`, `dead`, or `unreadable` (see `error`).
    pub state: String,
    /// Unix seconds when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The envelope sender; empty for the null sender `<>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Message bytes as spooled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Failed attempts (since it was queued or requeued; for a dead
    /// letter, before it died).
    pub attempts: u32,
    /// Unix seconds of the next attempt, when one is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upstream: Option<String>,
    /// Unix seconds when it was dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<u64>,
    /// Unix seconds when an operator held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<u64>,
    /// Why the file could not be read (state `unreadable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `spool show`: the summary plus what only one message's view needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    #[serde(flatten)]
    pub summary: MessageSummary,
    pub route: String,
    /// The header block as stored (never the body).
    pub headers: String,
    #[serde(default)]
    pub headers_truncated: bool,
    /// Unix seconds since which `max_age` counts, when an operator
    /// requeued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeued_at: Option<u64>,
    /// Oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// One id's outcome in a batch command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub id: String,
    pub ok: bool,
    /// What was done (`requeued`, `due now`, `purged`, `held`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `spool_retry`, `spool_purge`, `spool_hold`,
/// `spool_release`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchResult {
    pub results: Vec<ItemResult>,
}

/// One SMTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    pub address: String,
    /// `starttls`, `implicit` or `none`.
    pub tls: String,
}

/// The spool by state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueInfo {
    /// Messages in queue/ (held ones included).
    pub queued: u64,
    pub queued_bytes: u64,
    pub held: usize,
    pub delivering: usize,
    pub waiting_for_breakers: usize,
    pub dead: u64,
    pub dead_bytes: u64,
    /// Age of the oldest queued message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_age_s: Option<u64>,
}

/// One upstream's breaker and (OAuth upstreams) token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamInfo {
    pub name: String,
    /// `closed`, `half-open` or `open`.
    pub breaker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
}

/// One AUTH lockout in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutInfo {
    /// The client network, or `user "NAME"` (`unknown user <hash>` for
    /// names no credential has: they may be mistyped passwords).
    pub key: String,
    pub remaining_s: u64,
}

/// `postern status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub uptime_s: u64,
    pub state_dir: String,
    pub listeners: Vec<ListenerInfo>,
    /// SMTP connections open now.
    pub connections: usize,
    pub queue: QueueInfo,
    /// Delivery attempts in the last 1 and 5 minutes.
    pub delivery: Rates,
    pub upstreams: Vec<UpstreamInfo>,
    pub lockouts: Vec<LockoutInfo>,
    pub suspended: Vec<Suspension>,
    /// The quota keys with most messages counted this hour (then day).
    pub busiest_quota_keys: Vec<KeyUsage>,
    /// `[cluster]`: this node and whether Redis is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
}

/// `[cluster]` as `postern status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub node_id: String,
    /// `shared` (Redis answers), `local` (down: each node its share) or
    /// `tempfail` (down: refusing what needs a shared limit).
    pub state: String,
}
