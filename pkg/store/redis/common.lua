-- common.lua: helpers prepended to every grant and revocation script
-- (scripts.go). They read and write only keys the calling script was given in
-- KEYS.

-- Field lists of the records, in the order scripts return them and Go decodes
-- them (scripts.go: codeFields, famFields, devFields).
local CODE = {'h', 'client', 'sub', 'redirect', 'cc', 'ccm', 'scopes',
              'resource', 'auth_time', 'created', 'exp', 'used'}
local FAM = {'client', 'sub', 'sub_type', 'scopes', 'resource', 'grant',
             'created', 'auth_time', 'gen', 'idle', 'abs_exp', 'public',
             'rotated_at', 'cur', 'prev', 'grace_n'}
local DEV = {'h', 'ucode', 'client', 'scopes', 'resource', 'interval',
             'created', 'exp', 'status', 'sub', 'auth_time', 'last_poll',
             'redeemed'}

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

-- cutoff returns the later of the subject and client cut-offs (ms), or 0.
local function cutoff(subKey, clientKey)
  return math.max(num(redis.call('GET', subKey)), num(redis.call('GET', clientKey)))
end

-- covered tells whether a grant created at created (ms) dies by a cut-off
-- (ms, 0 for none): created <= cut-off + skew.
local function covered(created, cut, skew)
  return cut > 0 and num(created) <= cut + num(skew)
end

-- mark sets a deny mark that lives at least ttl ms; it never shortens one.
local function mark(key, ttl)
  ttl = num(ttl)
  local left = redis.call('PTTL', key)
  if left == -1 or left >= ttl then return end
  redis.call('SET', key, '1', 'PX', int(ttl))
end

-- queue adds an outbox entry: id scored by its creation (ms), with its value
-- "<subject> <data>". An entry already queued keeps its place.
local function queue(index, data, id, score, value)
  if id == '' then return end
  redis.call('ZADD', index, 'NX', score, id)
  redis.call('HSET', data, id, value)
end
