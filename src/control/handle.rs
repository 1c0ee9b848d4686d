//! The answer to each control request, from the daemon's live state.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::protocol::{
    BatchResult, ItemResult, LockoutInfo, Ping, QueueInfo, Request, Response, StatusReport,
    UpstreamInfo,
};
use super::server::Context;
use super::view::{summary, view};
use crate::deliver::{ControlError, QueueControl};
use crate::observe::audit;

/// How many quota keys `status` lists.
const BUSIEST: usize = 10;

pub async fn answer(ctx: &Context, req: Request) -> Response {
    let result = match req {
        Request::Ping => to_value(&Ping {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        }),
        Request::SpoolList { dead } => list(ctx, dead).await,
        Request::SpoolShow { id } => match ctx.queue.show(&id).await {
            Ok((detail, state)) => to_value(&view(detail, state)),
            Err(e) => Err(e.to_string()),
        },
        Request::SpoolRetry { ids, all_dead } => {
            batch(ctx, ids, all_dead, "retry", |q, id| async move {
                q.retry(&id).await.map(|r| match r {
                    crate::deliver::Retried::Requeued => "requeued from the dead letters",
                    crate::deliver::Retried::Expedited => "due now",
                    crate::deliver::Retried::Delivering => "being delivered now",
                })
            })
            .await
        }
        Request::SpoolPurge { ids, all_dead } => {
            batch(ctx, ids, all_dead, "purge", |q, id| async move {
                q.purge(&id).await.map(|place| match place {
                    crate::spool::Place::Queue => "purged from the queue",
                    crate::spool::Place::Dead => "purged from the dead letters",
                })
            })
            .await
        }
        Request::SpoolHold { ids } => {
            batch(ctx, ids, false, "hold", |q, id| async move {
                q.hold(&id).await.map(|_| "held")
            })
            .await
        }
        Request::SpoolRelease { ids } => {
            batch(ctx, ids, false, "release", |q, id| async move {
                q.release(&id).await.map(|()| "released; due now")
            })
            .await
        }
        Request::SpoolAdopt { path } => match ctx.queue.adopt(path.into()).await {
            Ok(a) => to_value(&super::protocol::AdoptReport::of(&a)),
            Err(e) => Err(e.to_string()),
        },
        Request::Status => status(ctx).await,
        Request::CredentialSuspend {
            name,
            for_secs,
            reason,
        } => suspend(ctx, &name, for_secs.map(Duration::from_secs), reason).await,
        Request::CredentialResume { name } => resume(ctx, &name).await,
    };
    match result {
        Ok(v) => Response::ok(v),
        Err(e) => Response::error(e),
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the answer: {e}"))
}

async fn list(ctx: &Context, dead: bool) -> Result<Value, String> {
    let entries = ctx.queue.list(dead).await.map_err(|e| e.to_string())?;
    let states = ctx.queue.states();
    let lines: Vec<_> = entries
        .iter()
        .map(|e| summary(e, states.get(&e.id).copied()))
        .collect();
    to_value(&lines)
}

/// Runs `op` for each id (every dead letter with `all_dead`), each on its
/// own: one failure does not stop the rest.
async fn batch<F, Fut>(
    ctx: &Context,
    ids: Vec<String>,
    all_dead: bool,
    what: &str,
    op: F,
) -> Result<Value, String>
where
    F: Fn(QueueControl, String) -> Fut,
    Fut: std::future::Future<Output = Result<&'static str, ControlError>>,
{
    let ids = if all_dead {
        if !ids.is_empty() {
            return Err(format!("{what}: give message ids or --all-dead, not both"));
        }
        ctx.queue.dead_ids().await.map_err(|e| e.to_string())?
    } else if ids.is_empty() {
        return Err(format!("{what}: no message ids given"));
    } else {
        ids
    };
    let mut out = BatchResult::default();
    for id in ids {
        let result = op(ctx.queue.clone(), id.clone()).await;
        out.results.push(match result {
            Ok(detail) => ItemResult {
                id,
                ok: true,
                detail: Some(detail.to_string()),
                error: None,
            },
            Err(e) => ItemResult {
                id,
                ok: false,
                detail: None,
                error: Some(e.to_string()),
            },
        });
    }
    to_value(&out)
}

async fn status(ctx: &Context) -> Result<Value, String> {
    let spool = ctx.spool.clone();
    let usage = tokio::task::spawn_blocking(move || (spool.usage(false), spool.usage(true)))
        .await
        .map_err(|e| e.to_string())?;
    let (queued, dead) = (
        usage.0.map_err(|e| e.to_string())?,
        usage.1.map_err(|e| e.to_string())?,
    );
    let counts = ctx.queue.counts();
    let access = ctx.shared.current().access.clone();
    let report = StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_s: ctx.started.elapsed().as_secs(),
        state_dir: ctx.state_dir.display().to_string(),
        listeners: ctx.listeners.clone(),
        connections: ctx.shared.open_connections(),
        queue: QueueInfo {
            queued: queued.messages,
            queued_bytes: queued.bytes,
            held: counts.held,
            delivering: counts.delivering,
            waiting_for_breakers: counts.waiting_for_breakers,
            dead: dead.messages,
            dead_bytes: dead.bytes,
            oldest_age_s: queued
                .oldest
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs()),
        },
        delivery: ctx.queue.rates(),
        upstreams: ctx
            .queue
            .upstreams()
            .into_iter()
            .map(|u| UpstreamInfo {
                name: u.name,
                breaker: u.breaker,
                token: u.token,
            })
            .collect(),
        lockouts: ctx
            .lockout
            .active()
            .into_iter()
            .map(|l| LockoutInfo {
                key: access.log_key(&l.key),
                remaining_s: l.remaining_secs(),
            })
            .collect(),
        suspended: ctx.suspensions.active(),
        busiest_quota_keys: ctx.quotas.busiest(BUSIEST),
        cluster: ctx.cluster.as_ref().map(|c| super::protocol::ClusterInfo {
            node_id: c.settings().node_id.clone(),
            state: match (c.is_down(), c.refusing()) {
                (false, _) => "shared",
                (true, false) => "local",
                (true, true) => "tempfail",
            }
            .to_string(),
        }),
    };
    to_value(&report)
}

