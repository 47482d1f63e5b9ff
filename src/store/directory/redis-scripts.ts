/**
 * The Lua scripts of the Redis directory. Every mutation is one script, so Redis applies it
 * atomically: conditions (owner, incarnation, generation, liveness) are checked on the server,
 * never read-then-written from a client, and a slow publisher can never erase a newer entry.
 * Lookups are not scripts: a plain HMGET (the cheapest batched read Redis has: a few µs of server
 * time for 32 keys, where any EVALSHA costs 20 µs or more), filtered by the client (see
 * redis.ts).
 *
 * Keyspace (P = the prefix, default `peercache:`):
 *   P e          hash   object key -> "<generation>:<offset>:<length>:<incarnation>:<nodeId>"
 *   P o:<node>   set    the object keys a node published (to drop them when it goes)
 *   P n:<node>   string the node's current incarnation (random per join), with a TTL (PX) its
 *                       heartbeat refreshes: the liveness key. A node whose key expired is dead.
 *   P i          hash   nodeId -> "<incarnation>:<NodeInfo JSON>"
 *   P m          zset   nodeId -> liveness deadline (server ms): finds dead nodes in O(log n)
 *   P v          string membership version, bumped on every join and departure
 *
 * An entry counts only while its owner is alive under the incarnation stamped in the entry: a node
 * restarted under the same id never inherits the old process's slots. The entries of a departed
 * node are deleted by the next heartbeat of any node (`tick` sweeps), or at once on a leave.
 *
 * Scripts touch keys they do not declare (the owner's liveness key): fine on a standalone Redis
 * or Valkey (with replicas), not on Redis Cluster.
 */

/** Shared helpers, prepended to every script. ARGV[1] is always the key prefix. */
const PRELUDE = `
local P = ARGV[1]
local E = P .. 'e'
local function owner(v)
  return string.match(v, '^(%d+):%d+:%d+:([^:]*):(.*)$')
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function drop_entries(node)
  local okey = P .. 'o:' .. node
  local keys = redis.call('SMEMBERS', okey)
  for i = 1, #keys do
    local v = redis.call('HGET', E, keys[i])
    if v then
      local _, _, cnode = owner(v)
      if cnode == node then redis.call('HDEL', E, keys[i]) end
    end
  end
  redis.call('DEL', okey)
  return #keys
end
local function forget(node)
  drop_entries(node)
  redis.call('DEL', P .. 'n:' .. node)
  redis.call('HDEL', P .. 'i', node)
  redis.call('ZREM', P .. 'm', node)
  redis.call('INCR', P .. 'v')
end
local function members(out)
  local ids = redis.call('ZRANGE', P .. 'm', 0, -1)
  out[#out + 1] = redis.call('GET', P .. 'v') or '0'
  for i = 1, #ids do
    local inc = redis.call('GET', P .. 'n:' .. ids[i])
    if inc then
      local s = redis.call('HGET', P .. 'i', ids[i])
      if s and string.sub(s, 1, #inc + 1) == inc .. ':' then out[#out + 1] = s end
    end
  end
  return out
end
`;

/**
 * ARGV: P, then (key, nodeId, generation, offset, length) per entry  ->  1/0 per entry.
 * Refused: the node is not alive; another live owner holds the key (first live publisher wins);
 * the same incarnation holds it with a newer generation. A dead owner's entry is taken over.
 */
const PUBLISH = `
local out = {}
local incs = {}
local added = {}
local function inc_of(node)
  local v = incs[node]
  if v == nil then
    v = redis.call('GET', P .. 'n:' .. node)
    incs[node] = v
  end
  return v
end
local function own(node, key)
  local a = added[node]
  if a == nil then
    a = {}
    added[node] = a
  end
  a[#a + 1] = key
end
local n = (#ARGV - 1) / 5
for i = 0, n - 1 do
  local b = 2 + i * 5
  local key, node, gen = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local inc = inc_of(node)
  local ok = 0
  if inc then
    local v = gen .. ':' .. ARGV[b + 3] .. ':' .. ARGV[b + 4] .. ':' .. inc .. ':' .. node
    if redis.call('HSETNX', E, key, v) == 1 then
      own(node, key)
      ok = 1
    else
      local cgen, cinc, cnode = owner(redis.call('HGET', E, key))
      local write = true
      if cnode == node and cinc == inc then
        if tonumber(gen) < tonumber(cgen) then write = false end
      elseif cnode and inc_of(cnode) == cinc then
        write = false
      end
      if write then
        redis.call('HSET', E, key, v)
        own(node, key)
        ok = 1
      end
    end
  end
  out[i + 1] = ok
end
for node, keys in pairs(added) do
  for j = 1, #keys, 1000 do
    redis.call('SADD', P .. 'o:' .. node, unpack(keys, j, math.min(j + 999, #keys)))
  end
end
return out
`;

