//! Shared harness for the integration tests (every module of `tests/it/`
//! uses it). It exists so each test can stand up a complete,
//! private world (test CA, mock HTTPS upstream, a real `postern` process,
//! real SMTP clients) in a few lines, and so every test is isolated from the
//! others (own tempdir, own ports) and can run in parallel.

pub mod ca;
pub mod clients;
pub mod cluster;
pub mod console;
pub mod http;
pub mod load;
pub mod postern;
pub mod postfix;
pub mod smtp;
pub mod systemd;
pub mod upstream;
pub mod util;

pub use ca::TestCa;
pub use clients::{PASSWORD, decode_headers, password_hash, python, swaks};
pub use postern::{Config, Postern};
pub use smtp::{Reply, SmtpClient};
pub use upstream::{MockUpstream, Recorded, Scripted};
pub use util::*;
