//! Configuration errors that point at the exact place an operator must fix.
//!
//! Operators edit TOML by hand, often over ssh at 3 a.m.; an error that says
//! only "invalid config" costs them an hour. Every error carries the file,
//! line, column and key, formatted like a compiler diagnostic so editors and
//! `grep -n` habits work.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in one configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    /// Converts a byte offset in `source` into a 1-based line and column.
    pub fn from_offset(file: &Arc<Path>, source: &str, offset: usize) -> Loc {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        Loc {
            file: Arc::clone(file),
            line,
            col,
        }
    }

    /// The start of a file, for errors about the file as a whole.
    pub fn file_start(file: &Arc<Path>) -> Loc {
        Loc {
            file: Arc::clone(file),
            line: 1,
            col: 1,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub loc: Loc,
    /// Dotted key path, e.g. `credentials.erp.route`; empty for file-level errors.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(loc: Loc, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            loc,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: error: {}", self.loc, self.message)
        } else {
            write!(
                f,
                "{}: error: key `{}`: {}",
                self.loc, self.key, self.message
            )
        }
    }
}

/// Every error found while loading; loading reports all of them at once so
/// the operator fixes a file in one pass instead of one error per restart.
#[derive(Debug, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn single(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
    /// An error that concerns a file as a whole (unreadable, missing).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        let file: Arc<Path> = Arc::from(path.to_path_buf().into_boxed_path());
        Self::single(ConfigError::new(Loc::file_start(&file), "", message))
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns a TOML syntax or schema error into a located error. toml's own
/// message does not always name the key, so when the span points into a
/// `key = value` line the key is taken from the source text.
pub fn from_toml(
    file: &Arc<Path>,
    source: &str,
    err: &toml::de::Error,
    table: &str,
) -> ConfigError {
    let offset = err.span().map_or(0, |s| s.start);
    let loc = Loc::from_offset(file, source, offset);
    let line_text = source.lines().nth(loc.line.saturating_sub(1)).unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .map(|k| {
            if table.is_empty() {
                k
            } else {
                format!("{table}.{k}")
            }
        })
        .unwrap_or_default();
    let message = err.message().trim().replace('\n', " ");
    ConfigError::new(loc, key, message)
}

/// Path of the table a line belongs to, from the nearest `[header]` above it;
/// lets a schema error inside `[credentials.erp]` name `credentials.erp.key`.
pub fn table_at(source: &str, line: usize) -> String {
    source
        .lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            let inner = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
            inner.or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
        })
        .last()
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn path_arc(p: &Path) -> Arc<Path> {
    Arc::from(PathBuf::from(p).into_boxed_path())
}

#[cfg(test)]
mod tests;