/** ARGV: P, then (key, nodeId, generation) per entry  ->  entries removed. Owner and generation must match. */
const REMOVE = `
local gone = {}
local byNode = {}
local n = (#ARGV - 1) / 3
for i = 0, n - 1 do
  local b = 2 + i * 3
  local key, node, gen = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local cur = redis.call('HGET', E, key)
  if cur then
    local cgen, _, cnode = owner(cur)
    if cnode == node and cgen == gen then
      gone[#gone + 1] = key
      local keys = byNode[node]
      if keys == nil then
        keys = {}
        byNode[node] = keys
      end
      keys[#keys + 1] = key
    end
  end
end
for j = 1, #gone, 1000 do
  redis.call('HDEL', E, unpack(gone, j, math.min(j + 999, #gone)))
end
for node, keys in pairs(byNode) do
  for j = 1, #keys, 1000 do
    redis.call('SREM', P .. 'o:' .. node, unpack(keys, j, math.min(j + 999, #keys)))
  end
end
return #gone
`;

/**
 * ARGV: P, nodeId, incarnation, key ttl ms, NodeInfo JSON  ->  {version, "inc:json"...} (the members).
 * A live node of that id with another incarnation refuses the join; leftovers of a dead one go.
 */
const JOIN = `
local node, inc, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
local nkey = P .. 'n:' .. node
local cur = redis.call('GET', nkey)
if cur and cur ~= inc then
  return redis.error_reply('INUSE nodeId ' .. node .. ' is already in use by a live member')
end
if not cur then drop_entries(node) end
redis.call('SET', nkey, inc, 'PX', ttl)
redis.call('HSET', P .. 'i', node, inc .. ':' .. ARGV[5])
redis.call('ZADD', P .. 'm', now_ms() + ttl, node)
redis.call('INCR', P .. 'v')
return members({})
`;

/** ARGV: P, nodeId, incarnation  ->  1 if this incarnation left (its entries are gone), else 0. */
const LEAVE = `
if redis.call('GET', P .. 'n:' .. ARGV[2]) ~= ARGV[3] then return 0 end
forget(ARGV[2])
return 1
`;

/** ARGV: P  ->  {version, "inc:json"...}. */
const MEMBERS = `
return members({})
`;

/** ARGV: P, nodeId  ->  "inc:json" of a live node, or nil. */
const NODE = `
local inc = redis.call('GET', P .. 'n:' .. ARGV[2])
if not inc then return false end
local s = redis.call('HGET', P .. 'i', ARGV[2])
if s and string.sub(s, 1, #inc + 1) == inc .. ':' then return s end
return false
`;

/**
 * The heartbeat and the membership poll in one round trip.
 * ARGV: P, nodeId ('' when not joined), incarnation, key ttl ms, known version, sweep limit
 *   -> {own, changed, version, "inc:json"...}: own = 1 refreshed, 0 this node is not a member
 *      (its key expired or Redis lost it), -1 not joined; the members follow only when the
 *      version differs from the known one.
 * Sweeps up to `limit` nodes whose deadline passed: a node whose liveness key expired is dropped
 * with its entries (whoever ticks first does it; the script makes that safe).
 */
const TICK = `
local node, inc, ttl, known, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local now = now_ms()
local own = -1
if node ~= '' then
  local nkey = P .. 'n:' .. node
  if redis.call('GET', nkey) == inc then
    redis.call('PEXPIRE', nkey, ttl)
    redis.call('ZADD', P .. 'm', now + ttl, node)
    own = 1
  else
    own = 0
  end
end
local due = redis.call('ZRANGEBYSCORE', P .. 'm', '-inf', now, 'LIMIT', 0, limit)
for i = 1, #due do
  local pttl = redis.call('PTTL', P .. 'n:' .. due[i])
  if pttl == -2 then
    forget(due[i])
  else
    local left = pttl
    if left < 0 then left = ttl end
    redis.call('ZADD', P .. 'm', now + left, due[i])
  end
end
local v = redis.call('GET', P .. 'v') or '0'
if v == known then return {own, 0, v} end
local out = {own, 1}
return members(out)
`;

export const SCRIPTS = {
  pcDirPublish: PUBLISH,
  pcDirRemove: REMOVE,
  pcDirJoin: JOIN,
  pcDirLeave: LEAVE,
  pcDirMembers: MEMBERS,
  pcDirNode: NODE,
  pcDirTick: TICK,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** The full Lua source of a script (prelude included). */
export function scriptSource(name: ScriptName): string {
  return PRELUDE + SCRIPTS[name];
}
