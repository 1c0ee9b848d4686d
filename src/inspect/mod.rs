//! Message inspection and repair, between the end of DATA and the spool.
//!
//! Every message is checked before postern answers 250 (refusals are the
//! reply to the final dot, never a bounce later) and repaired where legacy
//! clients leave it incomplete. One pass over the raw header block
//! ([`headers`]) enforces header sanity and finds the byte ranges the repairs
//! edit; fields with 8-bit text are rewritten first ([`eightbit`]; only then
//! is the message copied and scanned again), so every later step sees the
//! repaired header; one mail-parser parse serves the From policy
//! ([`policy`]) and the attachment policy ([`attachments`]); [`repair`] then
//! edits the raw bytes, so everything not repaired stays byte-identical. Parsing a 25 MiB message
//! takes real CPU time, so it runs on the blocking pool, a bounded number
//! at a time.

pub mod attachments;
pub mod eightbit;
pub mod encode;
pub mod headers;
pub mod policy;
mod received;
pub mod recipients;
pub mod repair;
mod settings;
pub mod structured;

pub use received::{Trace, private_received_header, received_header, rfc5322_date};

use attachments::AttachmentError;
use headers::HeaderError;
use mail_parser::MessageParser;
use policy::FromError;
pub use settings::{
    DEFAULT_BLOCKED_EXTENSIONS, DEFAULT_LEGACY_CHARSET, DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_SIZE, Header8bit, MissingFrom, Settings,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;

/// Why a message is refused or could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    From(#[from] FromError),
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
    #[error("Message has no header section")]
    NoHeaders,
    /// A recipient field names an address that RCPT TO did not, and the
    /// route's provider would deliver to it.
    #[error(transparent)]
    HeaderOnly(#[from] recipients::HeaderOnly),
    /// A failure of postern itself: the client should try again.
    #[error("Temporary failure while inspecting the message; try again later")]
    Internal(String),
}

/// One submission as inspection needs it. Owned, so the work can move to
/// the blocking pool.
#[derive(Debug, Clone)]
pub struct Submission {
    pub credential: String,
    /// `allowed_from` of the credential, or its `allowed_senders` when
    /// `allowed_from` is empty.
    pub from_patterns: Vec<String>,
    pub smtputf8: bool,
    /// The envelope sender, `""` for `<>`: the From header that
    /// `missing_from = "envelope"` adds.
    pub mail_from: String,
    pub helo: String,
    pub peer: IpAddr,
    /// This relay's name, for `Received:` and `Message-ID:`.
    pub hostname: String,
    pub tls: bool,
    pub authenticated: bool,
    pub queue_id: String,
    pub rcpt_to: Vec<String>,
    /// An upstream of the route delivers to the header recipients and
    /// refuses header-only ones (`header_recipients = "refuse"`).
    pub refuse_header_only: bool,
    /// Remove providers' control headers (not every upstream of the route
    /// has `pass_control_headers = true`).
    pub strip_control_headers: bool,
}

/// Fields some provider obeys when a client message carries them: SES
/// (configuration set, sending authorization ARNs, tags), Mailgun
/// (`X-Mailgun-*`), SendGrid (`X-SMTPAPI`), Postmark (`X-PM-*`). A client
/// must not steer the operator's provider account with them.
pub const CONTROL_HEADERS: &[&str] = &["x-ses-*", "x-mailgun-*", "x-smtpapi", "x-pm-*"];

impl Submission {
    fn trace(&self) -> Trace<'_> {
        Trace {
            helo: &self.helo,
            peer: self.peer,
            hostname: &self.hostname,
            tls: self.tls,
            authenticated: self.authenticated,
            queue_id: &self.queue_id,
            rcpt_to: &self.rcpt_to,
        }
    }
}

/// How much CPU the step after inspection takes (see
/// [`Inspector::run_then`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds (Ed25519 signing, or nothing).
    Light,
    /// Long enough that it belongs on the blocking pool (RSA signing).
    Heavy,
}

/// Messages up to this size are inspected on the runtime thread when what
/// follows is light: at 64 KiB that is well under a millisecond.
const INLINE_MAX: usize = 64 * 1024;

