//! The one-shot commands: each parses its input, does one thing and returns
//! the process exit code (0 success, 1 failure, 2 usage). `run`, the
//! daemon, lives in `daemon`; what these commands compute lives in the
//! stages (`config`, `access`, `dkim`, `dnscheck`); here is only their
//! command-line face. `spool`, `status` and `credential` talk to the
//! running daemon over its control socket (`control`).

mod credential;
mod dkim_keygen;
mod dns_check;
mod spool;
mod status;
mod target;
mod token;

pub use credential::{credential_resume, credential_suspend};
pub use dkim_keygen::dkim_keygen;
pub use dns_check::{DnsCheck, dns_check};
pub use spool::{SpoolAction, spool};
pub use status::status;
pub use target::Target;
pub use token::token_new;

use crate::{access, config};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// `postern check-config`: exit 0 when the configuration (including TLS
/// material) would start, otherwise print every error and exit 1.
pub fn check_config(path: &Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = crate::daemon::tls_for(&config) {
        eprintln!("{}: error: key `tls`: {e}", path.display());
        return ExitCode::from(1);
    }
    println!(
        "config OK: {} ({} file(s), {} listener(s), {} credential(s), {} route(s), {} upstream(s))",
        path.display(),
        config.files.len(),
        config.listeners.len(),
        config.credentials.len(),
        config.routes.len(),
        config.upstreams.len()
    );
    ExitCode::SUCCESS
}

/// `postern hash-secret`: the password is the first line of stdin, so it
/// never appears in shell history or `ps`.
pub fn hash_secret() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("postern: cannot read stdin: {e}");
        return ExitCode::from(1);
    }
    let secret = input.lines().next().unwrap_or("");
    if secret.is_empty() {
        eprintln!(
            "postern: no password on stdin (example: echo -n 'password' | postern hash-secret)"
        );
        return ExitCode::from(1);
    }
    match access::hash_secret(secret) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}
