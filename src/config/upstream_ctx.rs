//! The checking context every `[upstreams.NAME]` kind is validated with:
//! one way to read a key (and note that the kind uses it), name it, report
//! it at its line, demand it, resolve a secret reference and read the
//! endpoint keys common to every HTTPS kind, so all kinds word their errors
//! the same.
//!
//! There is no table of which kind accepts which key: a kind accepts what
//! its builder reads through [`Ctx::take`], and [`Ctx::strays`] reports
//! every other key of the table as "not an option of kind = ...".

use super::error::{ConfigError, ConfigErrors, Loc};
use super::schema::RawUpstream;
use crate::https::Endpoint;
use crate::secret::{self, Secret};
use crate::upstream::Kind;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) type LocFn<'a> = &'a dyn Fn(&Spanned<String>) -> Loc;

/// What every check needs: the table, how to name keys, where errors go.
pub(super) struct Ctx<'a> {
    pub(super) name: &'a str,
    pub(super) kind: Kind,
    pub(super) table: Loc,
    pub(super) raw: &'a RawUpstream,
    /// The keys the table sets, as written.
    pub(super) present: &'a [String],
    /// The keys the kind's builder read.
    pub(super) used: Vec<&'static str>,
    pub(super) resolve: &'a dyn Fn(&str) -> PathBuf,
    pub(super) loc: LocFn<'a>,
    pub(super) errors: &'a mut ConfigErrors,
}

impl Ctx<'_> {
    /// Reads key `k` (the field `v` of the raw table) for this kind.
    pub(super) fn take<'r, T>(&mut self, k: &'static str, v: &'r Option<T>) -> Option<&'r T> {
        self.used.push(k);
        v.as_ref()
    }

    /// Every key the table sets that no builder read.
    pub(super) fn strays(&mut self) {
        let strays: Vec<String> = self
            .present
            .iter()
            .filter(|k| !self.used.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in strays {
            let message = format!("`{k}` is not an option of kind = {:?}", self.kind.name());
            self.error(self.table.clone(), &k, message);
        }
    }

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
        let message = format!("kind = {:?} needs `{k}`", self.kind.name());
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

    /// Key `k`, a secret reference that must be present.
    pub(super) fn required_secret(
        &mut self,
        k: &'static str,
        v: &Option<Spanned<String>>,
    ) -> Option<Secret> {
        let Some(v) = self.take(k, v) else {
            self.missing(k);
            return None;
        };
        self.secret(v, k)
    }

    /// Key `k`, an optional secret reference.
    pub(super) fn optional_secret(
        &mut self,
        k: &'static str,
        v: &Option<Spanned<String>>,
    ) -> Option<Secret> {
        let v = self.take(k, v)?;
        self.secret(v, k)
    }

    /// Key `k`, a required value passing `check` (trimmed).
    pub(super) fn text(
        &mut self,
        k: &'static str,
        v: &Option<Spanned<String>>,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let Some(v) = self.take(k, v) else {
            self.missing(k);
            return None;
        };
        self.checked(v, k, check)
    }

    /// Key `k` when set: `Ok(None)` if absent, `Err` if it fails `check`.
    pub(super) fn optional_text(
        &mut self,
        k: &'static str,
        v: &Option<Spanned<String>>,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<Option<String>, ()> {
        match self.take(k, v) {
            None => Ok(None),
            Some(v) => self.checked(v, k, check).map(Some).ok_or(()),
        }
    }

    fn checked(
        &mut self,
        v: &Spanned<String>,
        k: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
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
    pub(super) fn endpoint_at(&mut self, base_url: String) -> Endpoint {
        let raw = self.raw;
        let timeout = self.take("timeout", &raw.timeout).map(|d| d.0);
        let ca_file = self.ca_file();
        Endpoint {
            base_url,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            ca_file,
        }
    }

    /// `ca_file`, which must be readable.
    pub(super) fn ca_file(&mut self) -> Option<PathBuf> {
        let raw = self.raw;
        let c = self.take("ca_file", &raw.ca_file)?;
        let p = (self.resolve)(c.get_ref());
        if let Err(e) = std::fs::File::open(&p) {
            self.error_at(c, "ca_file", format!("cannot read {}: {e}", p.display()));
        }
        Some(p)
    }
}
