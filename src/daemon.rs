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
mod systemd;

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
    #[error(transparent)]
    Suspensions(#[from] access::suspend::LoadError),
    #[error(transparent)]
    Control(#[from] crate::control::BindError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("task failed: {0}")]
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
    // SAFETY: the first thing `postern run` does; nothing has started a
    // thread yet (the audit file's syncer, the runtime and the spool
    // writers all start below).
    let handover = unsafe { systemd::Handover::take() };
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
    if let Err(e) = crate::observe::init(&config.log) {
        eprintln!(
            "postern: cannot open log.audit_file {}: {e}",
            config
                .log
                .audit_file
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
        return ExitCode::from(1);
    }
    if config_path.is_none() {
        tracing::warn!(
            "running the embedded DEMO configuration: 127.0.0.1:2525, user \"demo\", password \"demo-password\", console on http://127.0.0.1:8025; not for production"
        );
    }
    return_large_blocks_to_the_os();
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
    // The daemon runs as a task on the workers, not in `block_on` on this
    // thread: the serve loop takes every new connection and every finished
    // one, and on this thread each of those would be a wake-up of a
    // parked thread (about one context switch per connection).
    let daemon = runtime.spawn(run(config, config_path, handover));
    match runtime
        .block_on(daemon)
        .map_err(StartError::from)
        .and_then(|r| r)
    {
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
/// rate, credential suspensions).
struct Daemon {
    config_path: Option<PathBuf>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    spool: Arc<Spool>,
    quotas: Arc<crate::quota::Quotas>,
    lockout: Arc<access::lockout::Lockout>,
    known: Arc<access::known::KnownClients>,
    conn_rate: Arc<crate::access::ConnectionRate>,
    suspensions: Arc<access::suspend::Suspensions>,
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
                .with_suspensions(Arc::clone(&self.suspensions))
                .with_cluster(self.cluster.clone())
                .with_route_limits(router.size_limits()),
        );
        let sink = Arc::new(Acceptor {
            spool: Arc::clone(&self.spool),
            access: Arc::clone(&access),
            hostname: config.server.hostname.clone(),
            inspector: Arc::new(inspect::Inspector::new(config.inspect.clone())),
            signer: Arc::new(crate::dkim::Signer::from_config(&config.dkim)),
            routes: router.accept_policies(),
            min_free_space: config.server.min_free_space,
        });
        Ok((Generation::new(config, access, tls, sink), router))
    }
}

async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    mut handover: systemd::Handover,
) -> Result<(), StartError> {
    if matches!(config.tls, Some(config::TlsSource::SelfSigned)) {
        tracing::warn!(
            "TLS uses a throwaway self-signed certificate; clients must not verify it. Configure [tls] certificate/private_key for production"
        );
    }
    // Installed before anything counts; without [admin] nothing records.
    let metrics = config
        .admin
        .as_ref()
        .and_then(|_| crate::observe::metrics::install());
    let spool = Arc::new(Spool::open(config.server.state_dir.join("spool"))?);
    // Bound now, answered once delivery runs: a second daemon on this
    // state_dir stops here, and clients wait in the backlog meanwhile.
    let control = crate::control::bind(&config.server.state_dir)?;
    // Refuses to start on an unreadable record rather than lift every
    // suspension by accident.
    let suspensions = Arc::new(access::suspend::Suspensions::load(
        config.server.state_dir.join(access::suspend::FILE_NAME),
    )?);
    if !suspensions.active().is_empty() {
        tracing::warn!(
            credentials = %suspensions.active().iter().map(|s| s.credential.as_str()).collect::<Vec<_>>().join(", "),
            "credentials suspended (postern credential resume NAME lifts it)"
        );
    }
    // From here on the runtime and the spool writers run, and recovering a
    // large queue below may take a while: the watchdog covers that too.
    if let Some(timeout) = handover.watchdog {
        systemd::start_watchdog(timeout, Arc::clone(&spool))?;
    }
    let (shutdown, _) = tokio::sync::broadcast::channel(1);
    // Hour and day counters live in state_dir so a restart does not hand a
    // runaway application a fresh day.
    // [cluster]: Redis, connected lazily (a node starts on local limits
    // while Redis is unreachable).
    let cluster = match &config.cluster {
        Some(settings) => {
            let c = Arc::new(crate::cluster::Cluster::new(settings)?);
            tracing::info!(node = %settings.node_id, expected_nodes = settings.expected_nodes, "cluster: limits shared through Redis");
            Some(c)
        }
        None => None,
    };
    let quotas = crate::quota::Quotas::new(
        &config.quota,
        config.server.state_dir.join("quota-state.json"),
    );
    let quotas = Arc::new(match &cluster {
        Some(c) => quotas.with_cluster(Arc::clone(c), &config.quota),
        None => quotas,
    });
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
    let suspension_sync = cluster.as_ref().map(|c| {
        let mut stop = shutdown.subscribe();
        tokio::spawn(crate::cluster::suspend::sync_every(
            Arc::clone(c),
            Arc::clone(&suspensions),
            async move {
                let _ = stop.recv().await;
            },
        ))
    });
    let console_live: crate::admin::console::LiveSlot = Arc::default();
    let demo = config_path.is_none();
    let mut demo_console = None;
    let console_config_path = config_path.clone();
    let daemon = Daemon {
        config_path,
        cluster: cluster.clone(),
        spool: Arc::clone(&spool),
        quotas,
        lockout: Arc::new(access::lockout::Lockout::new(&config.abuse)),
        known,
        conn_rate: Arc::new(crate::access::ConnectionRate::new(&config.abuse)),
        suspensions: Arc::clone(&suspensions),
    };
    let (generation, router) = daemon.generation(&config)?;
    crate::alerts::configure(config.alerts.as_ref());
    crate::alerts::set_cluster(cluster.clone());
    crate::alerts::set_suspend_hook(suspend_hook(Arc::clone(&suspensions), cluster.clone()));
    let queue_age = tokio::spawn(check_queue_age(Arc::clone(&spool)));
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
    let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = match (&config.admin, metrics) {
        (Some(settings), Some(metrics)) => {
            let tls = match &config.tls {
                Some(source) if settings.https => Some(crate::smtp::tls::server_config(
                    source,
                    &config.server.hostname,
                )?),
                _ => None,
            };
            let health = Arc::new(Readiness {
                spool: Arc::clone(&spool),
                delivery: delivery.status(),
                listening: Arc::clone(&listening),
                cluster: cluster.clone(),
            });
            let admin = crate::admin::Admin::bind(
                settings,
                tls,
                metrics,
                health,
                Arc::clone(&console_live),
            )
            .await?;
            tracing::info!(address = %admin.local_addr()?, https = settings.https, "admin listener");
            if demo {
                demo_console = admin.console();
            }
            Some(tokio::spawn(admin.serve()))
        }
        _ => None,
    };
    // After the admin listener, so a probe that finds SMTP up finds it too.
    let bound = listener::bind(&config, handover.inherited()).await?;
    let context = Arc::new(crate::control::Context {
        queue: delivery.control(),
        spool: Arc::clone(&spool),
        shared: Arc::clone(&shared),
        suspensions: Arc::clone(&suspensions),
        lockout: Arc::clone(&daemon.lockout),
        quotas: Arc::clone(&daemon.quotas),
        cluster: cluster.clone(),
        listeners: bound
            .iter()
            .map(|b| crate::control::ListenerInfo {
                address: b.address.to_string(),
                tls: match b.tls {
                    TlsMode::Starttls => "starttls",
                    TlsMode::Implicit => "implicit",
                    TlsMode::None => "none",
                }
                .to_string(),
            })
            .collect(),
        state_dir: config.server.state_dir.clone(),
        started: std::time::Instant::now(),
    });
    tracing::info!(socket = %control.path().display(), "control socket");
    let mut stop_control = shutdown.subscribe();
    let control = tokio::spawn(control.serve(Arc::clone(&context), async move {
        let _ = stop_control.recv().await;
    }));
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel(1);
    let _ = console_live.set(crate::admin::console::Live {
        control: Arc::clone(&context),
        reload: reload_tx.clone(),
        config_path: console_config_path,
        tls_certificate: match &config.tls {
            Some(config::TlsSource::Files { certificate, .. }) => Some(certificate.clone()),
            _ => None,
        },
    });
    // The demo's one-time link goes to the terminal only, never to a log:
    // it signs in as admin. Printed once the console can answer.
    if let Some(console) = demo_console {
        eprintln!(
            "\n  postern console: open {}\n  (a one-time sign-in link, valid until used)\n",
            console.demo_link()
        );
    }
    // Installed here, before READY=1: a SIGHUP that arrives before its
    // handler exists takes the default action and kills the process.
    let handlers = signal_handlers()?;
    let signals = tokio::spawn(wait_for_signal(handlers, shutdown.clone(), reload_tx));
    // The spool was recovered (Delivery::start) and every listener is
    // bound: connections from now on queue in the backlog until the serve
    // loop takes them.
    systemd::ready();
    let status = tokio::spawn(systemd::report_status(delivery.status()));
    let grace = config.server.shutdown_timeout;
    let serve = listener::serve(Arc::clone(&shared), bound, shutdown.clone(), grace);
    tokio::pin!(serve);
    // The sockets are bound and listening: connections queue until the
    // serve loop takes them.
    listening.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut running = config;
    loop {
        tokio::select! {
            () = &mut serve => break,
            Some(()) = reload_rx.recv() => {
                systemd::reloading();
                reload::reload(&daemon, &mut running, &shared, &delivery).await;
                // Also after a refused reload: the previous configuration
                // is still serving.
                systemd::ready();
            }
        }
    }
    status.abort();
    listening.store(false, std::sync::atomic::Ordering::Relaxed);
    signals.abort();
    delivery.wait(running.server.shutdown_timeout).await;
    let _ = persister.await;
    let _ = known_persister.await;
    if let Some(sync) = suspension_sync {
        let _ = sync.await;
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    queue_age.abort();
    // Ends with the shutdown broadcast; the socket file goes with it.
    let _ = control.await;
    tracing::info!("stopped");
    Ok(())
}

type SignalHandlers = [tokio::signal::unix::Signal; 3];

/// SIGTERM, SIGINT and SIGHUP, in that order.
fn signal_handlers() -> std::io::Result<SignalHandlers> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok([
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
        signal(SignalKind::hangup())?,
    ])
}

/// SIGTERM/SIGINT start the shutdown; SIGHUP asks for a reload (a burst
/// of SIGHUPs while one reload runs collapses into one more).
async fn wait_for_signal(
    [mut term, mut int, mut hup]: SignalHandlers,
    shutdown: tokio::sync::broadcast::Sender<()>,
    reload: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                crate::observe::reopen_audit_file();
                let _ = reload.try_send(());
            }
        }
    }
    // Now, not when the sessions' grace period is over: systemd should
    // know at once that postern is on its way down.
    systemd::stopping();
    let _ = shutdown.send(());
}

