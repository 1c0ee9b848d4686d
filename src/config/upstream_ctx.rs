//! The checking context shared by the provider kinds (`upstream_api`,
//! `upstream_oauth`): one way to name a key, report it at its line, demand
//! it, resolve a secret reference and read the endpoint keys common to every
//! HTTPS provider, so all kinds word their errors the same.

use super::ApiEndpoint;
use super::error::{ConfigError, ConfigErrors, Loc};
use super::schema::RawUpstream;
use crate::secret::{self, Secret};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) type LocFn<'a> = &'a dyn Fn(&Spanned<String>) -> Loc;

/// What every check needs: the table, how to name keys, where errors go.
pub(super) struct Ctx<'a> {
    pub(super) name: &'a str,
    pub(super) kind: &'a str,
    pub(super) table: Loc,
    pub(super) raw: &'a RawUpstream,
    pub(super) resolve: &'a dyn Fn(&str) -> PathBuf,
    pub(super) loc: LocFn<'a>,
    pub(super) errors: &'a mut ConfigErrors,
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, loc: Loc, k: &str, message: impl Into<String>) {
        let key = format!("upstreams.{}.{k}", self.name);
        self.errors.push(ConfigError::new(loc, key, message));
    }

    /// An error at the line of `value`.
    pub(super) fn error_at(
        &mut self,
        value: &Spanned<String>,
        k: &str,
        message: impl Into<String>,
    ) {
        let loc = (self.loc)(value);
        self.error(loc, k, message);
    }

    pub(super) fn missing(&mut self, k: &str) {
        let message = format!("kind = {:?} needs `{k}`", self.kind);
        self.error(self.table.clone(), k, message);
    }

    /// A secret reference (`file:`, `env:`); a literal is refused.
    pub(super) fn secret(&mut self, v: &Spanned<String>, k: &str) -> Option<Secret> {
        match secret::resolve(v.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error_at(v, k, e);
                None
            }
        }
    }

    /// A secret reference that must be present.
    pub(super) fn required_secret(
        &mut self,
        v: Option<&Spanned<String>>,
        k: &str,
    ) -> Option<Secret> {
        let Some(v) = v else {
            self.missing(k);
            return None;
        };
        self.secret(v, k)
    }

    /// A required value passing `check` (trimmed).
    pub(super) fn text(
        &mut self,
        v: Option<&Spanned<String>>,
        k: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let Some(v) = v else {
            self.missing(k);
            return None;
        };
        let t = v.get_ref().trim();
        match check(t) {
            Ok(()) => Some(t.to_string()),
            Err(e) => {
                self.error_at(v, k, e);
                None
            }
        }
    }

    /// `base_url` (already checked by the kind) with this table's `ca_file`
    /// (which must be readable) and `timeout`.
    pub(super) fn endpoint_at(&mut self, base_url: String) -> ApiEndpoint {
        let raw = self.raw;
        let ca_file = raw.ca_file.as_ref().map(|c| {
            let p = (self.resolve)(c.get_ref());
            if let Err(e) = std::fs::File::open(&p) {
                self.error_at(c, "ca_file", format!("cannot read {}: {e}", p.display()));
            }
            p
        });
        ApiEndpoint {
            base_url,
            timeout: raw.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            ca_file,
        }
    }
}
