"""
The Lua scripts of the Redis directory (L{msnp.directory.redis}): each
check-and-set is one script, so that Redis runs it whole while other nodes
wait.  The keys they read and write are listed in that module's docstring.
"""

# Every script that writes for a node's endpoints starts with this check:
# ARGV[1] is the node id, ARGV[2] the incarnation holding its lease (empty
# for a process without one).  An incarnation the reaper declared dead (its
# tombstone dead:NODE), or whose lease another incarnation holds, writes
# nothing: the node is fenced and told so with the FENCED error.
FENCE = """
if ARGV[2] ~= '' then
  if redis.call('GET', 'dead:' .. ARGV[1]) == ARGV[2] then
    return redis.error_reply('FENCED')
  end
  local lease = redis.call('GET', 'node:' .. ARGV[1])
  if lease and string.sub(lease, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then
    return redis.error_reply('FENCED')
  end
end
"""

# Put a new endpoint's record in place; with ARGV[5] "1", first take out
# the user's other endpoints of the same protocol and return their records.
ATTACH = FENCE + """
local replaced = {}
if ARGV[5] == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local id, rec = all[i], all[i + 1]
    if id ~= ARGV[3] then
      local decoded = cjson.decode(rec)
      local other = decoded['f']['instance'] or ''
      if type(other) ~= 'string' then other = '' end
      -- Points of presence of different instances stay side by side.
      if decoded['f']['protocol'] == ARGV[6] and (ARGV[8] == '' or other == '' or string.lower(other) == ARGV[8]) then
        redis.call('HDEL', KEYS[1], id)
        table.insert(replaced, rec)
      end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[7] .. ' ' .. ARGV[3])
return replaced
"""

DETACH = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2] .. ' ' .. ARGV[1])
return 1
"""

# The endpoint ids of each of KEYS (ep:H), in order.
ENDPOINT_IDS = FENCE + """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HKEYS', key)
end
return found
"""

WITHDRAW = """
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Publish a presence record (ARGV[3] endpoint id, ARGV[4] the record).
PUBLISH = FENCE + """
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'rec', ARGV[4])
return 1
"""

# A message into another node's inbox (KEYS[1]), ARGV[3] its maximum length.
SEND = FENCE + """
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[4])
"""

# Put an endpoint back after Redis lost it (restarted empty, or a replica
# promoted before it had everything): its record, and the presence it
# published unless another endpoint's is there now.  With ARGV[7] (its
# protocol, for an endpoint attached alone; ARGV[8] its instance), an
# endpoint whose record is gone while the user has another that its attach
# would have replaced (that protocol, the same instance or one unnamed) was
# replaced: it is not put back, and 0 is returned.
REASSERT = FENCE + """
if ARGV[7] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[3]) == 0 then
  for _, rec in ipairs(redis.call('HVALS', KEYS[1])) do
    local decoded = cjson.decode(rec)
    local other = decoded['f']['instance'] or ''
    if type(other) ~= 'string' then other = '' end
    if decoded['f']['protocol'] == ARGV[7] and (ARGV[8] == '' or other == '' or string.lower(other) == ARGV[8]) then
      return 0
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[6] .. ' ' .. ARGV[3])
if ARGV[5] ~= '' then
  local holder = redis.call('HGET', KEYS[3], 'id')
  if not holder or holder == ARGV[3] then
    redis.call('HSET', KEYS[3], 'id', ARGV[3], 'rec', ARGV[5])
  end
end
return 1
"""

# The sweep: which of this node's endpoints (ARGV[3..], their records in
# KEYS[2..]) have no record any more.  False while the lease (KEYS[1]) is
# missing: Redis lost its data, and the beat puts the records back.
SWEEP = FENCE + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local gone = {}
for i = 2, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[i + 1]) == 0 then
    table.insert(gone, ARGV[i + 1])
  end
end
return gone
"""

# Renew this incarnation's lease (KEYS: node:ID, dead:ID, nodes, nodeinc;
# ARGV: node id, incarnation, lease value, lease in ms).  Fenced (the FENCED
# error) once reaped or replaced; returns 1 when the lease was missing
# (the first beat, or Redis lost it), else 0.
HEARTBEAT = """
if redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.error_reply('FENCED')
end
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then
  return redis.error_reply('FENCED')
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], now[1] * 1000 + math.floor(now[2] / 1000), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
if current then return 0 end
return 1
"""

# The nodes of KEYS[1] (nodes) whose lease has expired.
EXPIRED = """
local expired = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', 'node:' .. id) == 0 then
    table.insert(expired, id)
  end
end
return expired
"""

# The live nodes with their lease values.
LIVE = """
local live = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local value = redis.call('GET', 'node:' .. id)
  if value then
    table.insert(live, id)
    table.insert(live, value)
  end
end
return live
"""

# Reap node ARGV[1] whose lease expired (KEYS: node:ID, nodeeps:ID,
# inbox:ID, nodes, dead:ID, nodeinc): unless it renewed meanwhile or was
# reaped already, remove its endpoints, its inbox, its membership, leave
# the tombstone that fences its incarnation, and return the presence
# records its endpoints had published (each user whose watchers must now
# be told they went offline).
REAP = """
if redis.call('EXISTS', KEYS[1]) == 1 or not redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  return false
end
local gone = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local space = string.find(member, ' ', 1, true)
  local handle, id = string.sub(member, 1, space - 1), string.sub(member, space + 1)
  redis.call('HDEL', 'ep:' .. handle, id)
  if redis.call('HGET', 'pres:' .. handle, 'id') == id then
    table.insert(gone, redis.call('HGET', 'pres:' .. handle, 'rec'))
    redis.call('DEL', 'pres:' .. handle)
  end
end
local incarnation = redis.call('HGET', KEYS[6], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[6], ARGV[1])
if incarnation then
  redis.call('SET', KEYS[5], incarnation, 'EX', 3600)
end
return gone
"""

# A graceful stop: the lease of this incarnation goes.
LEAVE = """
local lease = redis.call('GET', KEYS[1])
if lease and string.sub(lease, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

PRESENCE_OF = """
local found = {}
for i, key in ipairs(KEYS) do
  found[i] = redis.call('HGET', key, 'rec') or ''
end
return found
"""

# Forget what a previous run of this node left: its endpoints, and the
# presence they published.
FORGET_NODE = """
local members = redis.call('SMEMBERS', KEYS[1])
for _, member in ipairs(members) do
  local space = string.find(member, ' ', 1, true)
  local handle, id = string.sub(member, 1, space - 1), string.sub(member, space + 1)
  redis.call('HDEL', 'ep:' .. handle, id)
  if redis.call('HGET', 'pres:' .. handle, 'id') == id then
    redis.call('DEL', 'pres:' .. handle)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return #members
"""
