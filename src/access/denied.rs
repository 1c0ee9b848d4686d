//! Why access refused a client, as a typed error; smtp/refusal.rs turns
//! each into the SMTP reply.

use std::fmt;

use super::lockout::LockedOut;
use crate::quota::Refusal;

#[derive(Debug)]
pub enum Denied {
    /// Wrong password, unknown username, disabled or expired credential or
    /// secret: one answer for all, so none of them can be told apart.
    InvalidCredentials,
    /// Too many failed AUTH attempts from the client or for the username.
    LockedOut(LockedOut),
    /// A valid secret, used from outside the credential's `networks`.
    OutsideNetworks { credential: String },
    /// A reload removed or disabled the login this session authenticated
    /// with.
    LoginNoLongerValid,
    /// A quota rule is exhausted.
    RateLimited(Refusal),
    /// `postern credential suspend` (or the volume-spike detector)
    /// suspended the credential.
    Suspended { credential: String },
    /// The recipient is outside the credential's recipient-domain scope.
    Recipient {
        recipient: String,
        credential: String,
        rule: &'static str,
    },
}

impl Denied {
    /// A fixed word for the reason (metrics labels, audit events).
    pub fn kind(&self) -> &'static str {
        match self {
            Denied::InvalidCredentials => "invalid",
            Denied::LockedOut(_) => "locked_out",
            Denied::OutsideNetworks { .. } => "outside_networks",
            Denied::LoginNoLongerValid => "no_longer_valid",
            Denied::RateLimited(_) => "quota",
            Denied::Suspended { .. } => "suspended",
            Denied::Recipient { .. } => "recipient_scope",
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::InvalidCredentials => f.write_str("Authentication credentials invalid"),
            Denied::LockedOut(l) => l.fmt(f),
            Denied::OutsideNetworks { credential } => write!(
                f,
                "Credential \"{credential}\" may not be used from this address (networks)"
            ),
            Denied::LoginNoLongerValid => {
                f.write_str("Authentication credentials no longer valid; authenticate again")
            }
            Denied::RateLimited(r) => r.fmt(f),
            Denied::Suspended { credential } => {
                write!(f, "Credential \"{credential}\" is suspended")
            }
            Denied::Recipient {
                recipient,
                credential,
                rule,
            } => write!(
                f,
                "Recipient <{recipient}> not allowed for credential \"{credential}\" ({rule})"
            ),
        }
    }
}

impl std::error::Error for Denied {}
