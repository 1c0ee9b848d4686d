//! The anomaly detectors' windows in Redis, so events spread over the
//! nodes add up (a password spray through three nodes is one spray) and
//! one node, not every node, raises the alert.
//!
//! Count detectors (failed AUTH per network and per username, inspection
//! refusals per credential) keep a sorted set of event times per key,
//! trimmed to the window and to the threshold; the volume detector keeps a
//! hash of message counts per window index and the first index seen. Each
//! script also decides whether to fire and takes the `repeat_after` marker
//! (`SET NX PX`), so exactly one node raises each alert. Delivery failures
//! (per upstream, as this node delivers) and the queue's age (this node's
//! spool) stay per node. None: Redis is down; the caller uses the node's
//! own detectors.

use super::store::Cluster;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

const BURST: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, threshold, repeat_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(threshold + 1))
redis.call('PEXPIRE', KEYS[1], window)
local n = redis.call('ZCARD', KEYS[1])
local fire = 0
if n >= threshold and redis.call('SET', KEYS[2], '1', 'NX', 'PX', repeat_ms) then fire = 1 end
return { n, fire }
"#;

const VOLUME: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, baseline, min = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local factor, repeat_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local index = math.floor(now / window)
redis.call('HSETNX', KEYS[1], 'first', index)
local current = redis.call('HINCRBY', KEYS[1], index, 1)
local first = tonumber(redis.call('HGET', KEYS[1], 'first'))
local history = math.min(index - first, baseline)
local earlier = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f ~= 'first' then
    local i = tonumber(f)
    if i + baseline < index then
      redis.call('HDEL', KEYS[1], f)
    elseif i < index and i + history >= index then
      earlier = earlier + tonumber(redis.call('HGET', KEYS[1], f))
    end
  end
end
redis.call('PEXPIRE', KEYS[1], window * (baseline + 2))
if history == 0 then return { current, '-1', 0 } end
local mean = earlier / history
local fire = 0
if current >= min and current > factor * mean and redis.call('SET', KEYS[2], '1', 'NX', 'PX', repeat_ms) then fire = 1 end
return { current, tostring(mean), fire }
"#;

static BURST_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(BURST));
static VOLUME_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(VOLUME));

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One event of a count detector `kind` (its name) for `key`: the count in
/// the window (at most `threshold`) and whether this node raises the alert.
pub async fn burst(
    cluster: &Cluster,
    kind: &str,
    key: &str,
    window: Duration,
    threshold: u32,
    repeat_after: Duration,
) -> Option<(u32, bool)> {
    let mut inv = BURST_SCRIPT.prepare_invoke();
    inv.key(cluster.key(&format!("a:{kind}:{key}")))
        .key(cluster.key(&format!("a:fired:{kind}:{key}")))
        .arg(ms(window))
        .arg(threshold.max(1))
        .arg(ms(repeat_after))
        .arg(crate::spool::new_id());
    let (n, fire): (u32, u32) = cluster
        .call("alert window", |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await?;
    Some((n, fire == 1))
}

/// What the volume detector's shared windows say after one more message.
pub struct Volume {
    pub current: u32,
    /// Mean of the earlier windows; None before a full earlier window.
    pub mean: Option<f64>,
    pub fire: bool,
}

/// One accepted message of `credential` for the volume detector.
pub async fn volume(
    cluster: &Cluster,
    credential: &str,
    s: &crate::alerts::Settings,
    factor: f64,
) -> Option<Volume> {
    let mut inv = VOLUME_SCRIPT.prepare_invoke();
    inv.key(cluster.key(&format!("a:volume:{credential}")))
        .key(cluster.key(&format!("a:fired:volume_spike:{credential}")))
        .arg(ms(s.volume_window))
        .arg(s.volume_baseline)
        .arg(s.volume_min_messages)
        .arg(factor.to_string())
        .arg(ms(s.repeat_after));
    let (current, mean, fire): (u32, String, u32) = cluster
        .call("alert window", |mut c| async move {
            inv.invoke_async(&mut c).await
        })
        .await?;
    let mean = mean.parse::<f64>().ok().filter(|m| *m >= 0.0);
    Some(Volume {
        current,
        mean,
        fire: fire == 1,
    })
}
