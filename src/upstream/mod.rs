//! Where mail leaves postern: one trait every provider implements.
//!
//! An upstream receives a message with its envelope and either takes it
//! (`Delivered`) or says whether trying again later can help (`Transient`)
//! or not (`Permanent`), or that it cannot tell whether the message was
//! taken (`Ambiguous`: the request went out and no answer came back).
//! Upstreams know nothing about the spool, retries or SMTP; the delivery
//! workers own those decisions.

/// `impl Upstream` for a provider client: a `name` field, an
/// `async fn send(&self, &OutboundMessage) -> Result<Delivered, DeliveryError>`
/// and the provider's fixed size limit. One definition instead of the same
/// three methods in every provider file.
macro_rules! provider_upstream {
    ($ty:ty, $max:expr) => {
        impl $crate::upstream::Upstream for $ty {
            fn name(&self) -> &str {
                &self.name
            }

            fn deliver<'a>(
                &'a self,
                msg: &'a $crate::upstream::OutboundMessage<'a>,
            ) -> $crate::upstream::DeliverFuture<'a> {
                Box::pin(self.send(msg))
            }

            fn max_message_size(&self) -> Option<u64> {
                Some($max)
            }
        }
    };
}
pub(crate) use provider_upstream;

pub mod api;
pub mod convert;
pub mod directory;
pub mod gmail;
pub mod http;
pub mod jwt;
pub mod mailgun;
pub mod msgraph;
pub mod oauth;
pub mod postmark;
pub mod recipients;
pub mod resend;
pub mod sendgrid;
pub mod ses;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use directory::{DirectoryConfig, DirectoryUpstream};
pub use gmail::{GmailConfig, GmailUpstream};
pub use http::{Format, HttpAuth, HttpConfig, HttpUpstream};
pub use mailgun::{MailgunConfig, MailgunUpstream};
pub use msgraph::{MsGraphAuth, MsGraphConfig, MsGraphUpstream};
pub use postmark::{PostmarkConfig, PostmarkUpstream};
pub use resend::{ResendConfig, ResendUpstream};
pub use sendgrid::{SendgridConfig, SendgridUpstream};
pub use ses::{SesConfig, SesUpstream};

/// One message as handed to an upstream; borrowed so a retry does not copy.
#[derive(Debug, Clone, Copy)]
pub struct OutboundMessage<'a> {
    /// Spool queue id, stable across retries (usable as an idempotency key).
    pub id: &'a str,
    /// Reverse path; empty for the null sender.
    pub mail_from: &'a str,
    pub rcpt_to: &'a [String],
    /// The raw RFC 5322 message, CRLF line endings, not dot-stuffed.
    pub data: &'a [u8],
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Trying again later may work (rate limit, outage, timeout, disk full).
    #[error("{reason}")]
    Transient {
        reason: String,
        /// The upstream asked us to wait at least this long.
        retry_after: Option<Duration>,
    },
    /// The upstream rejected this message; retrying will not help.
    #[error("{reason}")]
    Permanent { reason: String },
    /// The request was sent but no answer arrived (a timeout after the
    /// connection was up): the upstream may have taken the message, so
    /// trying again may deliver it twice. The upstream's `on_ambiguous`
    /// decides between retrying and dead-lettering.
    #[error("{reason}")]
    Ambiguous { reason: String },
    /// Nothing was sent: the upstream is still waiting out an earlier
    /// failure it shares between deliveries (a failed token refresh). Retried
    /// after `retry_after` like a transient failure, but it is no new
    /// evidence about the upstream, so the circuit breaker ignores it.
    #[error("{reason}")]
    NotAttempted {
        reason: String,
        retry_after: Duration,
    },
}

impl DeliveryError {
    pub fn transient(reason: impl Into<String>) -> Self {
        DeliveryError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn ambiguous(reason: impl Into<String>) -> Self {
        DeliveryError::Ambiguous {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Transient { reason, .. }
            | DeliveryError::Permanent { reason }
            | DeliveryError::Ambiguous { reason }
            | DeliveryError::NotAttempted { reason, .. } => reason,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent { .. })
    }

    /// Whether the upstream may have taken the message despite the error.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, DeliveryError::Ambiguous { .. })
    }
}

/// Successful hand-off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The provider's id for the message, when it returns one (for logs).
    pub upstream_id: Option<String>,
}

/// Future returned by `Upstream::deliver`; boxed so the trait is dyn-safe
/// without the async-trait crate.
pub type DeliverFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Delivered, DeliveryError>> + Send + 'a>>;

/// A destination for mail (an HTTPS API, a directory, ...).
pub trait Upstream: Send + Sync {
    /// The config name (`[upstreams.NAME]`), used in logs and dead letters.
    fn name(&self) -> &str;
    fn deliver<'a>(&'a self, msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a>;
    /// The largest message (raw bytes) the provider accepts, if it has a limit.
    fn max_message_size(&self) -> Option<u64> {
        None
    }
}