/// Makes the current suspension record durable; the change is already in
/// force, so a failure here says so rather than pretending nothing
/// happened.
async fn save(ctx: &Context, what: &str) -> Result<(), String> {
    let suspensions = ctx.suspensions.clone();
    let saved = tokio::task::spawn_blocking(move || suspensions.save())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    saved.map_err(|e| {
        tracing::error!(error = %e, file = %ctx.suspensions.path().display(), "cannot save credential suspensions");
        format!(
            "{what} is in force now but could NOT be saved to {} ({e}); it will not survive a restart",
            ctx.suspensions.path().display()
        )
    })
}

async fn suspend(
    ctx: &Context,
    name: &str,
    duration: Option<Duration>,
    reason: Option<String>,
) -> Result<Value, String> {
    let access = ctx.shared.current().access.clone();
    if access.credential(name).is_none() {
        return Err(unknown_credential(name, &access.credential_names()));
    }
    if duration.is_some_and(|d| d.is_zero()) {
        return Err("--for must be longer than zero".to_string());
    }
    let s = ctx.suspensions.suspend(name, duration, reason, "operator");
    if let Some(c) = &ctx.cluster {
        if crate::cluster::suspend::publish(c, &s).await {
            ctx.suspensions.put(s.clone());
        } else {
            tracing::warn!(
                credential = name,
                "Redis unreachable: the suspension holds on this node now and is written to Redis when it answers"
            );
            crate::cluster::suspend::defer(s.clone());
        }
    }
    tracing::warn!(
        target: audit::TARGET,
        event = "suspended",
        credential = name,
        until = s.until.unwrap_or(0),
        reason = s.reason.as_deref().unwrap_or(""),
        by = "operator",
        "credential suspended"
    );
    save(ctx, &format!("the suspension of \"{name}\"")).await?;
    to_value(&s)
}

async fn resume(ctx: &Context, name: &str) -> Result<Value, String> {
    let current = ctx.suspensions.check(name);
    if let (Some(c), Some(_)) = (&ctx.cluster, &current)
        && !crate::cluster::suspend::retract(c, name).await
    {
        return Err(format!(
            "Redis is unreachable: resuming \"{name}\" here only would be undone when it is back; try again once it answers"
        ));
    }
    let Some(s) = ctx.suspensions.resume(name).or(current) else {
        let access = ctx.shared.current().access.clone();
        if access.credential(name).is_none() {
            return Err(unknown_credential(name, &access.credential_names()));
        }
        return Err(format!("credential \"{name}\" is not suspended"));
    };
    tracing::warn!(
        target: audit::TARGET,
        event = "resumed",
        credential = name,
        by = "operator",
        "credential resumed"
    );
    save(ctx, &format!("resuming \"{name}\"")).await?;
    to_value(&s)
}

fn unknown_credential(name: &str, known: &[String]) -> String {
    let shown: String = name.chars().take(100).collect();
    if known.is_empty() {
        format!("unknown credential {shown:?}: none is configured")
    } else {
        format!(
            "unknown credential {shown:?}; configured: {}",
            known.join(", ")
        )
    }
}
