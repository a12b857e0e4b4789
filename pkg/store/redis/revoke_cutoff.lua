-- revoke_cutoff.lua: Revoke of every token and grant of a subject or a
-- client up to a cut-off, with its outbox entry, in one step.
--
-- KEYS[1] Pcut:sub:<type>:<sub> or Pcut:client:<id>   the cut-off (ms)
-- KEYS[2] P{outbox}        outbox index (zset)
-- KEYS[3] P{outbox}:data   outbox entries (hash)
-- ARGV[1] the cut-off (ms)
-- ARGV[2] its TTL (ms)
-- ARGV[3] event id, ARGV[4] its creation (ms), ARGV[5] "<subject> <data>"
--
-- Reply: {'OK', cut-off in force (ms)}. A later cut-off replaces an earlier
-- one, never the reverse; the TTL is refreshed, never shortened.
local cur = num(redis.call('GET', KEYS[1]))
local ttl = num(ARGV[2])
local value = ARGV[1]
if cur >= num(ARGV[1]) then value = int(cur) end
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], value, 'PX', int(ttl))
queue(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5])
return reply('OK', {value})
