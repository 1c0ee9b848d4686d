//! SIGHUP: re-read the whole configuration and put it in force.
//!
//! All or nothing: the files are parsed and validated, TLS material loaded
//! and every upstream client built before anything is swapped, so a broken
//! edit leaves the running configuration untouched (and says why, with
//! file:line). Counters that belong to the daemon rather than to a
//! configuration (quotas, lockouts, known clients, connection rate, circuit
//! breakers) are reconfigured in place and keep their state.

use super::{Daemon, StartError, demo_config};
use crate::config::{self, Config};
use crate::deliver::Delivery;
use crate::smtp::listener::Shared;
use std::path::Path;

pub(super) async fn reload(
    daemon: &Daemon,
    running: &mut Config,
    shared: &Shared,
    delivery: &Delivery,
) {
    let path = daemon.config_path.clone();
    // Reading files and building clients is blocking work.
    let loaded = tokio::task::spawn_blocking(move || match &path {
        Some(p) => config::load(p),
        None => config::load_str(Path::new("postern-demo.toml"), &demo_config()),
    })
    .await
    .map_err(StartError::from)
    .and_then(|r| r.map_err(StartError::from));
    let built = loaded.and_then(|new| {
        let parts = daemon.generation(&new)?;
        Ok((new, parts))
    });
    let (new, (generation, router)) = match built {
        Ok(b) => b,
        Err(errors) => {
            tracing::error!(
                "configuration reload failed; keeping the current configuration:\n{errors}"
            );
            crate::observe::metrics::reload("failed");
            return;
        }
    };
    for what in needs_restart(running, &new) {
        tracing::warn!(
            setting = what,
            "changed in the configuration but only takes effect after a restart"
        );
    }
    shared.replace(generation);
    delivery.replace_router(router);
    daemon.quotas.reconfigure(&new.quota);
    daemon.lockout.reconfigure(&new.abuse);
    daemon.known.reconfigure(&new.abuse);
    daemon.conn_rate.reconfigure(&new.abuse);
    crate::alerts::configure(new.alerts.as_ref());
    tracing::info!(
        files = new.files.len(),
        credentials = new.credentials.len(),
        routes = new.routes.len(),
        upstreams = new.upstreams.len(),
        "configuration reloaded"
    );
    crate::observe::metrics::reload("ok");
    *running = new;
}

/// Settings bound to sockets, threads or directories opened at start.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let listeners = |c: &Config| -> Vec<String> {
        c.listeners
            .iter()
            .map(|l| format!("{} {:?} {:?}", l.address, l.tls, l.proxy))
            .collect()
    };
    let mut out = Vec::new();
    if listeners(old) != listeners(new) {
        out.push("listeners");
    }
    if old.server.state_dir != new.server.state_dir {
        out.push("server.state_dir");
    }
    if old.server.max_connections != new.server.max_connections {
        out.push("server.max_connections");
    }
    if old.server.shutdown_timeout != new.server.shutdown_timeout {
        out.push("server.shutdown_timeout");
    }
    if old.delivery != new.delivery {
        out.push("delivery");
    }
    if old.log.level != new.log.level
        || old.log.format != new.log.format
        || old.log.audit_file != new.log.audit_file
    {
        out.push("log");
    }
    if old.admin != new.admin {
        out.push("admin");
    }
    if old.cluster != new.cluster {
        out.push("cluster");
    }
    out
}
