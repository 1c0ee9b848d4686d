//! `postern dkim keygen`: writes the key and prints what to publish.

use crate::dkim::{KeygenError, KeygenRequest, keygen};
use std::process::ExitCode;

/// The CLI command: prints the record and config block on stdout, the file
/// written on stderr. Exit 0 on success, 1 on failure, 2 on bad arguments.
pub fn dkim_keygen(req: &KeygenRequest<'_>) -> ExitCode {
    match keygen(req) {
        Ok(g) => {
            eprintln!(
                "Wrote {} private key {} (mode 0600).",
                g.algorithm,
                g.path.display()
            );
            println!("; DNS: publish this TXT record in the {} zone", g.domain);
            println!("{}", g.zone_record());
            println!("; the same value on one line, for DNS provider web forms:");
            println!("; {}", g.txt_value);
            println!();
            println!("# postern.toml (or a file in conf.d/): add, then restart postern");
            print!("{}", g.config_snippet());
            ExitCode::SUCCESS
        }
        Err(e @ KeygenError::Usage(_)) => {
            eprintln!("postern: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}
