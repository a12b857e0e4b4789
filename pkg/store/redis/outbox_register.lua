-- outbox_register.lua: registers an outbox shard in the index before a step
-- that may queue into it (outbox.go). The version is the index node's clock
-- in ms times 1024, made unique and increasing by the counter: it orders the
-- relay's work and fences a registration against the relay forgetting the
-- shard (enqueue in common.lua, outbox_read.lua).
--
-- KEYS[1] P{outbox}:shards   index: shard tag scored by registration version
-- KEYS[2] P{outbox}:seq      the last version handed out
-- ARGV[1] the shard's tag
--
-- Reply: {'OK', version}.
local t = redis.call('TIME')
local v = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1024
local last = num(redis.call('GET', KEYS[2]))
if v <= last then v = last + 1 end
redis.call('SET', KEYS[2], int(v))
redis.call('ZADD', KEYS[1], int(v), ARGV[1])
return reply('OK', {int(v)})
