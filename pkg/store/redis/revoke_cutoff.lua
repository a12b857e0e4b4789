-- revoke_cutoff.lua: Revoke of every token and grant of a subject or a
-- client up to a cut-off, with its outbox entry, in one step. The cut-off
-- and the shard share the tag {sub:<type>:<sub>} or {client:<id>}.
--
-- KEYS[1] P{sub:<type>:<sub>}:cut or P{client:<id>}:cut   the cut-off (ms)
-- KEYS[2] the outbox shard of the same tag
-- ARGV[1] the cut-off (ms)
-- ARGV[2] its TTL (ms)
-- ARGV[3] the shard's registration version
-- ARGV[4] event id ('' to queue nothing: a replay), ARGV[5] its entry
--
-- Reply: {'OK', cut-off in force (ms)}, or {'INDEX'} when the shard must be
-- registered again (nothing written). A later cut-off replaces an earlier
-- one, never the reverse; the TTL is refreshed, never shortened.
if ARGV[4] ~= '' and not enqueue(KEYS[2], ARGV[3], ARGV[4], ARGV[5]) then return reply('INDEX') end
local cur = num(redis.call('GET', KEYS[1]))
local ttl = num(ARGV[2])
local value = ARGV[1]
if cur >= num(ARGV[1]) then value = int(cur) end
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], value, 'PX', int(ttl))
return reply('OK', {value})
