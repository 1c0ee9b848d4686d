//! Where mail leaves postern: one trait every provider implements.
//!
//! An upstream receives a message with its envelope and either takes it
//! (`Delivered`) or says whether trying again later can help (`Transient`)
//! or not (`Permanent`), or that it cannot tell whether the message was
//! taken (`Ambiguous`: the request went out and no answer came back).
//! Upstreams know nothing about the spool, retries or SMTP; the delivery
//! workers own those decisions.

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

use crate::inspect::recipients::HeaderRecipients;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use directory::DirectoryUpstream;
pub use gmail::GmailUpstream;
pub use http::HttpUpstream;
pub use mailgun::MailgunUpstream;
pub use msgraph::MsgraphUpstream;
pub use postmark::PostmarkUpstream;
pub use resend::ResendUpstream;
pub use sendgrid::SendgridUpstream;
pub use ses::SesUpstream;

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
    /// The OAuth token state, for upstreams that use one.
    fn token_status(&self) -> Option<oauth::TokenStatus> {
        None
    }
}

/// The upstream kinds (`kind = "..."`), and what the rest of postern must
/// know about each without looking at its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Directory,
    Ses,
    Sendgrid,
    Mailgun,
    Postmark,
    Resend,
    Msgraph,
    Gmail,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Http,
        Kind::Directory,
        Kind::Ses,
        Kind::Sendgrid,
        Kind::Mailgun,
        Kind::Postmark,
        Kind::Resend,
        Kind::Msgraph,
        Kind::Gmail,
    ];

    /// The `kind = "..."` value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Directory => "directory",
            Kind::Ses => "ses",
            Kind::Sendgrid => "sendgrid",
            Kind::Mailgun => "mailgun",
            Kind::Postmark => "postmark",
            Kind::Resend => "resend",
            Kind::Msgraph => "msgraph",
            Kind::Gmail => "gmail",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The provider's product name and the SPF `include:` that authorizes
    /// the servers it sends from (for `dns-check`); None where postern
    /// cannot know (http, directory, or unpublished).
    pub fn spf(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Msgraph => Some(("Microsoft 365", "spf.protection.outlook.com")),
            Kind::Ses => Some(("Amazon SES", "amazonses.com")),
            Kind::Sendgrid => Some(("SendGrid", "sendgrid.net")),
            Kind::Mailgun => Some(("Mailgun", "mailgun.org")),
            Kind::Postmark => Some(("Postmark", "spf.mtasv.net")),
            Kind::Gmail => Some(("Google", "_spf.google.com")),
            Kind::Http | Kind::Directory | Kind::Resend => None,
        }
    }

    /// Whether postern's DKIM signature reaches recipients intact (the
    /// default of `dkim`): the raw-message kinds pass the bytes on; the JSON
    /// APIs rebuild the message, and Graph and Gmail sign with their own keys.
    pub fn keeps_signature(self) -> bool {
        matches!(
            self,
            Kind::Http | Kind::Directory | Kind::Ses | Kind::Mailgun
        )
    }
}

/// One `[upstreams.NAME]` kind with its validated settings (secrets
/// resolved, keys parsed); each provider's type lives in its own file.
#[derive(Debug, Clone)]
pub enum Settings {
    Http(http::Settings),
    Directory(directory::Settings),
    Ses(ses::Settings),
    Sendgrid(sendgrid::Settings),
    Mailgun(mailgun::Settings),
    Postmark(postmark::Settings),
    Resend(resend::Settings),
    Msgraph(msgraph::Settings),
    Gmail(gmail::Settings),
}

impl Settings {
    pub fn kind(&self) -> Kind {
        match self {
            Settings::Http(_) => Kind::Http,
            Settings::Directory(_) => Kind::Directory,
            Settings::Ses(_) => Kind::Ses,
            Settings::Sendgrid(_) => Kind::Sendgrid,
            Settings::Mailgun(_) => Kind::Mailgun,
            Settings::Postmark(_) => Kind::Postmark,
            Settings::Resend(_) => Kind::Resend,
            Settings::Msgraph(_) => Kind::Msgraph,
            Settings::Gmail(_) => Kind::Gmail,
        }
    }

    /// For kinds whose provider takes recipients from the message headers
    /// (msgraph, gmail): what happens to addresses only the headers name.
    /// None for kinds that deliver to the envelope.
    pub fn header_recipients(&self) -> Option<HeaderRecipients> {
        match self {
            Settings::Msgraph(g) => Some(g.header_recipients),
            Settings::Gmail(g) => Some(g.header_recipients),
            _ => None,
        }
    }
}

/// What makes one provider different from another: how it sends, and the
/// largest message it takes. [`Named`] turns any provider into an
/// [`Upstream`], so this is the one thing a provider file implements.
pub trait Provider: Send + Sync + 'static {
    /// The largest message (raw bytes) the provider accepts, if it has a limit.
    fn max_message_size(&self) -> Option<u64> {
        None
    }

    /// The OAuth token state, for providers that use one.
    fn token_status(&self) -> Option<oauth::TokenStatus> {
        None
    }

    fn send(
        &self,
        msg: &OutboundMessage<'_>,
    ) -> impl Future<Output = Result<Delivered, DeliveryError>> + Send;
}

/// A provider under its `[upstreams.NAME]` name: the `Upstream` every kind
/// is, without a macro and without each provider keeping a name field by
/// convention.
pub struct Named<P> {
    name: String,
    provider: P,
}

impl<P: Provider> Named<P> {
    pub fn new(name: &str, provider: P) -> Named<P> {
        Named {
            name: name.to_string(),
            provider,
        }
    }
}

impl<P: Provider> Upstream for Named<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, msg: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(self.provider.send(msg))
    }

    fn max_message_size(&self) -> Option<u64> {
        self.provider.max_message_size()
    }

    fn token_status(&self) -> Option<oauth::TokenStatus> {
        self.provider.token_status()
    }
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

/// Builds the upstream named `name` (the `[upstreams.NAME]` key) from its
/// validated settings.
pub fn build(name: &str, settings: &Settings) -> Result<Arc<dyn Upstream>, UpstreamError> {
    fn named<P: Provider>(name: &str, p: P) -> Arc<dyn Upstream> {
        Arc::new(Named::new(name, p))
    }
    Ok(match settings {
        Settings::Http(s) => named(name, HttpUpstream::new(name, s)?),
        Settings::Directory(s) => named(name, DirectoryUpstream::new(name, s)?),
        Settings::Ses(s) => named(name, SesUpstream::new(name, s)?),
        Settings::Sendgrid(s) => named(name, SendgridUpstream::new(name, s)?),
        Settings::Mailgun(s) => named(name, MailgunUpstream::new(name, s)?),
        Settings::Postmark(s) => named(name, PostmarkUpstream::new(name, s)?),
        Settings::Resend(s) => named(name, ResendUpstream::new(name, s)?),
        Settings::Msgraph(s) => named(name, MsgraphUpstream::new(name, s)?),
        Settings::Gmail(s) => named(name, GmailUpstream::new(name, s)?),
    })
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
