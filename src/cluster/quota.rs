//! Quota counters in Redis: the same limits as the in-process engine
//! (`src/quota/engine.rs`), shared by every node.
//!
//! One Lua script per check (one round trip, atomic): it evaluates every
//! key the message or recipient counts against and counts in all of them
//! only if all pass, like the local engine. Minute limits are GCRA with
//! the same burst semantics (a theoretical arrival time per key, in
//! microseconds); hour and day limits are the same bucketed rolling
//! windows (5-minute buckets for the hour, hourly for the day, one bucket
//! more than the window), a Redis hash per key. Time is the Redis server's
//! (`TIME`), so the nodes' clocks need not agree.

use super::store::Cluster;
use crate::quota::Windows;
use redis::aio::ConnectionManager;
use redis::{Cmd, Script};
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// One key a check counts against, as `quota::engine` plans it.
#[derive(Debug, Clone)]
pub struct Planned<'a> {
    /// `credential`, `sender`, `domain`, `ip`, `rule`.
    pub dim: &'static str,
    pub key: Cow<'a, str>,
    pub windows: Windows,
}

/// Which window refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    /// Position of the key among the planned ones (0 is the first).
    pub index: usize,
    /// 1 minute, 2 hour, 3 day.
    pub span: u8,
    pub wait: Duration,
}

/// Which of the two scripts a command runs.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Check,
    Refund,
}

const CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowsec = tonumber(t[1])
local n = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local spans = { {300, 13}, {3600, 25} }
local worst, wi, ws = -1, 0, 0
local tats, heads = {}, {}
for i = 1, count do
  local pm = tonumber(ARGV[2 + (i - 1) * 4 + 1])
  local burst = tonumber(ARGV[2 + (i - 1) * 4 + 2])
  local limits = { tonumber(ARGV[2 + (i - 1) * 4 + 3]), tonumber(ARGV[2 + (i - 1) * 4 + 4]) }
  if pm > 0 then
    local step = 60000000 / pm
    local tat = tonumber(redis.call('GET', KEYS[(i - 1) * 3 + 1]) or '0')
    if tat < now then tat = now end
    local new = tat + n * step
    local over = new - now - burst * step
    if over > 0 then
      if over > worst then worst, wi, ws = over, i, 1 end
    else
      tats[i] = new
    end
  end
  for s = 1, 2 do
    local max = limits[s]
    if max > 0 then
      local key = KEYS[(i - 1) * 3 + 1 + s]
      local width, slots = spans[s][1], spans[s][2]
      local head = math.floor(nowsec / width)
      local all = redis.call('HGETALL', key)
      local sum, oldest, stale = 0, nil, {}
      for j = 1, #all, 2 do
        local b = tonumber(all[j])
        if b > head - slots then
          local c = tonumber(all[j + 1])
          sum = sum + c
          if c > 0 and (oldest == nil or b < oldest) then oldest = b end
        else
          stale[#stale + 1] = all[j]
        end
      end
      if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
      if sum + n > max then
        local wait = ((oldest or head) + slots) * width - nowsec
        if wait < 1 then wait = 1 end
        wait = wait * 1000000
        if wait > worst then worst, wi, ws = wait, i, s + 1 end
      end
      heads[(i - 1) * 2 + s] = head
    end
  end
end
if worst >= 0 then return { wi, ws, math.floor(worst) } end
for i = 1, count do
  if tats[i] then
    redis.call('SET', KEYS[(i - 1) * 3 + 1], string.format('%.0f', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1000)
  end
  for s = 1, 2 do
    local head = heads[(i - 1) * 2 + s]
    if head then
      local key = KEYS[(i - 1) * 3 + 1 + s]
      redis.call('HINCRBY', key, head, n)
      redis.call('EXPIRE', key, spans[s][1] * (spans[s][2] + 1))
    end
  end
end
return { 0 }
"#;

const REFUND: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowsec = tonumber(t[1])
local n = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local widths = { 300, 3600 }
for i = 1, count do
  local pm = tonumber(ARGV[2 + (i - 1) * 4 + 1])
  if pm > 0 then
    local key = KEYS[(i - 1) * 3 + 1]
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat > now then
      local back = tat - n * (60000000 / pm)
      if back < now then back = now end
      redis.call('SET', key, string.format('%.0f', back), 'PX', math.floor((back - now) / 1000) + 1000)
    end
  end
  for s = 1, 2 do
    if tonumber(ARGV[2 + (i - 1) * 4 + 2 + s]) > 0 then
      local key = KEYS[(i - 1) * 3 + 1 + s]
      if redis.call('EXISTS', key) == 1 then
        redis.call('HINCRBY', key, math.floor(nowsec / widths[s]), -n)
      end
    end
  end
end
return 0
"#;

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK));
static REFUND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REFUND));

