//! AUTH: the exchange, the per-connection attempt limit, the result.
//!
//! Only over TLS, never during a transaction, once per session. The
//! password check itself is the listener's job ([`Step::Auth`]); the
//! session only learns the outcome through [`Session::auth_result`].

use super::{Grant, Phase, Session, Step};
use crate::smtp::reply::Reply;
use crate::smtp::sasl;

impl Session {
    /// Result of the verification asked for by [`Step::Auth`]: the grant,
    /// or the refusal (`535 5.7.8`, `454 4.7.0` during a lockout).
    pub fn auth_result(&mut self, result: Result<Grant, Reply>) -> Step {
        if !matches!(self.phase, Phase::AuthVerifying) {
            return self.out_of_order();
        }
        self.phase = Phase::Command;
        match result {
            Ok(grant) => {
                self.auth = Some(grant);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"))
            }
            Err(reply) => self.reply(reply),
        }
    }

    pub(super) fn auth(&mut self, mechanism: u64, initial_response: &str) -> Step {
        let refusal = if self.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "Send EHLO first"))
        } else if !self.tls {
            Some(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            ))
        } else if self.auth.is_some() {
            Some(Reply::new(503, "5.5.1", "Already authenticated"))
        } else if self
            .cfg
            .max_auth_attempts
            .is_some_and(|max| self.auth_attempts >= max)
        {
            self.phase = Phase::Closed;
            return Step::Close(Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} Too many AUTH attempts, closing connection",
                    self.cfg.hostname
                ),
            ));
        } else if self.envelope.is_some() {
            Some(Reply::new(
                503,
                "5.5.1",
                "AUTH not permitted during a mail transaction",
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            return self.reply(reply);
        }
        self.sasl(sasl::start(mechanism, initial_response))
    }

    /// A base64 line inside an AUTH exchange.
    pub(super) fn auth_line(&mut self, line: &[u8]) -> Step {
        let Phase::Auth(wait) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return self.out_of_order();
        };
        self.sasl(sasl::respond(wait, line))
    }

    fn sasl(&mut self, outcome: sasl::SaslStep) -> Step {
        match outcome {
            sasl::SaslStep::Continue(wait, challenge) => {
                self.phase = Phase::Auth(wait);
                Step::Reply(challenge)
            }
            sasl::SaslStep::Verify { username, secret } => {
                // Only exchanges that reach a password check count: a client
                // trying CRAM-MD5 before PLAIN is not guessing.
                self.auth_attempts = self.auth_attempts.saturating_add(1);
                self.phase = Phase::AuthVerifying;
                Step::Auth { username, secret }
            }
            sasl::SaslStep::Refuse(reply) => {
                self.phase = Phase::Command;
                self.reply(reply)
            }
        }
    }
}
