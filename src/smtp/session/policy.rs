//! What the session asks the access layer, and the answers' types.
//!
//! The session never sees configuration: it asks a [`Policy`] (the access
//! module in the daemon, a fake in tests) at each step, so a reloaded
//! configuration reaches open sessions at their next command.

use std::net::IpAddr;
use std::sync::Arc;

use crate::smtp::reply::Reply;
use crate::validate::Address;

/// A successful AUTH: the credential, and which of its secrets was used
/// (opaque here), so the access layer can notice at the next MAIL that the
/// secret was removed or expired by a reload.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub credential: Arc<str>,
    pub secret: Arc<str>,
}

/// Manual so the stored hash of the secret never reaches a log line.
impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Grant {
    /// A grant whose secret id does not matter (tests, fuzzing).
    pub fn named(credential: &str) -> Grant {
        Grant {
            credential: Arc::from(credential),
            secret: Arc::from(""),
        }
    }
}

/// A message size limit stricter than the listener's, and whose it is
/// (`credential "app"`, `route "bulk"`) for the 552 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeLimit {
    pub bytes: usize,
    pub by: String,
}

/// Per-credential limits; `None` leaves the listener's limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_recipients: Option<usize>,
    pub max_message_size: Option<SizeLimit>,
}

/// What the session asks the access layer; implemented by the access
/// module, faked in tests.
pub trait Policy: Send + Sync {
    /// Credential name that trusts this peer by source network (no AUTH
    /// needed), if any.
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>>;
    /// Whether `credential` may use this envelope sender. `Err(reason)`
    /// becomes `550 5.7.1 <reason>`.
    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String>;
    /// Rate limits for one more message, checked at MAIL FROM so a client
    /// over its quota is refused before it sends DATA. `Err` is the whole
    /// reply (`451 4.7.1 Rate limit ... retry in N s`).
    fn admit_message(
        &self,
        _credential: &str,
        _mail_from: &str,
        _peer: IpAddr,
    ) -> Result<(), Reply> {
        Ok(())
    }
    /// Rate limits for one more recipient, counted as it is accepted.
    fn admit_recipient(
        &self,
        _credential: &str,
        _mail_from: &str,
        _peer: IpAddr,
    ) -> Result<(), Reply> {
        Ok(())
    }
    /// A transaction that was counted at MAIL (one message) and RCPT
    /// (`recipients`) ended without a queued message (RSET, a new EHLO,
    /// STARTTLS, a refused DATA, a dropped connection): give the counts
    /// back, so only accepted mail uses up a quota.
    fn release(&self, _credential: &str, _mail_from: &str, _peer: IpAddr, _recipients: u32) {}
    /// At each MAIL of an authenticated session: is the login still good
    /// (credential not removed, disabled or expired, secret still listed)?
    /// The configuration may have been reloaded since AUTH.
    fn check_login(&self, _grant: &Grant, _peer: IpAddr) -> Result<(), Reply> {
        Ok(())
    }
    /// The credential's own recipient and size limits.
    fn limits(&self, _credential: &str) -> Limits {
        Limits::default()
    }
    /// The credential's recipient-domain scope. `Err` is the whole reply.
    fn check_recipient(&self, _credential: &str, _rcpt: &Address) -> Result<(), Reply> {
        Ok(())
    }
}
