//! systemd integration: readiness, reload and stop notifications, a STATUS=
//! line, the watchdog, and socket activation.
//!
//! All of it is inert outside systemd: notifications go nowhere without
//! `NOTIFY_SOCKET`, the watchdog runs only when `WATCHDOG_USEC` asks for it,
//! and sockets are adopted only when `LISTEN_PID` names this process.
//!
//! The watchdog is the part with teeth. systemd restarts a service that
//! stops sending `WATCHDOG=1`, so a ping must mean "postern can still take
//! mail", not merely "some thread is alive". A ping goes out only when both
//! halves of the message path have shown progress since the previous one:
//! the tokio runtime (a task that bumps a counter every tick) and the spool
//! writer threads (which bump theirs after every commit and every idle
//! tick, and report how long a commit has been running). A runtime wedged
//! by a blocking call, or a writer stuck in `fsync` on a hung disk, stops
//! the pings and systemd restarts postern.

use crate::deliver::Status;
use crate::smtp::listener::Inherited;
use crate::spool::Spool;
use sd_notify::NotifyState;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// How often the STATUS= line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// What the service manager handed this process at exec: passed sockets
/// and the watchdog interval. Taken, and the variables removed from the
/// environment (no child should think they are meant for it), while the
/// process still has a single thread: changing the environment is only
/// sound then.
pub(super) struct Handover {
    sockets: Vec<(OwnedFd, String)>,
    socket_error: Option<std::io::Error>,
    /// `WATCHDOG_USEC`, when it is set for this process.
    pub(super) watchdog: Option<Duration>,
}

impl Handover {
    /// # Safety
    ///
    /// Must be called before the process starts any thread (it edits the
    /// environment), and at most once (it takes ownership of fds 3..).
    pub(super) unsafe fn take() -> Handover {
        let names = std::env::var("LISTEN_FDNAMES").ok();
        // SAFETY: single-threaded per this function's contract.
        let fds = unsafe { sd_notify::listen_fds_and_unset_env() };
        // SAFETY: as above.
        unsafe { std::env::remove_var("LISTEN_FDNAMES") };
        // SAFETY: as above.
        let watchdog = unsafe { sd_notify::watchdog_enabled_and_unset_env() };
        let (sockets, socket_error) = match fds {
            Ok(fds) => {
                let n = fds.len();
                let mut names: Vec<String> = names
                    .map(|s| s.split(':').map(str::to_string).collect())
                    .unwrap_or_default();
                // A missing or miscounted LISTEN_FDNAMES only costs the names.
                if names.len() != n {
                    names = vec!["unknown".to_string(); n];
                }
                let sockets = fds
                    .zip(names)
                    // SAFETY: LISTEN_PID names this process, so systemd
                    // passed these descriptors to it and nothing else in
                    // the process owns them; listen_fds has checked they
                    // are open (it set FD_CLOEXEC on each).
                    .map(|(fd, name)| (unsafe { OwnedFd::from_raw_fd(fd) }, name))
                    .collect();
                (sockets, None)
            }
            Err(e) => (Vec::new(), Some(e)),
        };
        Handover {
            sockets,
            socket_error,
            watchdog: watchdog.filter(|d| !d.is_zero()),
        }
    }

    /// The passed sockets that are listening TCP sockets, with their
    /// addresses; anything else is logged and closed. Call once logging is
    /// up.
    pub(super) fn inherited(&mut self) -> Vec<Inherited> {
        if let Some(e) = self.socket_error.take() {
            tracing::error!(error = %e, "ignoring the sockets systemd passed (LISTEN_FDS)");
        }
        let mut out = Vec::new();
        for (fd, name) in std::mem::take(&mut self.sockets) {
            match listening_tcp(fd) {
                Ok(inherited) => out.push(Inherited { name, ..inherited }),
                Err(why) => {
                    tracing::warn!(name = %name, "systemd passed a socket postern cannot use ({why}); closing it");
                }
            }
        }
        out
    }
}

/// A passed descriptor as a listening TCP socket with its address.
fn listening_tcp(fd: OwnedFd) -> Result<Inherited, String> {
    let socket = socket2::Socket::from(fd);
    let err = |e: std::io::Error| e.to_string();
    if socket.r#type().map_err(err)? != socket2::Type::STREAM {
        return Err("not a stream socket".into());
    }
    let domain = socket.domain().map_err(err)?;
    if domain != socket2::Domain::IPV4 && domain != socket2::Domain::IPV6 {
        return Err("not a TCP socket".into());
    }
    if !socket.is_listener().map_err(err)? {
        return Err("not listening".into());
    }
    let address = socket
        .local_addr()
        .map_err(err)?
        .as_socket()
        .ok_or("no IP address")?;
    Ok(Inherited {
        listener: socket.into(),
        address,
        name: String::new(),
    })
}

