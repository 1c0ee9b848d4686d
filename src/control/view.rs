//! Spool entries as the control protocol shows them, built the same way
//! by the daemon (which adds what delivery knows: being delivered, waiting
//! for a breaker, the due time) and by the CLI reading a stopped daemon's
//! spool directly.

use super::protocol::{MessageSummary, MessageView};
use crate::deliver::MessageState;
use crate::spool::{MessageDetail, Place, SpoolEntry};

/// One listing line. `live` is the running delivery's view of a queued
/// message, if a daemon answered.
pub fn summary(entry: &SpoolEntry, live: Option<MessageState>) -> MessageSummary {
    let env = entry.envelope.as_ref();
    let mut s = MessageSummary {
        id: entry.id.clone(),
        state: String::new(),
        received_at: env.map(|e| e.received_at),
        credential: env.map(|e| e.credential.clone()),
        sender: env.map(|e| e.mail_from.clone()),
        recipients: env.map(|e| e.rcpt_to.clone()).unwrap_or_default(),
        size: env.map(|e| e.size),
        attempts: 0,
        next_attempt: None,
        last_error: None,
        last_upstream: None,
        dead_at: None,
        held_since: entry.held.as_ref().map(|h| h.since),
        error: entry.error.clone(),
    };
    if let Some(r) = &entry.retry {
        s.attempts = r.attempts;
        s.next_attempt = (r.attempts > 0).then_some(r.next_attempt);
        s.last_error = Some(r.last_error.clone()).filter(|e| !e.is_empty());
        s.last_upstream = r.last_upstream.clone();
    }
    if let Some(d) = &entry.dead_reason {
        s.attempts = d.attempts;
        s.last_error = Some(d.reason.clone());
        s.last_upstream = d.last_upstream.clone();
        s.dead_at = Some(d.time);
    }
    s.state = if entry.error.is_some() {
        "unreadable"
    } else if entry.dead_reason.is_some() {
        "dead"
    } else if entry.held.is_some() {
        "held"
    } else {
        match live {
            Some(MessageState::Delivering) => "delivering",
            Some(MessageState::WaitingForBreaker { until }) => {
                s.next_attempt = Some(until);
                "waiting-breaker"
            }
            Some(MessageState::Waiting { due }) => {
                s.next_attempt = Some(due);
                "queued"
            }
            Some(MessageState::Held) => "held",
            None => "queued",
        }
    }
    .to_string();
    if s.state == "held" || s.state == "dead" {
        s.next_attempt = None;
    }
    s
}

/// `spool show` of one message.
pub fn view(detail: MessageDetail, live: Option<MessageState>) -> MessageView {
    let history = match (&detail.retry, &detail.dead_reason) {
        (_, Some(d)) => d.history.clone(),
        (Some(r), None) => r.history.clone(),
        (None, None) => Vec::new(),
    };
    let requeued_at = detail.retry.as_ref().and_then(|r| r.requeued_at);
    let entry = SpoolEntry {
        id: detail.envelope.id.clone(),
        envelope: Some(detail.envelope.clone()),
        error: None,
        retry: detail.retry,
        dead_reason: match detail.place {
            Place::Dead => Some(detail.dead_reason.unwrap_or_default()),
            Place::Queue => None,
        },
        held: detail.held,
    };
    MessageView {
        summary: summary(&entry, live),
        route: detail.envelope.route,
        headers: detail.headers,
        headers_truncated: detail.headers_truncated,
        requeued_at,
        history,
    }
}
