-- common.lua: helpers prepended to every grant and revocation script
-- (scripts.go, after the constants it generates: SUPERSEDED_KEPT,
-- OUTBOX_CLOSED, OUTBOX_MAX_AGE). They read and write only keys the calling
-- script was given in KEYS.

-- num reads a decimal field; a missing or empty one is 0.
local function num(v)
  if v == false or v == nil or v == '' then return 0 end
  return tonumber(v)
end

-- int writes n as a decimal integer: tostring would give 1.7e+12 for a time
-- in milliseconds.
local function int(n) return string.format('%d', n) end

-- hmget reads fields of a hash, a missing field (or key) as ''.
local function hmget(key, fields)
  local v = redis.call('HMGET', key, unpack(fields))
  for i = 1, #fields do
    if not v[i] then v[i] = '' end
  end
  return v
end

-- reply returns {status, values...}: every element a string.
local function reply(status, values)
  local out = {status}
  if values then
    for i = 1, #values do out[i + 1] = values[i] end
  end
  return out
end

-- mark sets a deny mark that lives at least ttl ms; it never shortens one.
local function mark(key, ttl)
  ttl = num(ttl)
  local left = redis.call('PTTL', key)
  if left == -1 or left >= ttl then return end
  redis.call('SET', key, '1', 'PX', int(ttl))
end

-- superseded tells whether hash h is in the ring of superseded refresh-token
-- hashes (a string of 32-byte slots, family_rotate.lua).
local function superseded(ring, h)
  local r = redis.call('GET', ring)
  if not r then return false end
  local from = 1
  while true do
    local at = string.find(r, h, from, true)
    if not at then return false end
    if (at - 1) % 32 == 0 then return true end
    from = at + 1
  end
end

-- enqueue puts an outbox entry, value "<created ms> <subject> <data>", into
-- the shard (a hash in the caller's slot), unless the caller must register
-- the shard in the index first (outbox.go): it has no registration
-- (version '0'), the relay closed the shard at or after its registration,
-- or the registration is older than OUTBOX_MAX_AGE ms. It returns false
-- then, having written nothing; the caller answers 'INDEX' and the store
-- registers and runs the script again. An entry already queued is replaced:
-- its id, and so its event, is the same.
local function enqueue(shard, version, id, value)
  local v = num(version)
  if v <= 0 then return false end
  if num(redis.call('HGET', shard, OUTBOX_CLOSED)) >= v then return false end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now - math.floor(v / 1024) > OUTBOX_MAX_AGE then return false end
  redis.call('HSET', shard, id, value)
  redis.call('PERSIST', shard)
  return true
end
