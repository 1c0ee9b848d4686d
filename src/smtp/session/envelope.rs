//! MAIL, RCPT and DATA: building the envelope, with address validation.
//!
//! Paths are validated from the bytes the client sent (see
//! [`separate_path`]) by `validate::parse_path`, and the normalized form
//! (A-label domains) is what the envelope stores. Recipient checks run
//! cheapest first: syntax, SMTPUTF8, limits and domain patterns here; DNS
//! and the verification hook through [`Step::CheckRecipient`], because
//! they need I/O the session does not do.

use smtp_proto::MailFrom;

use super::{PendingTransaction, Phase, Session, Step, non_ascii_address, too_large};
use crate::smtp::reply::Reply;
use crate::validate::{Address, CheckError, Path, parse_path};

/// What smtp-proto is shown instead of the client's path. It only needs to
/// parse; the session never uses smtp-proto's reading of the address.
const PLACEHOLDER: &[u8] = b"<x@x>";

/// For a MAIL or RCPT line (without its line ending), returns the raw
/// `<...>` path and the line with the path replaced by a placeholder, plus
/// CRLF, ready for smtp-proto. Any other line (or one without a complete
/// path) comes back unchanged and smtp-proto reports the syntax error.
pub(super) fn separate_path(body: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut line = body.to_vec();
    let mut path = None;
    if let Some((start, end)) = path_span(body) {
        path = Some(body[start..end].to_vec());
        line.splice(start..end, PLACEHOLDER.iter().copied());
    }
    line.extend_from_slice(b"\r\n");
    (path, line)
}

/// Byte range of the path in a MAIL/RCPT command: from the first `<` to
/// the `>` that closes it, skipping `>` inside a quoted local part.
fn path_span(body: &[u8]) -> Option<(usize, usize)> {
    let verb = body.trim_ascii_start();
    let is_envelope = verb.len() > 4
        && (verb[..4].eq_ignore_ascii_case(b"MAIL") || verb[..4].eq_ignore_ascii_case(b"RCPT"))
        && matches!(verb[4], b' ' | b'\t');
    if !is_envelope {
        return None;
    }
    let start = body.iter().position(|&b| b == b'<')?;
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate().skip(start + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some((start, i + 1)),
            _ => {}
        }
    }
    None
}

