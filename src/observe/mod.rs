//! Logging setup: journald under systemd, JSON for log shippers, text for
//! terminals. Everything else in postern just uses `tracing` macros.

pub mod audit;
pub mod metrics;
pub mod recent;

use crate::config::{Log, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// The open `[log] audit_file`, for the SIGHUP reopen.
static AUDIT_FILE: std::sync::OnceLock<std::sync::Arc<audit::AuditFile>> =
    std::sync::OnceLock::new();

/// Reopens `[log] audit_file` (after logrotate moved it), if there is one.
pub fn reopen_audit_file() {
    if let Some(f) = AUDIT_FILE.get()
        && let Err(e) = f.reopen()
    {
        tracing::error!(error = %e, "cannot reopen the audit file; still writing to the old one");
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured level so an operator can debug without editing the config.
/// Fails only if `[log] audit_file` cannot be opened.
pub fn init(log: &Log) -> std::io::Result<()> {
    if let Err(e) = subscriber(log)?.try_init() {
        eprintln!("postern: logging already initialised: {e}");
    }
    Ok(())
}

type Subscriber = Box<dyn tracing::Subscriber + Send + Sync>;

/// The subscriber `init` installs. Every layer has its own filter, so a
/// callsite none of them wants (the trace and debug events and spans of
/// the HTTP/2, TLS and runtime crates at the default level) is disabled
/// where it stands and costs nothing; one unfiltered layer would enable
/// them all.
fn subscriber(log: &Log) -> std::io::Result<Subscriber> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match log.format {
        // systemd sets JOURNAL_STREAM when stderr is connected to the journal.
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    // Audit events reach the file whatever the level filter says of the rest.
    let audit_layer = match &log.audit_file {
        Some(path) => {
            let file = audit::AuditFile::open(path)?;
            let _ = AUDIT_FILE.set(std::sync::Arc::clone(&file));
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(audit::Writer(file))
                    .with_filter(audit_only()),
            )
        }
        None => None,
    };
    // The level filter applies to the log output only, not the audit file.
    let registry = tracing_subscriber::registry()
        .with(audit_layer)
        .with(recent::Layer.with_filter(audit_only()));
    Ok(match format {
        LogFormat::Journald => match tracing_journald::layer() {
            // Fields become POSTERN_QUEUE_ID, POSTERN_EVENT, ...
            Ok(layer) => Box::new(
                registry.with(
                    layer
                        .with_syslog_identifier("postern".into())
                        .with_field_prefix(Some("POSTERN".into()))
                        .with_filter(filter),
                ),
            ),
            Err(e) => {
                eprintln!("postern: journald unavailable ({e}); logging to stderr");
                Box::new(registry.with(text_layer().with_filter(filter)))
            }
        },
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            ),
        ),
        _ => Box::new(registry.with(text_layer().with_filter(filter))),
    })
}

/// The audit events (target [`audit::TARGET`]) and nothing else.
fn audit_only() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target(audit::TARGET, tracing::Level::INFO)
}

fn text_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_no_layer_wants_is_disabled_at_the_callsite() {
        let log = Log {
            level: "info".to_string(),
            format: LogFormat::Json,
            audit_file: None,
        };
        tracing::subscriber::with_default(subscriber(&log).unwrap(), || {
            assert!(!tracing::enabled!(target: "h2::proto", tracing::Level::DEBUG));
            assert!(!tracing::enabled!(target: "rustls::server", tracing::Level::TRACE));
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
            assert!(tracing::enabled!(tracing::Level::INFO));
            assert!(tracing::enabled!(target: audit::TARGET, tracing::Level::INFO));
        });
    }
}
