//! The Lua scripts of [`super::RedisCounter`] (each atomic, as every Redis script).
//!
//! Keys, under the prefix `P` (the counter's `key` setting):
//! - `P:lease:<node>`: a node's lease (a string with a TTL the node refreshes).
//! - `P:live:<operator>`, `P:wait:<operator>`: hashes, node → that node's live (waiting) pairs of
//!   the operator. A field whose node's lease lapsed is deleted the next time the operator is
//!   counted, so a dead node's pairs stop counting at most one lease after its last refresh.
//! - `P:min:<operator>:<minute>`: pairs created in that UTC minute (TTL 120 s).
//! - `P:day:<operator>:<day>`: bytes relayed by pairs that ended that UTC day (TTL 2 days).
//! - `P:ops`: sorted set, operator → last admission (Unix seconds): the operator bound. When full,
//!   operators idle for a day with no live pair are dropped (64 per admission at most).
//!
//! Keys are built inside the scripts from the prefix (the other nodes' leases are only known
//! there): fine on one Redis (or Sentinel), which is what the datastore supports; not Redis
//! Cluster.
//!
//! Both scripts answer `{code, live, waiting, pairs this minute, bytes today}` of the operator.

/// Shared by both scripts: `usage(p, op, minute, day)` sums the live nodes' fields (dropping the
/// fields of nodes whose lease lapsed) and reads the window counts.
const USAGE: &str = r"
local function sum(p, k)
  local total = 0
  local all = redis.call('HGETALL', k)
  for i = 1, #all, 2 do
    if redis.call('EXISTS', p .. ':lease:' .. all[i]) == 1 then
      total = total + tonumber(all[i + 1])
    else
      redis.call('HDEL', k, all[i])
    end
  end
  return total
end
local function usage(p, op, minute, day)
  local live = sum(p, p .. ':live:' .. op)
  local waiting = sum(p, p .. ':wait:' .. op)
  local created = tonumber(redis.call('GET', p .. ':min:' .. op .. ':' .. minute) or '0')
  local bytes = tonumber(redis.call('GET', p .. ':day:' .. op .. ':' .. day) or '0')
  return live, waiting, created, bytes
end
";

/// `ARGV`: prefix, node, operator, now (Unix s), minute, day, lease (ms), operator bound, then the
/// limits of live pairs, pairs per minute, waiting pairs and bytes per day (0: unlimited).
/// `code`: 0 admitted (the answer counts the new pair), 1–4 the first quota reached in
/// [`super::QuotaKind::ALL`]'s order, -2 the operator bound is full.
const ADMIT_BODY: &str = r"
local p, node, op = ARGV[1], ARGV[2], ARGV[3]
local now, minute, day = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local ops = p .. ':ops'
redis.call('SET', p .. ':lease:' .. node, '1', 'PX', ARGV[7])
if not redis.call('ZSCORE', ops, op) then
  local cap = tonumber(ARGV[8])
  if redis.call('ZCARD', ops) >= cap then
    local idle = redis.call('ZRANGEBYSCORE', ops, '-inf', now - 86400, 'LIMIT', 0, 64)
    for _, o in ipairs(idle) do
      sum(p, p .. ':live:' .. o)
      sum(p, p .. ':wait:' .. o)
      if redis.call('EXISTS', p .. ':live:' .. o) == 0 then redis.call('ZREM', ops, o) end
    end
    if redis.call('ZCARD', ops) >= cap then return {-2, 0, 0, 0, 0} end
  end
end
local live, waiting, created, bytes = usage(p, op, minute, day)
local limits = {tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])}
local used = {live + 1, created + 1, waiting + 1}
for i = 1, 3 do
  if limits[i] > 0 and used[i] > limits[i] then return {i, live, waiting, created, bytes} end
end
if limits[4] > 0 and bytes >= limits[4] then return {4, live, waiting, created, bytes} end
redis.call('HINCRBY', p .. ':live:' .. op, node, 1)
redis.call('HINCRBY', p .. ':wait:' .. op, node, 1)
local mk = p .. ':min:' .. op .. ':' .. minute
redis.call('INCR', mk)
redis.call('EXPIRE', mk, 120)
redis.call('ZADD', ops, now, op)
return {0, live + 1, waiting + 1, created + 1, bytes}
";

/// `ARGV`: prefix, node, operator, minute, day, lease (ms), then the changes of this node's live
/// and waiting pairs (signed; a count reaching 0 deletes the field) and the bytes to add to the
/// day. `code`: 0.
const RELEASE_BODY: &str = r"
local p, node, op, minute, day = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SET', p .. ':lease:' .. node, '1', 'PX', ARGV[6])
local function change(k, n)
  if n ~= 0 then
    local v = redis.call('HINCRBY', k, node, n)
    if v <= 0 then redis.call('HDEL', k, node) end
  end
end
change(p .. ':live:' .. op, tonumber(ARGV[7]))
change(p .. ':wait:' .. op, tonumber(ARGV[8]))
local bytes = tonumber(ARGV[9])
if bytes > 0 then
  local dk = p .. ':day:' .. op .. ':' .. day
  redis.call('INCRBY', dk, bytes)
  redis.call('EXPIRE', dk, 172800)
end
local live, waiting, created, total = usage(p, op, minute, day)
return {0, live, waiting, created, total}
";

/// `ARGV`: prefix, node, lease (ms). Refreshes the node's lease.
pub(super) const LEASE: &str = r"
redis.call('SET', ARGV[1] .. ':lease:' .. ARGV[2], '1', 'PX', ARGV[3])
return {1}
";

/// The admission script (see [`ADMIT_BODY`]).
pub(super) fn admit() -> String {
    format!("{USAGE}{ADMIT_BODY}")
}

/// The release script (see [`RELEASE_BODY`]).
pub(super) fn release() -> String {
    format!("{USAGE}{RELEASE_BODY}")
}
