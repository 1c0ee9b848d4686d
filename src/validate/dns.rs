//! "Does this domain take mail?": MX, else A/AAAA (RFC 5321 §5.1 implicit
//! MX), through hickory-resolver.
//!
//! The answer has three outcomes, not two, because they mean different
//! things to the client: a domain that does not exist will never exist on
//! retry (5xx), while a resolver that timed out or failed says nothing about
//! the domain (4xx, try later). hickory's cache keeps positive and negative
//! answers for their TTL, so a batch of mail to one domain costs one lookup.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::CheckError;

/// Builds a resolver that asks `server` (UDP, then TCP for truncated
/// answers), or the system's resolvers from /etc/resolv.conf.
pub fn build_resolver(
    server: Option<SocketAddr>,
    timeout: Duration,
) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
        }
        None => Resolver::builder(provider)
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
    };
    // One try per query: the UDP client already retransmits within the
    // timeout, and callers bound the whole check anyway.
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 0;
    builder
        .build()
        .map_err(|e| format!("cannot set up the DNS resolver: {e}"))
}

/// Fully qualified, so a search list in resolv.conf never turns
/// `example.com` into `example.com.corp.local`.
pub(crate) fn fqdn(domain: &str) -> String {
    format!("{}.", domain.trim_end_matches('.'))
}

/// Checks recipient domains; one per daemon, shared by all sessions.
pub struct DomainChecker {
    resolver: Result<TokioResolver, String>,
    timeout: Duration,
}

/// What one lookup said.
enum Answer {
    Records(Vec<RData>),
    /// NOERROR with no records of the type: the name exists.
    NoData,
    NxDomain,
}

impl DomainChecker {
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> DomainChecker {
        let resolver = build_resolver(server, timeout);
        if let Err(e) = &resolver {
            tracing::error!(error = %e, "recipient domain checks will answer 450 until this is fixed");
        }
        DomainChecker { resolver, timeout }
    }

    /// Ok when `domain` (A-label form) can receive mail.
    pub async fn check(&self, domain: &str) -> Result<(), CheckError> {
        let unavailable = |reason: String| CheckError::DnsUnavailable {
            domain: domain.to_string(),
            reason,
        };
        let resolver = self.resolver.as_ref().map_err(|e| unavailable(e.clone()))?;
        match tokio::time::timeout(self.timeout, lookup_mail_host(resolver, domain)).await {
            Ok(result) => result,
            Err(_) => Err(unavailable(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }
}

async fn lookup_mail_host(resolver: &TokioResolver, domain: &str) -> Result<(), CheckError> {
    let name = fqdn(domain);
    let unavailable = |e: NetError| CheckError::DnsUnavailable {
        domain: domain.to_string(),
        reason: e.to_string(),
    };
    match lookup(resolver, &name, RecordType::MX)
        .await
        .map_err(unavailable)?
    {
        Answer::NxDomain => {
            return Err(CheckError::NoSuchDomain {
                domain: domain.to_string(),
            });
        }
        Answer::Records(mx) => {
            // RFC 7505: a single "MX 0 ." says the domain takes no mail.
            let null = mx.iter().all(|r| match r {
                RData::MX(mx) => mx.exchange.is_root(),
                _ => false,
            });
            return if null {
                Err(CheckError::NullMx {
                    domain: domain.to_string(),
                })
            } else {
                Ok(())
            };
        }
        Answer::NoData => {}
    }
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Answer::Records(_) = lookup(resolver, &name, rtype).await.map_err(unavailable)? {
            return Ok(());
        }
    }
    Err(CheckError::NoMailHost {
        domain: domain.to_string(),
    })
}

async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    rtype: RecordType,
) -> Result<Answer, NetError> {
    match resolver.lookup(name, rtype).await {
        Ok(lookup) => {
            // CNAMEs on the way are kept in the answer; only the asked type counts.
            let records: Vec<RData> = lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| r.data.clone())
                .collect();
            Ok(if records.is_empty() {
                Answer::NoData
            } else {
                Answer::Records(records)
            })
        }
        Err(e) if e.is_nx_domain() => Ok(Answer::NxDomain),
        Err(e) if e.is_no_records_found() => Ok(Answer::NoData),
        Err(e) => Err(e),
    }
}
