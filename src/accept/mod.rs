//! Acceptance: what happens between the client's final dot and the `250`,
//! the decision the whole product rests on. A message is the client's
//! problem until postern answers 250 and postern's afterwards, so 250 is
//! sent only once the message has passed every check and is on disk.
//!
//! For one finished SMTP transaction, in order:
//! 1. **Inspect** (`inspect::Inspector`, on the blocking pool): header
//!    sanity and 8-bit repair, the From policy, the attachment policy, the
//!    repairs (Received, Date, Message-ID, Bcc and provider control headers
//!    removed), and, when the route's provider delivers to the header
//!    recipients, the check that they name only envelope recipients.
//! 2. **Sign** (`dkim::Signer`, in the same blocking task as inspection:
//!    one hop off the runtime threads per message, not two): the last
//!    change to the bytes, so the spool stores (and upstreams receive) what
//!    was signed.
//! 3. **Spool** (`spool::Spool::put`): the message and its envelope written
//!    and fsync'd, group-committed with other sessions'.
//! 4. **Reply**: `250 2.0.0 Ok: queued as ID`; any refusal on the way is the
//!    reply to the final dot instead (`smtp::refusal` maps each stage's
//!    error), so nothing refused ever becomes a bounce later.

use crate::access::Access;
use crate::deliver::AcceptPolicies;
use crate::dkim::Signer;
use crate::inspect::{Inspector, Submission};
use crate::observe::{audit, metrics};
use crate::smtp::listener::MessageSink;
use crate::smtp::reply::Reply;
use crate::smtp::session::Transaction;
use crate::spool::{self, Envelope, Spool};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// Everything acceptance needs from one configuration generation; the
/// spool outlives generations.
pub struct Acceptor {
    pub spool: Arc<Spool>,
    pub access: Arc<Access>,
    /// This relay's name, for `Received:` and `Message-ID:`.
    pub hostname: String,
    pub inspector: Arc<Inspector>,
    pub signer: Arc<Signer>,
    /// What each route's upstreams require of acceptance.
    pub routes: AcceptPolicies,
    /// `[server] min_free_space`.
    pub min_free_space: u64,
}

impl Acceptor {
    /// Steps 1 to 3 for `tx`; the queue id, or the refusal.
    async fn accept(&self, mut tx: Transaction, peer: SocketAddr) -> Result<String, Reply> {
        let id = std::mem::take(&mut tx.id);
        let route = self.access.route_of(&tx.credential);
        let sub = self.submission(&tx, &route, peer, &id);
        let signer = Arc::clone(&self.signer);
        let sign_id = id.clone();
        let cost = self.signer.cost();
        // One task inspects, then signs the repaired bytes (inline when
        // both are cheap, else on the blocking pool).
        let signed = self
            .inspector
            .run_then(sub, std::mem::take(&mut tx.data), cost, move |clean| {
                signer.sign_into(clean, SystemTime::now(), &sign_id)
            })
            .await
            .map_err(|e| {
                if !matches!(e, crate::inspect::InspectError::Internal(_)) {
                    crate::alerts::inspection_refused(&tx.credential);
                }
                e.reply().because(e.kind())
            })?;
        let (data, dkim) = signed.map_err(|e| e.reply().because("dkim"))?;
        let size = data.len();
        let envelope = Envelope {
            id: id.clone(),
            received_at: spool::unix_now(),
            credential: tx.credential.to_string(),
            mail_from: tx.mail_from.clone(),
            rcpt_to: tx.rcpt_to.clone(),
            route,
            size: 0,
        };
        match self.spool.put(envelope, data).await {
            Ok(()) => {
                tracing::info!(
                    target: audit::TARGET,
                    event = "accepted",
                    queue_id = %id,
                    session = %tx.session,
                    client_ip = %peer.ip(),
                    credential = %tx.credential,
                    sender = %tx.mail_from,
                    recipients = tx.rcpt_to.len(),
                    size,
                    dkim = %dkim.join(" "),
                    "accepted"
                );
                metrics::message_accepted();
                crate::alerts::accepted(&tx.credential);
                Ok(id)
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot spool message; answered 452");
                Err(e.reply().because("spool"))
            }
        }
    }

    /// What inspection needs to know about the transaction. A credential
    /// that a reload removed allows no From address.
    fn submission(&self, tx: &Transaction, route: &str, peer: SocketAddr, id: &str) -> Submission {
        let from_patterns = self
            .access
            .credential(&tx.credential)
            .map_or_else(Vec::new, |c| {
                if c.allowed_from.is_empty() {
                    c.allowed_senders.clone()
                } else {
                    c.allowed_from.clone()
                }
            });
        let policy = self.routes.for_route(route);
        Submission {
            credential: tx.credential.to_string(),
            from_patterns,
            smtputf8: tx.smtputf8,
            mail_from: tx.mail_from.clone(),
            helo: tx.helo.clone(),
            peer: peer.ip(),
            hostname: self.hostname.clone(),
            tls: tx.tls,
            authenticated: tx.authenticated,
            queue_id: id.to_string(),
            rcpt_to: tx.rcpt_to.clone(),
            refuse_header_only: policy.refuse_header_only,
            strip_control_headers: policy.strip_control_headers,
        }
    }
}

impl MessageSink for Acceptor {
    fn accept<'a>(
        &'a self,
        tx: Transaction,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Result<String, Reply>> + Send + 'a>> {
        Box::pin(Acceptor::accept(self, tx, peer))
    }

    /// Refuses while the spool's file system has less than `min_free_space`
    /// (plus the announced size) available, so a filling disk turns new
    /// mail away before retry records and messages in DATA run out of
    /// room. A file system that cannot be measured does not refuse: the
    /// write itself still fails safely with 452.
    fn check_room(&self, size: u64) -> Result<(), Reply> {
        if self.min_free_space == 0 {
            return Ok(());
        }
        let needed = self.min_free_space.saturating_add(size);
        let Some(free) = self.spool.short_of_space(needed) else {
            return Ok(());
        };
        tracing::warn!(
            free_bytes = free,
            needed_bytes = needed,
            "spool file system below [server] min_free_space; MAIL answered 452"
        );
        Err(Reply::new(452, "4.3.1", "Insufficient system storage").because("storage"))
    }
}
