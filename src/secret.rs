//! Secret references: `env:NAME`, `file:/path`, `credential:NAME`.
//!
//! Config files get copied into tickets, backups and git repositories, so a
//! secret written literally into one leaks sooner or later. postern refuses
//! literals and resolves a reference at load time, keeping the value in a
//! type whose Debug output is redacted so it cannot reach a log by accident.

use std::fmt;
use std::path::PathBuf;

/// A resolved secret value. Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret written in a unit test, which has no file or environment.
    #[cfg(test)]
    pub(crate) fn for_test(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads the value a reference points to. The error text is meant to follow
/// `key `x`: ` in a config diagnostic.
pub fn resolve(reference: &str) -> Result<Secret, String> {
    let (scheme, rest) = reference.split_once(':').unwrap_or(("", reference));
    let value = match scheme {
        "env" => std::env::var(rest).map_err(|_| {
            format!("environment variable {rest} (from \"env:{rest}\") is not set or not UTF-8")
        })?,
        "file" => read_file(PathBuf::from(rest))?,
        "credential" => {
            if rest.is_empty() || rest.contains('/') {
                return Err(format!("invalid credential name {rest:?}"));
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                format!(
                    "\"credential:{rest}\" needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=)"
                )
            })?;
            read_file(PathBuf::from(dir).join(rest))?
        }
        _ => {
            return Err(
                "literal secrets are not allowed; write env:NAME, file:/path/to/secret or \
                 credential:NAME (systemd LoadCredential=) instead"
                    .to_string(),
            );
        }
    };
    if value.is_empty() {
        return Err(format!("secret from {reference:?} is empty"));
    }
    Ok(Secret(value))
}

fn read_file(path: PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    // A trailing newline from `echo secret > file` is never part of the secret.
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests;
