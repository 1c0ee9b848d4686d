//! AUTH lockouts and known clients in Redis, so failures spread over the
//! nodes add up and a lockout on one node holds on all.
//!
//! The same model as `src/access/lockout.rs`, per key (client network and
//! username): failures within `auth_window` (a sorted set scored by time,
//! each member naming its client and username), `auth_failures` of them
//! lock the key for `lockout`, doubling per repeat up to `lockout_max`; a
//! strike count that expires `lockout_max` after the lockout ends; a
//! success removes only its own pair's failures. Known clients are keys
//! with `known_client_ttl` as their expiry. Usernames appear in Redis only
//! as a hash (people type passwords into the username field).
//!
//! Every operation is one script (one round trip) through
//! [`Cluster::call`]; None means Redis is down and the caller uses the
//! node's own lockout and known-client record, which are always kept too.

use super::store::Cluster;
use crate::access::abuse::Settings as AbuseSettings;
use crate::quota::ClientKey;
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

const CHECK: &str = r#"
local c = redis.call('PTTL', KEYS[1])
local u = -2
local known = redis.call('EXISTS', KEYS[3])
if known == 0 and KEYS[2] ~= '' then u = redis.call('PTTL', KEYS[2]) end
return { c, u, known }
"#;

const FAIL: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold = tonumber(ARGV[1])
local window, first, max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local member = now .. '|' .. ARGV[5] .. '|' .. ARGV[6] .. '|' .. ARGV[7]
local out = {}
for k = 0, (#KEYS / 3) - 1 do
  local f, u, st = KEYS[k * 3 + 1], KEYS[k * 3 + 2], KEYS[k * 3 + 3]
  if redis.call('EXISTS', u) == 0 then
    redis.call('ZREMRANGEBYSCORE', f, '-inf', now - window)
    redis.call('ZADD', f, now, member)
    redis.call('PEXPIRE', f, window)
    if redis.call('ZCARD', f) >= threshold then
      local strikes = tonumber(redis.call('GET', st) or '0')
      local len = first * (2 ^ strikes)
      if len > max then len = max end
      redis.call('SET', u, '1', 'PX', math.floor(len))
      redis.call('SET', st, strikes + 1, 'PX', math.floor(len + max))
      redis.call('DEL', f)
      out[#out + 1] = k + 1
      out[#out + 1] = math.floor(len)
    end
  end
end
return out
"#;

const SUCCESS: &str = r#"
for k = 1, 2 do
  local f = KEYS[k]
  local want = ARGV[k]
  for _, m in ipairs(redis.call('ZRANGE', f, 0, -1)) do
    local _, client, user = string.match(m, '^(%d+)|(.-)|(.-)|')
    if (k == 1 and user == want) or (k == 2 and client == want) then
      redis.call('ZREM', f, m)
    end
  end
end
if ARGV[3] ~= '0' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[3]) end
return 0
"#;

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK));
static FAIL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FAIL));
static SUCCESS_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SUCCESS));

/// A username as Redis sees it: the first 16 bytes of SHA-256 over the
/// key prefix and the name, in hex.
fn user_tag(cluster: &Cluster, username: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(cluster.settings().key_prefix.as_bytes());
    ctx.update(b"\0");
    ctx.update(username.as_bytes());
    ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Keys {
    client: String,
    user: String,
    known: String,
    client_tag: String,
    user_tag: String,
}

fn keys(cluster: &Cluster, client: ClientKey, username: &str) -> Keys {
    let client_tag = client.to_string();
    let user_tag = user_tag(cluster, username);
    Keys {
        client: cluster.key(&format!("l:c:{client_tag}")),
        user: cluster.key(&format!("l:u:{user_tag}")),
        known: cluster.key(&format!("k:{client_tag}:{user_tag}")),
        client_tag,
        user_tag,
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// What the shared record says before a password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Remaining lockout of the client network.
    pub client: Option<Duration>,
    /// Remaining lockout of the username (None when the network is known
    /// for it, which spares it a username lockout).
    pub user: Option<Duration>,
    pub known: bool,
}

fn remaining(pttl: i64) -> Option<Duration> {
    u64::try_from(pttl)
        .ok()
        .filter(|&m| m > 0)
        .map(Duration::from_millis)
}

pub async fn check(cluster: &Cluster, client: ClientKey, username: &str) -> Option<Standing> {
    let k = keys(cluster, client, username);
    let mut inv = CHECK_SCRIPT.prepare_invoke();
    inv.key(format!("{}:until", k.client))
        .key(format!("{}:until", k.user))
        .key(&k.known);
    let (c, u, known): (i64, i64, i64) = cluster
        .call("lockout check", |mut conn| async move {
            inv.invoke_async(&mut conn).await
        })
        .await?;
    Some(Standing {
        client: remaining(c),
        user: remaining(u),
        known: known == 1,
    })
}

/// Records a failed AUTH; the lockouts it started: (true for the client
/// network, false for the username, length).
pub async fn fail(
    cluster: &Cluster,
    cfg: &AbuseSettings,
    client: ClientKey,
    username: &str,
) -> Option<Vec<(bool, Duration)>> {
    let threshold = cfg.auth_failures?.get();
    let k = keys(cluster, client, username);
    let mut inv = FAIL_SCRIPT.prepare_invoke();
    for base in [&k.client, &k.user] {
        inv.key(format!("{base}:f"))
            .key(format!("{base}:until"))
            .key(format!("{base}:strikes"));
    }
    let nonce = crate::spool::new_id();
    inv.arg(threshold)
        .arg(ms(cfg.auth_window))
        .arg(ms(cfg.lockout))
        .arg(ms(cfg.lockout_max))
        .arg(&k.client_tag)
        .arg(&k.user_tag)
        .arg(nonce);
    let out: Vec<u64> = cluster
        .call("lockout failure", |mut conn| async move {
            inv.invoke_async(&mut conn).await
        })
        .await?;
    Some(
        out.chunks(2)
            .filter_map(|p| match p {
                [which, len] => Some((*which == 1, Duration::from_millis(*len))),
                _ => None,
            })
            .collect(),
    )
}

/// A successful AUTH: clears its own pair's failures and makes the
/// network known for the username (`ttl`; zero: not recorded).
pub async fn succeed(
    cluster: &Cluster,
    client: ClientKey,
    username: &str,
    ttl: Duration,
) -> Option<()> {
    let k = keys(cluster, client, username);
    let mut inv = SUCCESS_SCRIPT.prepare_invoke();
    inv.key(format!("{}:f", k.client))
        .key(format!("{}:f", k.user))
        .key(&k.known)
        .arg(&k.user_tag)
        .arg(&k.client_tag)
        .arg(if ttl.is_zero() { 0 } else { ms(ttl) });
    cluster
        .call("lockout success", |mut conn| async move {
            inv.invoke_async::<i64>(&mut conn).await
        })
        .await
        .map(|_| ())
}
