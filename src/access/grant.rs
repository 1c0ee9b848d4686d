//! What a successful login grants, and the limits a credential carries:
//! the answers access gives the SMTP session.

use std::sync::Arc;

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
pub struct CredentialLimits {
    pub max_recipients: Option<usize>,
    pub max_message_size: Option<SizeLimit>,
}
