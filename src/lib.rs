//! postern: an SMTP submission relay that forwards mail to HTTPS email APIs.
//!
//! The modules follow one message's path (see README "Architecture"):
//! `smtp` accepts it, `access` decides who may send, `inspect` adds trace
//! headers, `spool` stores it durably, `deliver` hands it to an `upstream`.
//! `config` loads the TOML policy and `observe` sets up logging.

pub mod accept;
pub mod access;
pub mod admin;
pub mod alerts;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod dkim;
pub mod dnscheck;
#[doc(hidden)]
pub mod fuzzing;
pub mod https;
pub mod inspect;
pub mod observe;
pub mod quota;
pub mod secret;
pub mod smtp;
pub mod spool;
pub mod upstream;
pub mod validate;
