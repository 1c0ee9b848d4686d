//! Every stage's typed error as the SMTP reply a client gets, in one place,
//! so the codes are consistent: policy is 5xx (the client must not retry
//! the same message), postern's own trouble is 4xx (it should), and the
//! text always names the reason.

use super::reply::Reply;
use crate::access::Denied;
use crate::dkim::SignError;
use crate::inspect::InspectError;
use crate::inspect::attachments::AttachmentError;
use crate::inspect::policy::FromError;
use crate::spool::SpoolError;

impl InspectError {
    /// A fixed word for the refusal (metrics labels, audit events).
    pub fn kind(&self) -> &'static str {
        match self {
            InspectError::Header(_) | InspectError::NoHeaders => "header",
            InspectError::From(_) => "from",
            InspectError::Attachment(AttachmentError::Blocked { .. }) => "attachment_blocked",
            InspectError::Attachment(_) => "attachment",
            InspectError::HeaderOnly(_) => "header_only_recipient",
            InspectError::Internal(_) => "internal",
        }
    }

    /// The reply to the final dot of DATA.
    pub fn reply(&self) -> Reply {
        let (code, enhanced) = match self {
            InspectError::From(FromError::NotAllowed { .. }) | InspectError::HeaderOnly(_) => {
                (550, "5.7.1")
            }
            InspectError::Attachment(AttachmentError::Blocked { .. }) => (554, "5.7.1"),
            InspectError::Attachment(AttachmentError::TooLarge { .. }) => (552, "5.7.1"),
            InspectError::Internal(_) => (451, "4.3.0"),
            _ => (554, "5.6.0"),
        };
        Reply::new(code, enhanced, self.to_string())
    }
}

impl SignError {
    /// A signing failure is temporary (the client retries and may hit a
    /// healthy moment); a missing key under `unsigned = "reject"` is policy.
    pub fn reply(&self) -> Reply {
        match self {
            SignError::NoKey(_) | SignError::NoFromDomain => {
                Reply::new(550, "5.7.1", self.to_string())
            }
            SignError::Failed(_) => Reply::new(
                451,
                "4.3.0",
                "Temporary failure while DKIM-signing the message; try again later",
            ),
        }
    }
}

impl SpoolError {
    /// Whatever stopped the spool (disk full, read-only, ...), the message
    /// was not stored: never 250, and the client keeps it and retries.
    pub fn reply(&self) -> Reply {
        Reply::new(
            452,
            "4.3.1",
            "Insufficient system storage, message not accepted; try again later",
        )
    }
}

impl Denied {
    /// Authentication failures are `535 5.7.8` (one text for every reason
    /// a login fails, so usernames cannot be probed), a lockout is
    /// temporary `454 4.7.0`, an exhausted quota `451 4.7.1` (the client
    /// retries later), a recipient outside the scope `550 5.7.1`, and so is
    /// a suspended credential at MAIL (see [`Denied::auth_reply`] for AUTH).
    pub fn reply(&self) -> Reply {
        let (code, enhanced) = match self {
            Denied::InvalidCredentials
            | Denied::OutsideNetworks { .. }
            | Denied::LoginNoLongerValid => (535, "5.7.8"),
            Denied::LockedOut(_) => (454, "4.7.0"),
            Denied::RateLimited(r) if r.unavailable => (451, "4.3.0"),
            Denied::RateLimited(_) => (451, "4.7.1"),
            Denied::Recipient { .. } | Denied::Suspended { .. } => (550, "5.7.1"),
        };
        Reply::new(code, enhanced, self.to_string())
    }

    /// The reply to AUTH: a suspended credential's login fails like any
    /// other (`535 5.7.8`), with the reason in the text.
    pub fn auth_reply(&self) -> Reply {
        match self {
            Denied::Suspended { .. } => Reply::new(535, "5.7.8", self.to_string()),
            other => other.reply(),
        }
    }
}
