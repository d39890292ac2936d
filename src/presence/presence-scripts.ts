/**
 * The Lua scripts behind Redis presence. Each runs atomically, so of all instances exactly one
 * sees a user's count go 0 → 1 (it reports `joined`) or 1 → 0 (it reports `left`). Layout,
 * under the deployment's presence base B (`<prefix>:presence`, on a cluster `{<prefix>}:presence`,
 * see RedisNames):
 * - B:conns:<roomId>   hash connectionId → userId (connections joined to the room)
 * - B:users:<roomId>   hash userId → number of that user's connections in the room
 * - B:instance:<id>    set of "roomId\nconnectionId" entered through instance id
 * - B:instances        zset instance id → lease expiry (ms on Redis's clock)
 * - B:user-conns:<userId>    hash slotId → instance id (the user's open connections, and ones
 *                            being admitted, on every instance: MAX_CONNECTIONS_PER_USER)
 * - B:instance-conns:<id>    set of "slotId\nuserId" admitted through instance id
 * Room ids cannot contain a newline (see chat.schemas), and slot ids are UUIDs, so the sets' members split unambiguously.
 * SWEEP builds the keys of a dead instance's rooms itself (they cannot be known in advance); on a
 * cluster that is allowed because they hash to the same slot as its KEYS (the hash tag in B).
 */

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: conns, users, instance set, instances; ARGV: connectionId, userId, set member, instance id.
 * Returns 1 when the user just appeared, 0 when not (already there, or a repeat), and -1 when the
 * instance holds no lease (it was swept as dead, or Redis lost its data): then it must re-register.
 */
export const ENTER = `
if not redis.call('ZSCORE', KEYS[4], ARGV[4]) then return -1 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[3], ARGV[3])
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then return 1 end
return 0`;

/** KEYS: conns, users, instance set; ARGV: connectionId, set member. Returns the userId that just left the room, or nil. */
export const EXIT = `
redis.call('SREM', KEYS[3], ARGV[2])
local userId = redis.call('HGET', KEYS[1], ARGV[1])
if not userId then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], userId, -1) > 0 then return false end
redis.call('HDEL', KEYS[2], userId)
return userId`;

/** KEYS: instances; ARGV: instance id, lease ms. Renews the lease; returns 1 when the instance had none. */
export const HEARTBEAT = `
${NOW_MS}
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])`;

/**
 * KEYS: user-conns, instance-conns, instances; ARGV: slot id, instance id, cap, set member.
 * Counts the user's slots on instances whose lease has not expired (forgetting those of instances
 * that hold none at all) and takes one only below the cap: 1 taken, 0 refused, -1 when this
 * instance holds no lease (as in ENTER). One script, so two instances admitting the same user at
 * once cannot both take the last slot.
 */
export const TAKE_SLOT = `
${NOW_MS}
if not redis.call('ZSCORE', KEYS[3], ARGV[2]) then return -1 end
local entries = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 1, #entries, 2 do
  local lease = redis.call('ZSCORE', KEYS[3], entries[i + 1])
  if not lease then redis.call('HDEL', KEYS[1], entries[i])
  elseif tonumber(lease) >= now then live = live + 1 end
end
if live >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return 1`;

/**
 * KEYS: user-conns, instance-conns, instances; ARGV: slot id, instance id, set member. Records a
 * slot without the cap (reconcile restoring connections that are open already); -1 without a lease.
 */
export const PUT_SLOT = `
if not redis.call('ZSCORE', KEYS[3], ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`;

/** KEYS: user-conns, instance-conns; ARGV: slot id, instance id, set member. Frees a slot this instance holds. */
export const FREE_SLOT = `
redis.call('SREM', KEYS[2], ARGV[3])
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`;

/**
 * KEYS: instances; ARGV: the presence base B, and an instance id to release (its own, at shutdown) or nothing
 * to drop every instance whose lease expired (at most 16 per call). Removes their connections (room
 * entries and connection-cap slots) and returns what that changed as a flat list: roomId, userId, roomId, userId, ...
 */
export const SWEEP = `
local instances
if ARGV[2] then
  instances = { ARGV[2] }
else
  ${NOW_MS}
  instances = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
end
local left = {}
for _, id in ipairs(instances) do
  local set = ARGV[1] .. ':instance:' .. id
  for _, member in ipairs(redis.call('SMEMBERS', set)) do
    local sep = string.find(member, '\\n', 1, true)
    local roomId = string.sub(member, 1, sep - 1)
    local connId = string.sub(member, sep + 1)
    local conns = ARGV[1] .. ':conns:' .. roomId
    local users = ARGV[1] .. ':users:' .. roomId
    local userId = redis.call('HGET', conns, connId)
    if userId then
      redis.call('HDEL', conns, connId)
      if redis.call('HINCRBY', users, userId, -1) <= 0 then
        redis.call('HDEL', users, userId)
        left[#left + 1] = roomId
        left[#left + 1] = userId
      end
    end
  end
  redis.call('DEL', set)
  local slots = ARGV[1] .. ':instance-conns:' .. id
  for _, member in ipairs(redis.call('SMEMBERS', slots)) do
    local sep = string.find(member, '\\n', 1, true)
    local userConns = ARGV[1] .. ':user-conns:' .. string.sub(member, sep + 1)
    local slotId = string.sub(member, 1, sep - 1)
    if redis.call('HGET', userConns, slotId) == id then redis.call('HDEL', userConns, slotId) end
  end
  redis.call('DEL', slots)
  redis.call('ZREM', KEYS[1], id)
end
return left`;