impl Session {
    pub(super) fn mail(
        &mut self,
        from: MailFrom<std::borrow::Cow<'_, str>>,
        path: Option<&[u8]>,
    ) -> Step {
        if self.helo.is_none() {
            return self.reply(Reply::new(503, "5.5.1", "Send EHLO/HELO first"));
        }
        if self.envelope.is_some() {
            return self.reply(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        let (credential, authenticated) = if let Some(grant) = &self.auth {
            if let Err(reply) = self.policy.check_login(grant, self.peer) {
                // Revoked by a reload since AUTH: the client must log in again.
                self.auth = None;
                return self.reply(reply);
            }
            (grant.credential.clone(), true)
        } else if let Some(c) = self.policy.network_credential(self.peer) {
            self.network_credential = Some(c.clone());
            (c, false)
        } else {
            let hint = if self.cfg.starttls && !self.tls {
                " (STARTTLS, then AUTH)"
            } else {
                ""
            };
            return self.reply(Reply::new(
                530,
                "5.7.0",
                format!("Authentication required{hint}"),
            ));
        };
        // Suspended since AUTH (or a networks credential): refused at every
        // MAIL, keeping the session, until an operator resumes it.
        if let Err(reply) = self.policy.check_suspended(&credential) {
            return self.reply(reply);
        }
        let Some(path) = path else {
            return self.reply(syntax("MAIL FROM:<reverse-path> [parameters]"));
        };
        // 5.1.3 for bad syntax in either path, as documented; RFC 3463's
        // sender-specific X.1.7 is rarely handled differently by clients.
        let address = match parse_path(path) {
            Ok(Path::Null) => String::new(),
            Ok(Path::Mailbox(a)) => a.to_string(),
            Err(e) => {
                return self.reply(Reply::new(
                    501,
                    "5.1.3",
                    format!("Invalid sender address: {e}"),
                ));
            }
        };
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !path.is_ascii() {
            return self.reply(non_ascii_address());
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            return self.reply(Reply::new(555, "5.5.4", "BODY=BINARYMIME not supported"));
        }
        let limits = self.policy.limits(&credential);
        let (max_size, size_by) = match limits.max_message_size {
            Some(l) if l.bytes < self.cfg.max_message_size => (l.bytes, Some(l.by)),
            _ => (self.cfg.max_message_size, None),
        };
        if from.size > max_size {
            return self.reply(too_large(size_by.as_deref(), max_size));
        }
        let (max_recipients, recipients_by) = match limits.max_recipients {
            Some(n) if n < self.cfg.max_recipients => (n, Some(n)),
            _ => (self.cfg.max_recipients, None),
        };
        if let Err(reason) = self.policy.check_sender(&credential, &address) {
            return self.reply(Reply::new(550, "5.7.1", reason).because("sender"));
        }
        // A temporary refusal: not counted as a client error.
        if let Err(reply) = self
            .policy
            .check_storage(u64::try_from(from.size).unwrap_or(u64::MAX))
        {
            return Step::Reply(reply);
        }
        let shared = self.policy.shared_quotas();
        // A temporary refusal: not counted as a client error.
        if !shared && let Err(reply) = self.policy.admit_message(&credential, &address, self.peer) {
            return Step::Reply(reply);
        }
        let pending = PendingTransaction {
            id: crate::spool::new_id(),
            credential,
            authenticated,
            max_recipients,
            recipients_by,
            max_size,
            size_by,
            mail_from: address,
            rcpt_to: Vec::new(),
            counted_rcpts: 0,
            body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
        };
        if shared {
            let step = Step::AdmitMessage {
                credential: pending.credential.clone(),
                mail_from: pending.mail_from.clone(),
            };
            self.phase = Phase::AdmittingMessage(Box::new(pending));
            return step;
        }
        self.open_transaction(pending)
    }

    fn open_transaction(&mut self, pending: PendingTransaction) -> Step {
        let reply = Reply::new(250, "2.1.0", format!("Sender <{}> ok", pending.mail_from));
        self.envelope = Some(pending);
        Step::Reply(reply)
    }

    /// Result of the check asked for by [`Step::AdmitMessage`].
    pub fn message_admitted(&mut self, result: Result<(), Reply>) -> Step {
        let Phase::AdmittingMessage(pending) = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return self.out_of_order();
        };
        match result {
            Ok(()) => self.open_transaction(*pending),
            // A temporary refusal: not counted as a client error.
            Err(reply) => Step::Reply(reply),
        }
    }

    /// Result of the check asked for by [`Step::AdmitRecipient`].
    pub fn recipient_admitted(&mut self, result: Result<(), Reply>) -> Step {
        let Phase::AdmittingRecipient(address) = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return self.out_of_order();
        };
        match result {
            Ok(()) => self.recipient_counted(address),
            Err(reply) => self.refuse_rcpt(reply),
        }
    }

    /// A recipient that passed every check so far and was counted.
    fn recipient_counted(&mut self, address: Address) -> Step {
        let needs_check = self.cfg.validation.needs_check;
        let Some(env) = self.envelope.as_mut() else {
            return self.out_of_order();
        };
        env.counted_rcpts = env.counted_rcpts.saturating_add(1);
        if needs_check {
            self.phase = Phase::CheckingRecipient(address.clone());
            return Step::CheckRecipient { address };
        }
        let shown = address.to_string();
        env.rcpt_to.push(shown.clone());
        Step::Reply(recipient_ok(&shown))
    }

