//! How much a session tolerates before it hangs up: client errors
//! (`max_bad_commands`), commands that move no mail (`max_junk_commands`)
//! and RCPT commands over the whole session (`max_rcpt_commands`). Each
//! keeps a client from holding a connection open doing nothing useful, or
//! probing addresses in RSET loops; all end in `421 4.7.0`.

use super::{Phase, Session, Step};
use crate::smtp::reply::Reply;

impl Session {
    /// Wraps a reply, counting client-caused 5xx and hanging up once the
    /// client exceeds `max_bad_commands`.
    pub(super) fn reply(&mut self, reply: Reply) -> Step {
        if reply.is_permanent_failure() {
            return self.bad(reply);
        }
        Step::Reply(reply)
    }

    /// Counts a bad command answered with `reply`, or hangs up with
    /// `421 4.7.0` when it is one too many.
    pub(super) fn bad(&mut self, reply: Reply) -> Step {
        self.bad_commands = self.bad_commands.saturating_add(1);
        if self.bad_commands > self.cfg.max_bad_commands {
            self.phase = Phase::Closed;
            let host = &self.cfg.hostname;
            return Step::Close(Reply::new(
                421,
                "4.7.0",
                format!("{host} Too many errors, closing connection"),
            ));
        }
        Step::Reply(reply)
    }

    /// Answers a command that moves no mail; beyond `max_junk_commands`
    /// each one is also a bad command.
    pub(super) fn junk(&mut self, reply: Reply) -> Step {
        self.junk_commands = self.junk_commands.saturating_add(1);
        if self.junk_commands > self.cfg.max_junk_commands {
            return self.bad(reply);
        }
        Step::Reply(reply)
    }

    /// The answer to HELO/EHLO: junk when the client had greeted already.
    pub(super) fn greeted(&mut self, repeated: bool, reply: Reply) -> Step {
        if repeated {
            self.junk(reply)
        } else {
            Step::Reply(reply)
        }
    }

    /// Every RCPT counts toward the session's `max_rcpt_commands`, however
    /// its transaction ends, so RSET or EHLO loops cannot probe addresses
    /// without end.
    pub(super) fn rcpt_command(&mut self, path: Option<&[u8]>) -> Step {
        self.rcpt_commands = self.rcpt_commands.saturating_add(1);
        if self.rcpt_commands > self.cfg.max_rcpt_commands {
            self.phase = Phase::Closed;
            let host = &self.cfg.hostname;
            return Step::Close(Reply::new(
                421,
                "4.7.0",
                format!("{host} Too many RCPT commands in one session, closing connection"),
            ));
        }
        self.rcpt(path)
    }

    /// A refused recipient, temporary (450/451/452) or not, is a bad
    /// command: a client repeating refused RCPTs is probing or broken.
    pub(super) fn refuse_rcpt(&mut self, reply: Reply) -> Step {
        if reply.is_positive() {
            return Step::Reply(reply);
        }
        self.bad(reply)
    }
}