/// Sends `states` to systemd if it listens; a failure only matters to
/// systemd (which then times out on us), so it is logged, not fatal.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// READY=1: the spool is recovered and every listener is bound.
pub(super) fn ready() {
    notify(&[NotifyState::Ready]);
}

/// RELOADING=1 with MONOTONIC_USEC (systemd matches the READY=1 that ends
/// the reload against that timestamp).
pub(super) fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    notify(&states);
}

/// STOPPING=1: shutdown has begun (sessions get their grace period after).
pub(super) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Refreshes STATUS= (what `systemctl status postern` shows) every few
/// seconds with the queue depth and the delivery rate. Runs until aborted.
pub(super) async fn report_status(delivery: Status) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut every = tokio::time::interval(STATUS_EVERY);
    loop {
        every.tick().await;
        let line = status_line(
            delivery.pending(),
            delivery.delivered_last_minute(),
            delivery.delivered(),
        );
        notify(&[NotifyState::Status(&line)]);
    }
}

fn status_line(queued: usize, last_minute: u64, total: u64) -> String {
    format!(
        "{queued} queued; {last_minute} delivered in the last minute ({:.1}/s); {total} delivered since start",
        last_minute as f64 / 60.0
    )
}

/// The watchdog's timing, all derived from `WATCHDOG_USEC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    /// Ping period: half the timeout, as sd_watchdog_enabled(3) advises.
    ping_every: Duration,
    /// How often the heartbeats tick and the pinger looks at them: a few
    /// times per ping period, so one late tick does not cost a ping.
    tick: Duration,
    /// A spool commit running longer than this counts as stuck.
    stuck_after: Duration,
}

impl Timing {
    fn new(timeout: Duration) -> Timing {
        let ping_every = timeout / 2;
        Timing {
            ping_every,
            tick: (ping_every / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)),
            stuck_after: ping_every,
        }
    }
}

/// Counters the pinger last saw, to tell progress from standing still.
#[derive(Debug, Default)]
struct Beats {
    runtime: u64,
    spool: u64,
}

/// Why a ping is withheld, for the log line an operator reads after
/// systemd killed postern.
fn stalled(
    before: &Beats,
    runtime: u64,
    spool: crate::spool::WriterProgress,
    timing: Timing,
) -> Option<String> {
    if spool.longest_commit >= timing.stuck_after {
        return Some(format!(
            "a spool write has been running for {}",
            humantime::format_duration(Duration::from_secs(spool.longest_commit.as_secs()))
        ));
    }
    if runtime == before.runtime {
        return Some("the async runtime has made no progress".into());
    }
    if spool.beats == before.spool {
        return Some("the spool writer threads have made no progress".into());
    }
    None
}

/// Starts the watchdog for `timeout` (`WATCHDOG_USEC`): a runtime task
/// that ticks and a thread that pings systemd while both it and the spool
/// writers advance. Must be called inside the tokio runtime.
pub(super) fn start_watchdog(timeout: Duration, spool: Arc<Spool>) -> std::io::Result<()> {
    let timing = Timing::new(timeout);
    spool.set_writer_tick(timing.tick);
    let runtime_beats = Arc::new(AtomicU64::new(0));
    let beats = Arc::clone(&runtime_beats);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(timing.tick);
        loop {
            every.tick().await;
            beats.fetch_add(1, Ordering::Relaxed);
        }
    });
    tracing::info!(
        timeout = %humantime::format_duration(timeout),
        ping_every = %humantime::format_duration(timing.ping_every),
        "systemd watchdog enabled"
    );
    // A plain thread, not a task: it must keep judging when the runtime
    // does not run.
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut seen = Beats::default();
            let mut last_ping: Option<Instant> = None;
            let mut warned = false;
            loop {
                std::thread::sleep(timing.tick);
                if last_ping.is_some_and(|t| t.elapsed() < timing.ping_every) {
                    continue;
                }
                let runtime = runtime_beats.load(Ordering::Relaxed);
                let writers = spool.writer_progress();
                match stalled(&seen, runtime, writers, timing) {
                    None => {
                        notify(&[NotifyState::Watchdog]);
                        seen = Beats {
                            runtime,
                            spool: writers.beats,
                        };
                        last_ping = Some(Instant::now());
                        if warned {
                            tracing::info!("watchdog: progress again; pinging systemd");
                            warned = false;
                        }
                    }
                    Some(why) => {
                        let overdue = last_ping.map_or(Duration::ZERO, |t| t.elapsed());
                        if !warned && overdue >= timing.ping_every * 3 / 2 {
                            tracing::error!(
                                reason = %why,
                                "watchdog: withholding WATCHDOG=1 from systemd, which restarts postern if this lasts"
                            );
                            warned = true;
                        }
                    }
                }
            }
        })?;
    Ok(())
}