    pub(super) fn rcpt(&mut self, path: Option<&[u8]>) -> Step {
        let rules = self.cfg.validation.clone();
        let Some(env) = self.envelope.as_mut() else {
            return self.reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
        };
        let Some(path) = path else {
            return self.reply(syntax("RCPT TO:<forward-path> [parameters]"));
        };
        let address = match parse_path(path) {
            Ok(Path::Mailbox(a)) => a,
            // A relay has no local postmaster to deliver <> or <postmaster> to.
            Ok(Path::Null) => {
                return self.reply(Reply::new(
                    501,
                    "5.1.3",
                    "Empty recipient address not allowed",
                ));
            }
            Err(e) => {
                return self.reply(Reply::new(
                    501,
                    "5.1.3",
                    format!("Invalid recipient address: {e}"),
                ));
            }
        };
        if !env.smtputf8 && !path.is_ascii() {
            return self.reply(non_ascii_address());
        }
        let shown = address.to_string();
        if let Err(e) = rules.check_local_part(&address) {
            return self.reply(
                Reply::new(
                    553,
                    "5.1.3",
                    format!("Recipient <{shown}> not accepted: {e}"),
                )
                .because("local_part"),
            );
        }
        if env.rcpt_to.contains(&shown) {
            return Step::Reply(recipient_ok(&shown));
        }
        if env.rcpt_to.len() >= env.max_recipients {
            let text = match env.recipients_by {
                Some(n) => format!(
                    "Too many recipients (credential \"{}\" allows {n})",
                    env.credential
                ),
                None => "Too many recipients".to_string(),
            };
            return self.refuse_rcpt(Reply::new(452, "4.5.3", text).because("too_many_recipients"));
        }
        if let Err(e) = rules.check_domain(address.domain()) {
            return self.reply(
                Reply::new(
                    550,
                    "5.7.1",
                    format!("Recipient <{shown}> not accepted: {e}"),
                )
                .because("domain"),
            );
        }
        if let Err(reply) = self.policy.check_recipient(&env.credential, &address) {
            return self.refuse_rcpt(reply);
        }
        let Some(env) = self.envelope.as_mut() else {
            return self.out_of_order();
        };
        if self.policy.shared_quotas() {
            let step = Step::AdmitRecipient {
                credential: env.credential.clone(),
                mail_from: env.mail_from.clone(),
            };
            self.phase = Phase::AdmittingRecipient(address);
            return step;
        }
        if let Err(reply) = self
            .policy
            .admit_recipient(&env.credential, &env.mail_from, self.peer)
        {
            return self.refuse_rcpt(reply);
        }
        self.recipient_counted(address)
    }

    /// Result of the check asked for by [`Step::CheckRecipient`].
    pub fn recipient_checked(&mut self, result: Result<(), CheckError>) -> Step {
        let Phase::CheckingRecipient(address) = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return self.out_of_order();
        };
        let Some(env) = self.envelope.as_mut() else {
            return self.out_of_order();
        };
        let shown = address.to_string();
        match result {
            Ok(()) => {
                env.rcpt_to.push(shown.clone());
                Step::Reply(recipient_ok(&shown))
            }
            Err(e) => self.refuse_rcpt(check_reply(&address, &e).because("recipient_check")),
        }
    }

    pub(super) fn data(&mut self) -> Step {
        match &self.envelope {
            None => self.reply(Reply::new(503, "5.5.1", "Need MAIL command first")),
            Some(env) if env.rcpt_to.is_empty() => {
                self.reply(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => {
                self.phase = Phase::Data;
                Step::Data(Reply::bare(354, "End data with <CR><LF>.<CR><LF>"))
            }
        }
    }
}

fn recipient_ok(address: &str) -> Reply {
    Reply::new(250, "2.1.5", format!("Recipient <{address}> ok"))
}

fn syntax(form: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax: {form}"))
}

/// Permanent answers for what will not change on retry, 4xx for a check
/// that could not be made, so the client's queue tries again.
fn check_reply(address: &Address, e: &CheckError) -> Reply {
    let rejected = |code, enhanced| {
        Reply::new(
            code,
            enhanced,
            format!("Recipient <{address}> rejected: {e}"),
        )
    };
    let deferred = || {
        Reply::new(
            if matches!(e, CheckError::DnsUnavailable { .. }) {
                450
            } else {
                451
            },
            "4.4.3",
            format!("Recipient <{address}> deferred: {e}; try again later"),
        )
    };
    match e {
        CheckError::NoSuchDomain { .. } | CheckError::NoMailHost { .. } => rejected(550, "5.1.2"),
        CheckError::NullMx { .. } => rejected(556, "5.1.10"),
        CheckError::Invalid { .. } => rejected(550, "5.1.1"),
        CheckError::DnsUnavailable { .. } | CheckError::HookUnavailable { .. } => deferred(),
    }
}

#[cfg(test)]
mod tests;
