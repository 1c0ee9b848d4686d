//! `postern dns-check DOMAIN [--config PATH] [--json] [--resolver IP:PORT]`.

use crate::config::{self, Config};
use crate::dnscheck::{Finding, Status};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Command-line options of `postern dns-check`.
pub struct DnsCheck {
    pub domain: String,
    /// None: the default path, which may be absent.
    pub config: Option<PathBuf>,
    pub json: bool,
    pub resolver: Option<String>,
}

/// Prints the findings; exit 1 if any FAILed.
pub fn dns_check(opts: &DnsCheck) -> ExitCode {
    match run(opts) {
        Ok(findings) => {
            if opts.json {
                match serde_json::to_string_pretty(&findings) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("postern: cannot encode JSON: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                for f in &findings {
                    println!("{f}");
                }
            }
            if findings.iter().any(|f| f.status == Status::Fail) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(opts: &DnsCheck) -> Result<Vec<Finding>, String> {
    let server = opts
        .resolver
        .as_deref()
        .map(crate::validate::parse_resolver)
        .transpose()
        .map_err(|e| format!("--resolver: {e}"))?;
    let config = load_config(opts.config.as_deref())?;
    let mut findings = Vec::new();
    if config.is_none() {
        findings.push(
            Finding::new(
                "config",
                Status::Warn,
                format!(
                    "{} not found: DKIM selectors and upstreams are not checked",
                    config::DEFAULT_PATH
                ),
            )
            .fix("pass --config PATH"),
        );
    }
    findings.extend(crate::dnscheck::check(
        &opts.domain,
        config.as_ref(),
        server,
    )?);
    Ok(findings)
}

/// An explicit `--config` must load; the default path may be missing.
fn load_config(path: Option<&Path>) -> Result<Option<Config>, String> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    if !explicit && !path.exists() {
        return Ok(None);
    }
    config::load(&path).map(Some).map_err(|e| e.to_string())
}
