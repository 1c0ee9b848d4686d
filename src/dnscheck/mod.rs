//! `postern dns-check DOMAIN`: checks the DNS records receivers use to judge
//! mail from DOMAIN (SPF, DKIM, DMARC) against what postern is configured
//! to send, before the first message bounces or lands in spam.
//!
//! Each check produces [`Finding`]s (`PASS` / `WARN` / `FAIL`, with a fix
//! hint); the command (`cli::dns_check`) prints one line per finding, or
//! JSON for scripts, and exits 1 if anything FAILed. The checks read records through the small
//! [`Txt`] trait so their logic is unit tested without a DNS server; the
//! command itself uses hickory-resolver, optionally pointed at one server
//! with `--resolver`.

mod dkim;
mod dmarc;
mod spf;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

use crate::config::Config;
use crate::validate::dns::{build_resolver, fqdn};

/// How long one DNS query may take before the check reports it as failed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// One result line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn new(check: &str, status: Status, detail: impl Into<String>) -> Finding {
        Finding {
            check: check.to_string(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " [fix: {fix}]")?;
        }
        Ok(())
    }
}

pub(crate) type TxtFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + 'a>>;

/// TXT lookups: `Ok(empty)` when the name or the record does not exist,
/// `Err` when the question could not be answered (timeout, SERVFAIL).
pub(crate) trait Txt: Sync {
    fn txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a>;
}

/// The real resolver. After a query gets no answer at all (timeout, no
/// connection), later queries fail at once instead of each waiting out its
/// own timeout: the server is not going to answer those either.
struct Dns {
    resolver: TokioResolver,
    silent: AtomicBool,
}

impl Txt for Dns {
    fn txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a> {
        Box::pin(async move {
            if self.silent.load(Ordering::Relaxed) {
                return Err("skipped: the DNS server did not answer an earlier query".to_string());
            }
            let lookup = match self.resolver.lookup(fqdn(name), RecordType::TXT).await {
                Ok(l) => l,
                Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
                Err(e) => {
                    if matches!(
                        e,
                        NetError::Timeout | NetError::NoConnections | NetError::Io(_)
                    ) {
                        self.silent.store(true, Ordering::Relaxed);
                    }
                    return Err(e.to_string());
                }
            };
            Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    // A record's character-strings are one value (RFC 7208 §3.3).
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect())
        })
    }
}

/// What the config says about DOMAIN.
#[derive(Default)]
pub(crate) struct Context {
    /// `[[dkim]]` keys whose domain is DOMAIN.
    pub keys: Vec<crate::dkim::Key>,
    /// (upstream name, kind) of every configured upstream.
    pub upstreams: Vec<(String, crate::upstream::Kind)>,
}

fn context(config: &Config, domain: &str) -> Context {
    Context {
        keys: config
            .dkim
            .keys
            .iter()
            .filter(|k| k.domain == domain)
            .cloned()
            .collect(),
        upstreams: config
            .upstreams
            .iter()
            .map(|(name, u)| (name.clone(), u.settings.kind()))
            .collect(),
    }
}

/// Runs every check for `domain` (A-label form).
pub(crate) async fn check_domain(dns: &dyn Txt, domain: &str, ctx: &Context) -> Vec<Finding> {
    let mut out = spf::check(dns, domain, &ctx.upstreams).await;
    out.extend(dkim::check(dns, domain, &ctx.keys).await);
    out.extend(dmarc::check(dns, domain).await);
    out
}

/// Every check for `domain` against what `config` (if any) says postern
/// sends, asking `server` (or the system resolver). Blocking: runs its own
/// runtime, for the command line.
pub fn check(
    domain: &str,
    config: Option<&Config>,
    server: Option<SocketAddr>,
) -> Result<Vec<Finding>, String> {
    let domain = crate::validate::address::normalize_domain(domain)
        .map_err(|e| format!("{domain:?} is not a domain name: {e}"))?;
    let ctx = config.map_or_else(Context::default, |c| context(c, &domain));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start async runtime: {e}"))?;
    runtime.block_on(async {
        let dns = Dns {
            resolver: build_resolver(server, QUERY_TIMEOUT)?,
            silent: AtomicBool::new(false),
        };
        Ok(check_domain(&dns, &domain, &ctx).await)
    })
}

/// `tag=value; tag=value` records (DKIM, DMARC): lower-case tag names,
/// values trimmed; None on a part without `=`.
pub(crate) fn tags(record: &str) -> Option<Vec<(String, String)>> {
    record
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::collections::HashMap;

    /// TXT records by name; names listed in `broken` fail like a SERVFAIL.
    #[derive(Default)]
    pub struct FakeDns {
        pub records: HashMap<String, Vec<String>>,
        pub broken: Vec<String>,
    }

    impl FakeDns {
        pub fn with(mut self, name: &str, value: &str) -> FakeDns {
            self.records
                .entry(name.to_string())
                .or_default()
                .push(value.to_string());
            self
        }
    }

    impl Txt for FakeDns {
        fn txt<'a>(&'a self, name: &'a str) -> TxtFuture<'a> {
            let result = if self.broken.iter().any(|b| b == name) {
                Err("SERVFAIL".to_string())
            } else {
                Ok(self.records.get(name).cloned().unwrap_or_default())
            };
            Box::pin(async move { result })
        }
    }

    pub fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("test runtime")
            .block_on(f)
    }
}

#[cfg(test)]
mod tests;
