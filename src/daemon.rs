//! The `run` command: wires config, listeners, spool and delivery together.
//!
//! This is the only place that knows every stage; the stages themselves
//! know nothing of each other (the SMTP side hands messages to a
//! `MessageSink`, the delivery side reads the spool and calls upstreams).

use crate::accept::Acceptor;
use crate::access::{self, Access};
use crate::config::{self, Config, TlsMode};
use crate::deliver::{Delivery, Router};
use crate::inspect;
use crate::smtp::listener::{self, Generation, Shared};
use crate::spool::Spool;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod reload;

/// Why the daemon cannot start, or a reload cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    #[error("tls: {0}")]
    Tls(#[from] crate::smtp::tls::TlsError),
    #[error(transparent)]
    Routes(#[from] crate::deliver::BuildError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error(transparent)]
    Listen(#[from] std::io::Error),
    #[error("reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub(crate) fn tls_for(
    config: &Config,
) -> Result<Option<Arc<rustls::ServerConfig>>, crate::smtp::tls::TlsError> {
    let needed = config.listeners.iter().any(|l| l.tls != TlsMode::None);
    match (&config.tls, needed) {
        (Some(source), true) => {
            crate::smtp::tls::server_config(source, &config.server.hostname).map(Some)
        }
        _ => Ok(None),
    }
}

/// `postern run`: returns the process exit code.
pub fn main(config_path: Option<PathBuf>) -> ExitCode {
    let loaded = match &config_path {
        Some(p) => config::load(p),
        None => config::load_str(Path::new("postern-demo.toml"), &demo_config()),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    crate::observe::init(&config.log);
    if config_path.is_none() {
        tracing::warn!(
            "running the embedded DEMO configuration: 127.0.0.1:2525, user \"demo\", password \"demo-password\"; not for production"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start async runtime");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config, config_path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo_config() -> String {
    config::DEMO_CONFIG.to_string()
}

/// What outlives a configuration generation: the spool and the counters
/// that must survive a reload (quotas, lockouts, known clients, connection
/// rate).
struct Daemon {
    config_path: Option<PathBuf>,
    spool: Arc<Spool>,
    quotas: Arc<crate::quota::Quotas>,
    lockout: Arc<access::lockout::Lockout>,
    known: Arc<access::known::KnownClients>,
    conn_rate: Arc<crate::access::ConnectionRate>,
}

impl Daemon {
    /// Builds everything a configuration determines: the listener side
    /// (policy, TLS, inspection, signing) and the delivery routes. Fails
    /// without side effects, so a bad reload leaves the old one in force.
    fn generation(&self, config: &Config) -> Result<(Generation, Router), StartError> {
        let tls = tls_for(config)?;
        let router = crate::deliver::build_router(config)?;
        let access = Arc::new(
            Access::new(config)
                .with_quotas(Arc::clone(&self.quotas))
                .with_lockout(Arc::clone(&self.lockout))
                .with_known_clients(Arc::clone(&self.known))
                .with_route_limits(router.size_limits()),
        );
        let sink = Arc::new(Acceptor {
            spool: Arc::clone(&self.spool),
            access: Arc::clone(&access),
            hostname: config.server.hostname.clone(),
            inspector: Arc::new(inspect::Inspector::new(config.inspect.clone())),
            signer: Arc::new(crate::dkim::Signer::from_config(&config.dkim)),
            routes: router.accept_policies(),
        });
        Ok((Generation::new(config, access, tls, sink), router))
    }
}

async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), StartError> {
    if matches!(config.tls, Some(config::TlsSource::SelfSigned)) {
        tracing::warn!(
            "TLS uses a throwaway self-signed certificate; clients must not verify it. Configure [tls] certificate/private_key for production"
        );
    }
    let spool = Arc::new(Spool::open(config.server.state_dir.join("spool"))?);
    let (shutdown, _) = tokio::sync::broadcast::channel(1);
    // Hour and day counters live in state_dir so a restart does not hand a
    // runaway application a fresh day.
    let quotas = Arc::new(crate::quota::Quotas::new(
        &config.quota,
        config.server.state_dir.join("quota-state.json"),
    ));
    let mut stop_quota = shutdown.subscribe();
    let persister = tokio::spawn(crate::quota::persist_every(
        Arc::clone(&quotas),
        crate::quota::PERSIST_INTERVAL,
        async move {
            let _ = stop_quota.recv().await;
        },
    ));
    // Which networks logged in as whom: a restart must not forget the
    // application's usual address (it is what exempts it from a username
    // lockout and from the connection rate).
    let known = Arc::new(access::known::KnownClients::new(
        &config.abuse,
        config.server.state_dir.join(access::known::FILE_NAME),
    ));
    let mut stop_known = shutdown.subscribe();
    let known_persister = tokio::spawn(crate::quota::persist_every(
        Arc::clone(&known),
        crate::quota::PERSIST_INTERVAL,
        async move {
            let _ = stop_known.recv().await;
        },
    ));
    let daemon = Daemon {
        config_path,
        spool: Arc::clone(&spool),
        quotas,
        lockout: Arc::new(access::lockout::Lockout::new(&config.abuse)),
        known,
        conn_rate: Arc::new(crate::access::ConnectionRate::new(&config.abuse)),
    };
    let (generation, router) = daemon.generation(&config)?;
    let mut stop = shutdown.subscribe();
    let delivery = Delivery::start(
        Arc::clone(&spool),
        router,
        config.delivery.retry,
        config.delivery.workers,
        async move {
            let _ = stop.recv().await;
        },
    )
    .await?;
    let shared = Shared::new(
        generation,
        config.server.max_connections,
        Some(Arc::clone(&daemon.conn_rate)),
    );
    let bound = listener::bind(&config).await?;
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(1);
    let signals = tokio::spawn(wait_for_signal(shutdown.clone(), reload_tx));
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let grace = config.server.shutdown_timeout;
    let serve = listener::serve(Arc::clone(&shared), bound, shutdown.clone(), grace);
    tokio::pin!(serve);
    let mut running = config;
    loop {
        tokio::select! {
            () = &mut serve => break,
            Some(()) = reload_rx.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                reload::reload(&daemon, &mut running, &shared, &delivery).await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    signals.abort();
    delivery.wait(running.server.shutdown_timeout).await;
    let _ = persister.await;
    let _ = known_persister.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM/SIGINT start the shutdown; SIGHUP asks for a reload (a burst
/// of SIGHUPs while one reload runs collapses into one more).
async fn wait_for_signal(
    shutdown: tokio::sync::broadcast::Sender<()>,
    reload: tokio::sync::mpsc::Sender<()>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => { tracing::info!("SIGHUP: reloading configuration"); let _ = reload.try_send(()); }
        }
    }
    let _ = shutdown.send(());
}
