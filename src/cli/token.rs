//! `postern token new NAME [--expires DATE]`.

use crate::{access, config};
use std::process::ExitCode;

/// `postern token new NAME [--expires DATE]`: the token is printed once on
/// stdout's first line, followed by the TOML block; only the hash is ever
/// stored. With `--expires` the hash goes into `secret_hashes` with that
/// instant, so the token stops working by itself.
pub fn token_new(name: &str, expires: Option<&str>) -> ExitCode {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        eprintln!("postern: credential name must be letters, digits, '-' or '_'");
        return ExitCode::from(2);
    }
    let expires = match expires.map(parse_expiry).transpose() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("postern: --expires: {e}");
            return ExitCode::from(2);
        }
    };
    let result = access::new_token().and_then(|t| access::hash_secret(&t).map(|h| (t, h)));
    match result {
        Ok((token, hash)) => {
            eprintln!(
                "New token for \"{name}\" (shown only once; put it in the application's SMTP password field):"
            );
            println!("{token}");
            println!();
            println!("# add to postern.toml (or a file in conf.d/), then reload:");
            println!("[credentials.{name}]");
            println!("username = \"{name}\"");
            match &expires {
                None => println!("secret_hash = \"{hash}\""),
                Some(at) => {
                    println!(
                        "# to rotate: add the next token's entry here, reload, switch the app, remove this one, reload"
                    );
                    println!("secret_hashes = [");
                    println!("  {{ hash = \"{hash}\", expires = {at} }},");
                    println!("]");
                }
            }
            println!(
                "allowed_senders = [\"{name}@example.com\"]   # adjust: who this application may send as"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}

/// Checks a `--expires` value the way the config will read it and
/// returns it in TOML datetime syntax; a past instant is refused.
fn parse_expiry(text: &str) -> Result<String, String> {
    let dt: toml::value::Datetime = text.trim().parse().map_err(|_| {
        format!("{text:?} is not a date (2027-01-31) or a time with offset (2027-01-31T12:00:00Z)")
    })?;
    let at = config::units::to_system_time(&dt)?;
    if at <= std::time::SystemTime::now() {
        return Err(format!("{text} is in the past"));
    }
    Ok(dt.to_string())
}
