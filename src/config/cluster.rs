//! `[cluster]` and the listeners' PROXY protocol keys, built into
//! `cluster::Settings` and `cluster::proxy::Trusted`.
//!
//! A Redis URL is copied into tickets like the rest of the file, so a
//! password inside it is refused: it belongs in `password`, a secret
//! reference.

use super::error::{ConfigError, ConfigErrors};
use super::load::{File, singleton};
use super::schema::RawListener;
use super::units::Dur;
use crate::cluster::proxy::Trusted;
use crate::cluster::{OnRedisDown, Settings};
use crate::secret;
use ipnet::IpNet;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub redis: Spanned<String>,
    pub password: Option<Spanned<String>>,
    pub node_id: Option<Spanned<String>>,
    pub key_prefix: Option<Spanned<String>>,
    pub expected_nodes: Spanned<u32>,
    pub on_redis_down: Option<OnRedisDown>,
    pub timeout: Option<Spanned<Dur>>,
    pub ca_file: Option<Spanned<String>>,
}

/// How long one Redis call may take before the node falls back to local
/// limits: well under what a client notices in a MAIL reply.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

pub(super) fn build(files: &[File], errors: &mut ConfigErrors) -> Option<Settings> {
    let (f, raw) = singleton(files, "cluster", |r| r.cluster.as_ref(), errors)?;
    let url = raw.redis.get_ref();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok {
        errors.push(ConfigError::new(
            f.loc(&raw.redis),
            "cluster.redis",
            "a Redis URL: \"redis://host:port\" or \"rediss://host:port\" (TLS)",
        ));
        return None;
    }
    // userinfo is what sits between "//" and the first '@' before any '/'.
    let rest = url.split_once("//").map_or("", |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        errors.push(ConfigError::new(
            f.loc(&raw.redis),
            "cluster.redis",
            "no user or password inside the URL: put the password in cluster.password (a secret reference such as \"env:REDIS_PASSWORD\")",
        ));
        return None;
    }
    let password = match &raw.password {
        Some(p) => match secret::resolve(p.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(ConfigError::new(f.loc(p), "cluster.password", e));
                return None;
            }
        },
        None => None,
    };
    let expected_nodes = *raw.expected_nodes.get_ref();
    if expected_nodes == 0 {
        errors.push(ConfigError::new(
            f.loc(&raw.expected_nodes),
            "cluster.expected_nodes",
            "at least 1: the number of nodes sharing the limits (each takes its share when Redis is down)",
        ));
        return None;
    }
    let node_id = match &raw.node_id {
        Some(n) if n.get_ref().is_empty() || n.get_ref().chars().any(|c| c.is_control()) => {
            errors.push(ConfigError::new(
                f.loc(n),
                "cluster.node_id",
                "a non-empty name without control characters",
            ));
            return None;
        }
        Some(n) => n.get_ref().clone(),
        None => super::load::system_hostname(),
    };
    let timeout = match &raw.timeout {
        Some(t) if t.get_ref().0.is_zero() => {
            errors.push(ConfigError::new(
                f.loc(t),
                "cluster.timeout",
                "must be more than zero",
            ));
            return None;
        }
        Some(t) => t.get_ref().0,
        None => DEFAULT_TIMEOUT,
    };
    let ca_file = match &raw.ca_file {
        Some(p) if !url.starts_with("rediss://") => {
            errors.push(ConfigError::new(
                f.loc(p),
                "cluster.ca_file",
                "ca_file is for TLS: use a \"rediss://\" URL, or remove it",
            ));
            return None;
        }
        Some(p) => {
            let path = f.resolve_path(p.get_ref());
            if let Err(reason) = check_ca_file(&path) {
                errors.push(ConfigError::new(
                    f.loc(p),
                    "cluster.ca_file",
                    format!("cannot use {}: {reason}", path.display()),
                ));
                return None;
            }
            Some(path)
        }
        None => None,
    };
    Some(Settings {
        redis: url.clone(),
        ca_file,
        password,
        node_id,
        key_prefix: raw
            .key_prefix
            .as_ref()
            .map_or_else(|| "postern:".to_string(), |p| p.get_ref().clone()),
        expected_nodes,
        on_redis_down: raw.on_redis_down.unwrap_or_default(),
        timeout,
    })
}

/// Whether `path` holds at least one PEM certificate, so a wrong path
/// is a config error at load time rather than a node that never reaches
/// Redis.
fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut found = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        cert.map_err(|e| e.to_string())?;
        found += 1;
    }
    if found == 0 {
        return Err("no PEM certificates found".to_string());
    }
    Ok(())
}

/// The listener's `proxy_protocol` and `trusted_proxies`: None when the
/// listener takes clients directly.
pub(super) fn listener_proxy(
    f: &File,
    l: &RawListener,
    errors: &mut ConfigErrors,
) -> Option<Arc<Trusted>> {
    if !l.proxy_protocol {
        if let Some(t) = &l.trusted_proxies {
            errors.push(ConfigError::new(
                f.loc(t),
                "listeners.trusted_proxies",
                "trusted_proxies without proxy_protocol = true has no effect; remove it or turn proxy_protocol on",
            ));
        }
        return None;
    }
    let Some(list) = &l.trusted_proxies else {
        errors.push(ConfigError::new(
            f.loc(&l.address),
            "listeners.trusted_proxies",
            "proxy_protocol = true needs trusted_proxies: the load balancers' addresses (CIDRs) whose PROXY header is believed",
        ));
        return None;
    };
    let mut nets = Vec::new();
    for s in list.get_ref() {
        match s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(n) => nets.push(n),
            Err(_) => errors.push(ConfigError::new(
                f.loc(list),
                "listeners.trusted_proxies",
                format!("{s:?} is not an address or CIDR (\"10.0.0.0/24\", \"::1\")"),
            )),
        }
    }
    if nets.is_empty() {
        errors.push(ConfigError::new(
            f.loc(list),
            "listeners.trusted_proxies",
            "at least one address or CIDR",
        ));
        return None;
    }
    Some(Arc::new(Trusted::new(nets)))
}

#[cfg(test)]
mod tests;