/// `/readyz` and the scrape-time gauges: the SMTP listeners are serving,
/// the spool takes a write, and every route has an upstream whose
/// breaker is not open.
struct Readiness {
    spool: Arc<Spool>,
    delivery: crate::deliver::Status,
    listening: Arc<std::sync::atomic::AtomicBool>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl crate::admin::Health for Readiness {
    fn not_ready(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.listening.load(std::sync::atomic::Ordering::Relaxed) {
            problems.push("SMTP listeners are not serving".to_string());
        }
        if let Err(e) = self.spool.dir().probe_writable() {
            problems.push(format!("spool is not writable: {e}"));
        }
        problems.extend(self.delivery.blocked_routes());
        // tempfail: the node refuses mail while Redis is down, so the load
        // balancer should send it elsewhere.
        if let Some(c) = self.cluster.as_ref().filter(|c| c.refusing()) {
            problems.extend(c.degradation());
        }
        problems
    }

    /// Redis down under `on_redis_down = "local"`: still taking mail.
    fn degraded(&self) -> Vec<String> {
        match &self.cluster {
            Some(c) if !c.refusing() => c.degradation().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn refresh_gauges(&self) {
        use crate::observe::metrics;
        let spool = &self.spool;
        if let Ok(q) = spool.usage(false) {
            metrics::spool("queued", q.messages, q.bytes);
            let age = q
                .oldest
                .and_then(|t| t.elapsed().ok())
                .map_or(0.0, |d| d.as_secs_f64());
            metrics::spool_oldest(age);
        }
        if let Ok(d) = spool.usage(true) {
            metrics::spool("dead", d.messages, d.bytes);
        }
        for (upstream, state) in self.delivery.breakers() {
            metrics::breaker(&upstream, &state.to_string());
        }
    }
}

/// How the volume-spike detector suspends a credential: at once in memory,
/// saved to disk off the runtime threads.
fn suspend_hook(
    suspensions: Arc<access::suspend::Suspensions>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> crate::alerts::SuspendHook {
    Arc::new(move |name: &str, duration, reason: &str| {
        let s = suspensions.suspend(name, Some(duration), Some(reason.to_string()), "alerts");
        if let (Some(c), Ok(rt)) = (&cluster, tokio::runtime::Handle::try_current()) {
            let (c, s, local) = (Arc::clone(c), s.clone(), Arc::clone(&suspensions));
            rt.spawn(async move {
                if crate::cluster::suspend::publish(&c, &s).await {
                    local.put(s);
                } else {
                    crate::cluster::suspend::defer(s);
                }
            });
        }
        tracing::warn!(
            target: crate::observe::audit::TARGET,
            event = "suspended",
            credential = name,
            until = s.until.unwrap_or(0),
            reason,
            by = "alerts",
            "credential suspended"
        );
        let suspensions = Arc::clone(&suspensions);
        let save = move || {
            if let Err(e) = suspensions.save() {
                tracing::error!(error = %e, file = %suspensions.path().display(), "cannot save credential suspensions; this one will not survive a restart");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(save)),
            Err(_) => save(),
        }
    })
}

/// Feeds the queue-age detector: the oldest queued message's age, every
/// few seconds (from file metadata, off the runtime threads).
async fn check_queue_age(spool: Arc<Spool>) {
    loop {
        tokio::time::sleep(crate::alerts::queue_check_interval()).await;
        let spool = spool.clone();
        let usage = tokio::task::spawn_blocking(move || spool.usage(false)).await;
        if let Ok(Ok(u)) = usage
            && let Some(age) = u.oldest.and_then(|t| t.elapsed().ok())
        {
            crate::alerts::queue_age(age);
        }
    }
}

/// Large blocks (argon2id's 19 MiB per password check, big messages) go
/// back to the OS when freed. glibc raises its mmap threshold after the
/// first such block is freed, so later ones come from per-thread arenas
/// that keep the memory: without this, RSS after a burst of AUTHs stays at
/// its peak (about 200 MB for 20 concurrent checks, bench/memory.sh). A
/// fixed threshold keeps every block of 4 MiB or more mmap'd, at the cost
/// of page faults on each (small next to the hash itself).
fn return_large_blocks_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator tunable; called before
        // the runtime starts its threads.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) };
    }
}
