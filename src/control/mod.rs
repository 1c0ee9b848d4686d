//! The control socket: how `postern spool ...`, `postern status` and
//! `postern credential ...` talk to the running daemon.
//!
//! The daemon listens on `state_dir/control.sock`, a Unix stream socket of
//! mode 0600 (created in a private directory and renamed into place, so it
//! is never reachable with looser permissions), and additionally checks
//! that every peer runs as the daemon's own user or root. It is never
//! exposed on the network. At start a stale socket (no one answering) is
//! removed; a live daemon answering on it stops the start.
//!
//! # Protocol
//!
//! Line-delimited JSON: the client writes one request object on one line
//! (at most 1 MiB, UTF-8, ending in `\n`), the daemon answers with one
//! response object on one line. A connection may carry several requests
//! in turn; the CLI sends one and closes. Requests name a `command`:
//!
//! ```text
//! {"command":"ping"}
//! {"command":"spool_list","dead":false}
//! {"command":"spool_show","id":"0006412E3A1B2C3D4E5F60"}
//! {"command":"spool_retry","ids":["..."],"all_dead":false}
//! {"command":"spool_purge","ids":[],"all_dead":true}
//! {"command":"spool_hold","ids":["..."]}
//! {"command":"spool_release","ids":["..."]}
//! {"command":"status"}
//! {"command":"credential_suspend","name":"erp","for_secs":7200,"reason":"leaked"}
//! {"command":"credential_resume","name":"erp"}
//! ```
//!
//! Answers are `{"ok":true,"result":...}` or `{"ok":false,"error":"text"}`.
//! The results are the types in [`protocol`]: `ping` gives [`Ping`],
//! `spool_list` an array of [`MessageSummary`], `spool_show` a
//! [`MessageView`], the four batch commands a [`BatchResult`] (one entry
//! per id, each `ok` or with its own `error`: a batch is not all or
//! nothing), `status` a [`StatusReport`], and the credential commands the
//! [`Suspension`](crate::access::suspend::Suspension) set or lifted.
//! Unknown fields are ignored and missing optional ones default, so an
//! older CLI keeps working against a newer daemon for what both know.

mod client;
mod handle;
pub use handle::answer;
pub mod protocol;
mod server;
mod view;

pub use client::{ClientError, request};
pub use protocol::{
    AdoptReport, BatchResult, ItemResult, ListenerInfo, LockoutInfo, MessageSummary, MessageView,
    Ping, QueueInfo, Request, Response, StatusReport, UpstreamInfo,
};
pub use server::{BindError, Bound, Context, bind};
pub use view::{summary, view};

use std::path::{Path, PathBuf};

/// The socket's file name in `state_dir`.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 1 << 20;

/// Longest response line the CLI reads (a listing of a very large queue).
pub const MAX_RESPONSE: usize = 512 << 20;

/// Where the daemon whose `state_dir` is `state_dir` listens.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

#[cfg(test)]
mod tests;