fn arg(s: crate::quota::Setting) -> u32 {
    s.max().map_or(0, |n| n.get())
}

fn script(op: Op) -> &'static Script {
    match op {
        Op::Check => &CHECK_SCRIPT,
        Op::Refund => &REFUND_SCRIPT,
    }
}

/// A quota command ready to send: `EVALSHA` of its script.
pub struct Command {
    op: Op,
    cmd: Cmd,
}

/// The `EVALSHA` of `op`'s script over the planned keys, or None when
/// nothing is limited. Encoded straight into one `Cmd` (one buffer), with
/// the keys built in one reused string: this runs for every MAIL and
/// RCPT, and the script invocation builder allocates per key and argument.
pub fn command<'a>(
    cluster: &Cluster,
    op: Op,
    plan: &[Option<Planned<'a>>],
    unit: &str,
    n: u32,
) -> Option<Command> {
    let count = plan.iter().flatten().count();
    if count == 0 {
        return None;
    }
    let prefix = cluster.settings().key_prefix.as_str();
    let key_bytes: usize = plan
        .iter()
        .flatten()
        .map(|p| 3 * (prefix.len() + p.dim.len() + unit.len() + p.key.len() + 8))
        .sum();
    // EVALSHA, its hash, the key count, 3 keys and 4 numbers per entry, n, count.
    let mut cmd = Cmd::with_capacity(5 + 7 * count, 64 + key_bytes + 40 * count);
    let s = script(op);
    cmd.arg("EVALSHA").arg(s.get_hash()).arg(3 * count);
    let mut key = String::with_capacity(96);
    for p in plan.iter().flatten() {
        key.clear();
        key.push_str(prefix);
        key.push_str("q:");
        key.push_str(p.dim);
        key.push(':');
        key.push_str(unit);
        key.push(':');
        key.push_str(&p.key);
        let base = key.len();
        for window in [":m", ":h", ":d"] {
            key.truncate(base);
            key.push_str(window);
            cmd.arg(key.as_str());
        }
    }
    cmd.arg(n).arg(count);
    for p in plan.iter().flatten() {
        let w = p.windows;
        let burst = w.burst.max().or(w.per_minute.max()).map_or(0, |b| b.get());
        cmd.arg(arg(w.per_minute))
            .arg(burst)
            .arg(arg(w.per_hour))
            .arg(arg(w.per_day));
    }
    Some(Command { op, cmd })
}

impl Command {
    /// Sends it; loads the script first if this Redis does not have it
    /// (a restarted or flushed Redis), as `Script::invoke_async` would.
    async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<T> {
        match self.cmd.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script(self.op).load_async(conn).await?;
                self.cmd.query_async(conn).await
            }
            other => other,
        }
    }
}

/// Counts against every key of the command in Redis, or none. None: Redis
/// is down (the caller falls back); Some(Err) names the window that
/// refused.
pub fn check(cluster: &Cluster, cmd: Command) -> Option<Result<(), Over>> {
    let reply: Vec<i64> =
        cluster.call_blocking("quota check", |mut c| async move { cmd.run(&mut c).await })?;
    decode(&reply)
}

/// [`check`] for async callers (the connection, between session steps):
/// awaits Redis instead of blocking the thread.
pub async fn check_async(cluster: &Cluster, cmd: Command) -> Option<Result<(), Over>> {
    let reply: Vec<i64> = cluster
        .call("quota check", |mut c| async move { cmd.run(&mut c).await })
        .await?;
    decode(&reply)
}

fn decode(reply: &[i64]) -> Option<Result<(), Over>> {
    match reply {
        [0] => Some(Ok(())),
        [i, span, wait] if *i >= 1 => Some(Err(Over {
            index: usize::try_from(*i - 1).ok()?,
            span: u8::try_from(*span).unwrap_or(1),
            wait: Duration::from_micros(u64::try_from(*wait).unwrap_or(0)),
        })),
        _ => None,
    }
}

/// Runs a refund command (built with [`Op::Refund`]) in the background.
pub fn refund(cluster: &Arc<Cluster>, cmd: Command) {
    cluster.spawn("quota refund", move |mut conn| async move {
        cmd.run::<i64>(&mut conn).await.map(|_| ())
    });
}
