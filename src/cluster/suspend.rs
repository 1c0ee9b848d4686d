//! Credential suspensions shared through Redis: a `postern credential
//! suspend` (or resume, or the volume-spike detector's suspension) on one
//! node is in force on every node within a second.
//!
//! Redis holds one hash, `PREFIX suspensions`: a field per suspended
//! credential (the suspension as JSON) and the marker field `_`. A change
//! is written to Redis first and then applied locally; every node reads
//! the hash every [`SYNC_INTERVAL`] and puts it in force (and in its
//! `suspensions.json`, so a restart while Redis is down still refuses).
//! A hash without the marker means Redis lost its data (a restart without
//! persistence): the node writes its own record back rather than lift
//! every suspension. While Redis is down each node keeps what it has; a
//! suspension made meanwhile is kept aside and written to Redis before
//! the node next reads the shared record, so Redis coming back does not
//! lift it.

use super::store::Cluster;
use crate::access::suspend::{Suspension, Suspensions};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often each node reads the shared record.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(500);

const MARKER: &str = "_";

/// Suspensions made while Redis was down, to be written first.
static PENDING: std::sync::Mutex<Vec<Suspension>> = std::sync::Mutex::new(Vec::new());

/// Keeps `s` for Redis: it was made while Redis did not answer.
pub fn defer(s: Suspension) {
    PENDING.lock().unwrap_or_else(|p| p.into_inner()).push(s);
}

/// Writes what [`defer`] kept; false if Redis is still down.
async fn flush_pending(cluster: &Cluster) -> bool {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()));
    for (i, s) in pending.iter().enumerate() {
        if !publish(cluster, s).await {
            PENDING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(pending[i..].iter().cloned());
            return false;
        }
    }
    true
}

fn key(cluster: &Cluster) -> String {
    cluster.key("suspensions")
}

/// Writes a suspension to Redis; false when Redis is down (the caller then
/// applies it locally only).
pub async fn publish(cluster: &Cluster, s: &Suspension) -> bool {
    let Ok(json) = serde_json::to_string(s) else {
        return false;
    };
    let k = key(cluster);
    let name = s.credential.clone();
    cluster
        .call("suspend", |mut c| async move {
            redis::pipe()
                .atomic()
                .hset(&k, MARKER, "1")
                .ignore()
                .hset(&k, &name, json)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
        .is_some()
}

/// Removes a suspension from Redis; false when Redis is down.
pub async fn retract(cluster: &Cluster, credential: &str) -> bool {
    let k = key(cluster);
    let name = credential.to_string();
    cluster
        .call("resume", |mut c| async move {
            redis::pipe()
                .atomic()
                .hset(&k, MARKER, "1")
                .ignore()
                .hdel(&k, &name)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
        .is_some()
}

/// One read of the shared record into `suspensions`.
async fn sync_once(cluster: &Cluster, suspensions: &Arc<Suspensions>) {
    if !flush_pending(cluster).await {
        crate::observe::metrics::cluster_fallback("suspension");
        return;
    }
    let k = key(cluster);
    let got: Option<HashMap<String, String>> = cluster
        .call("suspensions", |mut c| async move { c.hgetall(&k).await })
        .await;
    let Some(map) = got else {
        crate::observe::metrics::cluster_fallback("suspension");
        return;
    };
    if !map.contains_key(MARKER) {
        for s in suspensions.active() {
            publish(cluster, &s).await;
        }
        let k = key(cluster);
        let _ = cluster
            .call("suspensions", |mut c| async move {
                c.hset::<_, _, _, ()>(&k, MARKER, "1").await
            })
            .await;
        return;
    }
    let list: Vec<Suspension> = map
        .iter()
        .filter(|(f, _)| f.as_str() != MARKER)
        .filter_map(|(_, v)| serde_json::from_str(v).ok())
        .collect();
    if suspensions.replace_all(list) {
        tracing::info!(
            credentials = %suspensions.active().iter().map(|s| s.credential.as_str()).collect::<Vec<_>>().join(", "),
            "credential suspensions updated from the cluster"
        );
        let s = Arc::clone(suspensions);
        let saved = tokio::task::spawn_blocking(move || s.save()).await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(file = %suspensions.path().display(), "cannot save credential suspensions");
        }
    }
}

/// Reads the shared record every [`SYNC_INTERVAL`] until `shutdown`.
pub async fn sync_every(
    cluster: Arc<Cluster>,
    suspensions: Arc<Suspensions>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        sync_once(&cluster, &suspensions).await;
        tokio::select! {
            _ = tokio::time::sleep(SYNC_INTERVAL) => {}
            _ = &mut shutdown => return,
        }
    }
}
