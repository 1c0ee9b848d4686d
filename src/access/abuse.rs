//! What `[abuse]` configures: AUTH lockout, the known-client record, the
//! connection rate, and how client addresses are grouped into networks.
//! Built by `config`, owned here; the lockout (`lockout`), the known-client
//! record (`known`) and the connection rate (`connection_rate`) read it.

use std::num::NonZeroU32;
use std::time::Duration;

/// The validated `[abuse]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Failed AUTH attempts (per IP, per username) that trigger a lockout;
    /// `None` disables lockout.
    pub auth_failures: Option<NonZeroU32>,
    pub auth_window: Duration,
    /// First lockout; each further lockout of the same key doubles it.
    pub lockout: Duration,
    pub lockout_max: Duration,
    pub max_auth_attempts_per_connection: Option<NonZeroU32>,
    pub auth_failure_delay: Duration,
    /// Applies only to clients that are neither trusted by a `networks`
    /// credential nor known (see `known_client_ttl`).
    pub connections_per_ip_per_minute: Option<NonZeroU32>,
    /// How long a client network stays known for a username after a
    /// successful AUTH: known networks are exempt from that username's
    /// lockout and from the connection rate.
    pub known_client_ttl: Duration,
    /// IPv6 clients are counted per network of this many bits (IPv4 per
    /// address), by every per-client limit.
    pub ipv6_prefix: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auth_failures: NonZeroU32::new(5),
            auth_window: Duration::from_secs(600),
            lockout: Duration::from_secs(900),
            lockout_max: Duration::from_secs(86400),
            max_auth_attempts_per_connection: NonZeroU32::new(3),
            auth_failure_delay: Duration::from_secs(1),
            connections_per_ip_per_minute: NonZeroU32::new(60),
            known_client_ttl: Duration::from_secs(30 * 86400),
            ipv6_prefix: 64,
        }
    }
}
