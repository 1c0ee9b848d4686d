//! What the session asks the access layer, and the answers' types.
//!
//! The session never sees configuration: it asks a [`Policy`] (the access
//! module in the daemon, a fake in tests) at each step, so a reloaded
//! configuration reaches open sessions at their next command.

use std::net::IpAddr;
use std::sync::Arc;

use crate::access::Access;
pub use crate::access::{CredentialLimits, Grant, SizeLimit};
use crate::smtp::reply::Reply;
use crate::validate::Address;

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
    /// Whether the spool has room for a message of `size` bytes (0 when
    /// MAIL did not say), checked at MAIL FROM. `Err` is the whole reply
    /// (`452 4.3.1 Insufficient system storage`).
    fn check_storage(&self, _size: u64) -> Result<(), Reply> {
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
    /// Whether the rate limits are kept elsewhere (Redis, `[cluster]`):
    /// the session then asks the connection to check them
    /// ([`super::Step::AdmitMessage`], [`super::Step::AdmitRecipient`])
    /// instead of calling `admit_message` / `admit_recipient`.
    fn shared_quotas(&self) -> bool {
        false
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
    /// At each MAIL, for AUTH and `networks` sessions alike: is the
    /// credential suspended? `Err` is the whole reply (`550 5.7.1`).
    fn check_suspended(&self, _credential: &str) -> Result<(), Reply> {
        Ok(())
    }
    /// The credential's own recipient and size limits.
    fn limits(&self, _credential: &str) -> CredentialLimits {
        CredentialLimits::default()
    }
    /// The credential's recipient-domain scope. `Err` is the whole reply.
    fn check_recipient(&self, _credential: &str, _rcpt: &Address) -> Result<(), Reply> {
        Ok(())
    }
}

/// The access layer answers; its refusals become replies here
/// (`Denied::reply`, in smtp/refusal.rs).
impl Policy for Access {
    fn network_credential(&self, peer: IpAddr) -> Option<Arc<str>> {
        Access::network_credential(self, peer)
    }

    fn check_sender(&self, credential: &str, mail_from: &str) -> Result<(), String> {
        Access::check_sender(self, credential, mail_from)
    }

    fn admit_message(&self, credential: &str, mail_from: &str, peer: IpAddr) -> Result<(), Reply> {
        Access::admit_message(self, credential, mail_from, peer).map_err(|d| refused(&d))
    }

    fn admit_recipient(
        &self,
        credential: &str,
        mail_from: &str,
        peer: IpAddr,
    ) -> Result<(), Reply> {
        Access::admit_recipient(self, credential, mail_from, peer).map_err(|d| refused(&d))
    }

    fn release(&self, credential: &str, mail_from: &str, peer: IpAddr, recipients: u32) {
        Access::release(self, credential, mail_from, peer, recipients)
    }

    fn check_login(&self, grant: &Grant, peer: IpAddr) -> Result<(), Reply> {
        Access::check_login(self, grant, peer).map_err(|d| refused(&d))
    }

    fn check_suspended(&self, credential: &str) -> Result<(), Reply> {
        Access::check_suspended(self, credential).map_err(|d| refused(&d))
    }

    fn limits(&self, credential: &str) -> CredentialLimits {
        Access::limits(self, credential)
    }

    fn check_recipient(&self, credential: &str, rcpt: &Address) -> Result<(), Reply> {
        Access::check_recipient(self, credential, rcpt).map_err(|d| refused(&d))
    }
}

/// A refusal by access as its reply, tagged with its rule.
fn refused(denied: &crate::access::Denied) -> Reply {
    denied.reply().because(denied.kind())
}