/// Provider settings, one variant per `kind`, with secrets already resolved.
#[derive(Debug, Clone)]
pub enum UpstreamConfig {
    Http(HttpConfig),
    Directory(DirectoryConfig),
    Msgraph(MsGraphConfig),
    Gmail(GmailConfig),
    Ses(SesConfig),
    Sendgrid(SendgridConfig),
    Mailgun(MailgunConfig),
    Postmark(PostmarkConfig),
    Resend(ResendConfig),
}

/// Errors building an upstream from its configuration (reported at startup).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {name:?}: invalid url {url:?}: {reason}")]
    InvalidUrl {
        name: String,
        url: String,
        reason: String,
    },
    #[error("upstream {name:?}: {source}")]
    Https {
        name: String,
        #[source]
        source: crate::https::ClientError,
    },
    #[error("upstream {name:?}: {reason}")]
    Other { name: String, reason: String },
}

/// Builds the upstream named `name` (the `[upstreams.NAME]` key).
pub fn build(name: &str, config: UpstreamConfig) -> Result<Arc<dyn Upstream>, UpstreamError> {
    Ok(match config {
        UpstreamConfig::Http(c) => Arc::new(HttpUpstream::new(name, c)?),
        UpstreamConfig::Directory(c) => Arc::new(DirectoryUpstream::new(name, c)?),
        UpstreamConfig::Msgraph(c) => Arc::new(MsGraphUpstream::new(name, c)?),
        UpstreamConfig::Gmail(c) => Arc::new(GmailUpstream::new(name, c)?),
        UpstreamConfig::Ses(c) => Arc::new(SesUpstream::new(name, c)?),
        UpstreamConfig::Sendgrid(c) => Arc::new(SendgridUpstream::new(name, c)?),
        UpstreamConfig::Mailgun(c) => Arc::new(MailgunUpstream::new(name, c)?),
        UpstreamConfig::Postmark(c) => Arc::new(PostmarkUpstream::new(name, c)?),
        UpstreamConfig::Resend(c) => Arc::new(ResendUpstream::new(name, c)?),
    })
}

/// Builds an upstream from its validated `[upstreams.NAME]` table, moving
/// resolved secrets into the provider's own config type.
pub fn from_config(
    name: &str,
    kind: &crate::config::UpstreamKind,
) -> Result<Arc<dyn Upstream>, UpstreamError> {
    use crate::config::{self, UpstreamKind};
    let c = match kind {
        UpstreamKind::Http(h) => UpstreamConfig::Http(HttpConfig {
            url: h.url.clone(),
            format: match h.format {
                config::HttpFormat::Raw => http::Format::Raw,
                config::HttpFormat::Json => http::Format::Json,
            },
            auth: h.auth.as_ref().map(|a| match a {
                config::HttpAuth::Bearer(t) => http::HttpAuth::Bearer(t.expose().to_string()),
                config::HttpAuth::Basic { username, password } => http::HttpAuth::Basic {
                    username: username.clone(),
                    password: password.expose().to_string(),
                },
            }),
            timeout: h.timeout,
            ca_file: h.ca_file.clone(),
        }),
        UpstreamKind::Directory { path } => {
            UpstreamConfig::Directory(DirectoryConfig { path: path.clone() })
        }
        UpstreamKind::Msgraph(g) => UpstreamConfig::Msgraph(MsGraphConfig::from_config(name, g)?),
        UpstreamKind::Gmail(g) => UpstreamConfig::Gmail(GmailConfig::from_config(g)),
        UpstreamKind::Ses(c) => UpstreamConfig::Ses(SesConfig::from_config(c)),
        UpstreamKind::Sendgrid(c) => UpstreamConfig::Sendgrid(SendgridConfig::from_config(c)),
        UpstreamKind::Mailgun(c) => UpstreamConfig::Mailgun(MailgunConfig::from_config(c)),
        UpstreamKind::Postmark(c) => UpstreamConfig::Postmark(PostmarkConfig::from_config(c)),
        UpstreamKind::Resend(c) => UpstreamConfig::Resend(ResendConfig::from_config(c)),
    };
    build(name, c)
}

impl UpstreamError {
    /// The upstream's HTTPS client could not be built.
    pub(crate) fn https(name: &str) -> impl FnOnce(crate::https::ClientError) -> UpstreamError {
        let name = name.to_string();
        move |source| UpstreamError::Https { name, source }
    }
}

/// Shortens text from a remote system for logs and dead-letter reasons:
/// at most `max` chars, control characters replaced, so a hostile response
/// cannot forge log lines.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out.trim().to_string()
}