/// Applies the `[inspect]` policy to messages.
pub struct Inspector {
    config: Settings,
    /// Parsing allocates several times the message size; bounding how many
    /// run at once bounds that memory and keeps blocking threads for others.
    permits: Semaphore,
}

impl Inspector {
    pub fn new(config: Settings) -> Inspector {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Inspector {
            config,
            permits: Semaphore::new(cpus.max(2)),
        }
    }

    /// Inspects and repairs `data` on the blocking pool; returns the bytes
    /// to spool. Refusals are logged here with the queue id.
    pub async fn run(
        self: &Arc<Self>,
        sub: Submission,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, InspectError> {
        self.run_then(sub, data, Cost::Heavy, |clean| clean).await
    }

    /// Like [`Inspector::run`], then `then` on the repaired bytes in the
    /// same blocking task: acceptance signs there, so a message costs one
    /// hop to the blocking pool and back instead of two (each hop is a
    /// thread wake-up and two context switches, a large share of a small
    /// message's cost).
    ///
    /// A small message whose `then` is cheap (`Cost::Light`: no RSA key
    /// can sign it) is inspected right here on the runtime thread: that
    /// takes tens of microseconds, less than the hop to the blocking pool
    /// and back costs.
    pub async fn run_then<T: Send + 'static>(
        self: &Arc<Self>,
        sub: Submission,
        data: Vec<u8>,
        then_cost: Cost,
        then: impl FnOnce(Vec<u8>) -> T + Send + 'static,
    ) -> Result<T, InspectError> {
        if then_cost == Cost::Light && data.len() <= INLINE_MAX {
            return self.check_logged(&sub, &data, SystemTime::now()).map(then);
        }
        match self.permits.acquire().await {
            Ok(_permit) => {
                let this = Arc::clone(self);
                tokio::task::spawn_blocking(move || {
                    this.check_logged(&sub, &data, SystemTime::now()).map(then)
                })
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "inspection task failed; answered 451");
                    Err(InspectError::Internal(e.to_string()))
                })
            }
            Err(e) => Err(InspectError::Internal(e.to_string())),
        }
    }

    /// [`Inspector::check`], with the refusal logged with the queue id.
    pub fn check_logged(
        &self,
        sub: &Submission,
        data: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, InspectError> {
        let result = self.check(sub, data, now);
        match &result {
            Err(InspectError::Internal(detail)) => {
                tracing::error!(queue_id = %sub.queue_id, error = %detail, "inspection failed; answered 451");
            }
            Err(e) => {
                tracing::info!(queue_id = %sub.queue_id, credential = %sub.credential, reason = %e, "message refused by inspection");
            }
            Ok(_) => {}
        }
        result
    }

    /// The whole inspection, synchronously: header sanity, 8-bit repair,
    /// From policy, attachment policy, then repairs. Returns the bytes to
    /// spool.
    pub fn check(
        &self,
        sub: &Submission,
        data: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, InspectError> {
        let c = &self.config;
        let limits = headers::ScanLimits {
            max_count: c.max_header_count,
            max_size: c.max_header_size,
            smtputf8: sub.smtputf8,
            eight_bit: c.header_8bit,
        };
        let mut section = headers::scan(data, limits)?;
        if section.fields.is_empty() {
            return Err(InspectError::NoHeaders);
        }
        let removed = self.removed(sub);
        let repaired: Vec<u8>;
        let mut data = data;
        if section.fields.iter().any(|f| f.eight_bit) {
            match c.header_8bit {
                Header8bit::Encode => {
                    let opts = eightbit::Options {
                        charset: c.legacy_charset,
                        removed: &removed,
                    };
                    repaired = eightbit::repair(data, &section, opts)?;
                    data = &repaired;
                    section = headers::scan(data, limits)?;
                }
                Header8bit::Pass => eightbit::vet(data, &section, &removed)?,
                // The scan refuses 8-bit text under "reject".
                Header8bit::Reject => {}
            }
        }
        // Flattened at once: a deeply nested parse tree must never be
        // dropped as a tree, not even on an early return.
        let messages = parser()
            .parse(data)
            .map(attachments::flatten)
            .unwrap_or_default();
        let Some((_, root)) = messages.first() else {
            return Err(InspectError::NoHeaders);
        };
        // The raw scan and the parser must agree on where the body starts;
        // otherwise they do not agree on which lines are headers either.
        let body_start = if section.end < data.len() {
            section.end + 2
        } else {
            data.len()
        };
        let parsed_start = root.parts.first().map(|p| p.offset_body as usize);
        if parsed_start != Some(body_start) {
            return Err(HeaderError::Ambiguous.into());
        }
        let (from, add_from) = match policy::from_address(root, section.count(data, "from")) {
            // Only a From that is absent in both views: one that is present
            // but unparsable or not allowed is never papered over.
            Err(FromError::Missing) if c.missing_from == MissingFrom::Envelope => {
                if sub.mail_from.is_empty() {
                    return Err(FromError::MissingNullSender.into());
                }
                (sub.mail_from.clone(), true)
            }
            other => (other?, false),
        };
        policy::check_allowed(&from, &sub.from_patterns, &sub.credential)?;
        attachments::check(
            &messages,
            attachments::AttachmentRules {
                blocked_extensions: &c.blocked_extensions,
                max_size: c.max_attachment_size,
            },
        )?;
        drop(messages);
        let mut plan = self.plan(sub, data, &section, &removed, now);
        if add_from {
            plan.append.insert(0, format!("From: <{from}>\r\n"));
        }
        let out = repair::apply(data, &section, &plan);
        // Judged on what will be sent: Bcc may have been removed above.
        if sub.refuse_header_only
            && let Some(h) = recipients::header_only(&out, &sub.rcpt_to)
                .into_iter()
                .next()
        {
            return Err(h.into());
        }
        Ok(out)
    }

    /// Lower-cased names (or `prefix*` patterns) of the fields the repairs
    /// remove.
    fn removed(&self, sub: &Submission) -> Vec<String> {
        let c = &self.config;
        let mut names = Vec::with_capacity(c.strip_headers.len() + 2);
        if c.remove_bcc {
            names.extend(["bcc".to_string(), "resent-bcc".to_string()]);
        }
        names.extend(c.strip_headers.iter().cloned());
        if sub.strip_control_headers {
            names.extend(CONTROL_HEADERS.iter().map(|h| h.to_string()));
        }
        names
    }

    fn plan(
        &self,
        sub: &Submission,
        data: &[u8],
        section: &headers::Section,
        removed: &[String],
        now: SystemTime,
    ) -> repair::Plan {
        let c = &self.config;
        let mut plan = repair::Plan::default();
        if c.add_received {
            let trace = sub.trace();
            plan.prepend = Some(if c.received_privacy {
                private_received_header(&trace, now)
            } else {
                received_header(&trace, now)
            });
        }
        plan.remove.extend_from_slice(removed);
        let kept = |name: &str| {
            if plan.remove.iter().any(|r| r == name) {
                0
            } else {
                section.count(data, name)
            }
        };
        let (dates, ids) = (kept("date"), kept("message-id"));
        if c.add_date && dates == 0 {
            plan.append.push(format!("Date: {}\r\n", rfc5322_date(now)));
        }
        if c.add_message_id && ids == 0 {
            plan.append.push(format!(
                "Message-ID: {}\r\n",
                repair::new_message_id(&sub.hostname, &sub.queue_id)
            ));
        }
        plan
    }
}

/// The parser inspection reads a message with: the MIME fields (the
/// structure and the attachment names) and From (the policy) are parsed;
/// every other field is kept raw, so Received and Date, which nothing here
/// reads, cost no parsing.
/// Built once: the field map is a hash map, not worth filling per message.
fn parser() -> &'static MessageParser {
    static PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(|| {
        MessageParser::new()
            .with_mime_headers()
            .header_address(mail_parser::HeaderName::From)
            .default_header_raw()
    });
    &PARSER
}

#[cfg(test)]
mod tests;
