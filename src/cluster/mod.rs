//! Several nodes behind one load balancer: the PROXY protocol
//! (`proxy.rs`) and, with `[cluster]`, the state every node must share
//! kept in Redis.
//!
//! Each node keeps its own durable spool; Redis holds only counters and
//! records whose loss costs accuracy, never a message. Without `[cluster]`
//! none of this runs and every limit is the node's own.

pub mod alerts;
pub mod lockout;
pub mod proxy;
pub mod quota;
pub mod store;
pub mod suspend;

pub use store::{Cluster, ClusterError, share};

use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

/// What a node does while Redis cannot be reached in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisDown {
    /// Keep accepting mail under local limits: each node enforces its
    /// share, max(1, ceil(limit / expected_nodes)).
    #[default]
    Local,
    /// Refuse what needs a shared limit with `451 4.3.0` until Redis is back.
    Tempfail,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `redis://host:port[/db]` or `rediss://...`, without credentials.
    pub redis: String,
    /// With `rediss://`: the CA (PEM) that signed the Redis server's
    /// certificate, trusted instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub password: Option<Secret>,
    /// This node's name in logs, metrics and `postern status`.
    pub node_id: String,
    /// Prepended to every key, so several deployments can share a Redis.
    pub key_prefix: String,
    pub expected_nodes: u32,
    pub on_redis_down: OnRedisDown,
    /// Bound on one Redis call; past it the node falls back.
    pub timeout: Duration,
}
