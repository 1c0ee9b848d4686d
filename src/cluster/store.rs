//! The node's Redis connection and whether Redis is usable right now.
//!
//! One lazily connecting `ConnectionManager` (it reconnects by itself);
//! every call is bounded by `[cluster] timeout`. A failed or late call
//! marks Redis down: the callers fall back to local limits, the change is
//! logged once and counted, and Redis is tried again at most once per
//! [`RETRY_INTERVAL`] until a call succeeds, which marks it up again.

use super::{OnRedisDown, Settings};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a node on local limits tries Redis again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Why the cluster could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("[cluster] redis: {0}")]
pub struct ClusterError(String);

/// Redis as one node sees it.
pub struct Cluster {
    settings: Settings,
    conn: ConnectionManager,
    down: AtomicBool,
    /// When Redis was last tried while down.
    last_try: Mutex<Option<Instant>>,
}

impl Cluster {
    /// Sets up the connection without waiting for Redis: a node starts
    /// (on local limits) while Redis is unreachable. Call inside the
    /// runtime.
    pub fn new(settings: &Settings) -> Result<Cluster, ClusterError> {
        use redis::IntoConnectionInfo;
        if settings.redis.starts_with("rediss://") {
            // redis builds its rustls client on the process default
            // provider; everything in postern uses ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut info = settings
            .redis
            .as_str()
            .into_connection_info()
            .map_err(|e| ClusterError(e.to_string()))?;
        if let Some(p) = &settings.password {
            let r = info.redis_settings().clone().set_password(p.expose());
            info = info.set_redis_settings(r);
        }
        let client = match &settings.ca_file {
            // Only this CA: a private Redis's certificate is not signed by
            // a public root, and a public root should not vouch for it.
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| ClusterError(format!("ca_file {}: {e}", path.display())))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)
            }
            None => redis::Client::open(info),
        }
        .map_err(|e| ClusterError(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            // No timer of its own per call: `call` bounds every call
            // (connecting included) with `timeout` already.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(RETRY_INTERVAL);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| ClusterError(e.to_string()))?;
        crate::observe::metrics::cluster_redis_up(true);
        Ok(Cluster {
            settings: settings.clone(),
            conn,
            down: AtomicBool::new(false),
            last_try: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A Redis key under `key_prefix`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.key_prefix)
    }

    /// Whether the node runs on local state now.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether shared decisions are refused (`tempfail`) right now.
    pub fn refusing(&self) -> bool {
        self.is_down() && self.settings.on_redis_down == OnRedisDown::Tempfail
    }

    /// One line for `/readyz` and `postern status` while Redis is down.
    pub fn degradation(&self) -> Option<String> {
        self.is_down().then(|| match self.settings.on_redis_down {
            OnRedisDown::Local => format!(
                "redis unreachable: local limits (each node 1/{} of every limit)",
                self.settings.expected_nodes
            ),
            OnRedisDown::Tempfail => {
                "redis unreachable: shared limits unavailable, refusing with 451 4.3.0".to_string()
            }
        })
    }

    /// Runs `op` on the connection within the timeout. None: Redis is down
    /// (this call failed, or it is down and not due for another try); the
    /// caller uses local state.
    pub async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.is_down() {
            let mut last = self.last_try.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < RETRY_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let result = tokio::time::timeout(self.settings.timeout, op(self.conn.clone())).await;
        match result {
            Ok(Ok(v)) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!(node = %self.settings.node_id, "Redis is reachable again: shared limits resume");
                    crate::observe::metrics::cluster_redis_up(true);
                }
                Some(v)
            }
            Ok(Err(e)) => {
                self.mark_down(what, &e.to_string());
                None
            }
            Err(_) => {
                self.mark_down(what, "timed out");
                None
            }
        }
    }

    /// [`Cluster::call`] from synchronous code on a runtime worker: the
    /// worker hands its other tasks to the rest of the runtime while it
    /// waits, at most `timeout`. Only for a synchronous caller that has no
    /// async path (the sessions check shared quotas through
    /// `Step::AdmitMessage` / `Step::AdmitRecipient`, awaited by the
    /// connection). Outside a multi-threaded runtime there is no Redis
    /// (None).
    pub fn call_blocking<T, F, Fut>(&self, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        tokio::task::block_in_place(|| handle.block_on(self.call(what, op)))
    }

    /// Runs `op` in the background (refunds, records): nobody waits for it.
    pub fn spawn<F, Fut>(self: &std::sync::Arc<Self>, what: &'static str, op: F)
    where
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<()>> + Send + 'static,
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = std::sync::Arc::clone(self);
        handle.spawn(async move {
            let _ = me.call(what, op).await;
        });
    }

    fn mark_down(&self, what: &'static str, error: &str) {
        *self.last_try.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                node = %self.settings.node_id,
                operation = what,
                error,
                on_redis_down = ?self.settings.on_redis_down,
                "Redis unreachable: falling back to local limits until it answers again"
            );
            crate::observe::metrics::cluster_redis_up(false);
        }
    }
}

/// A limit as one node enforces it while Redis is down.
pub fn share(limit: u32, nodes: u32) -> u32 {
    limit.div_ceil(nodes.max(1)).max(1)
}

#[cfg(test)]
mod tests;
