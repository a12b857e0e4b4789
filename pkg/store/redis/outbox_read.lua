-- outbox_read.lua: PendingOutbox's read of one shard. Returns its entries; a
-- shard found empty whose registration the relay may retire (ARGV[2]) is
-- closed in the same step: OUTBOX_CLOSED records the version, so that a
-- writer registered at or before it registers again instead of queueing
-- into a shard the index may no longer list (enqueue in common.lua). A
-- closed, empty shard expires.
--
-- KEYS[1] P{tag}:outbox   the shard (hash: event id -> entry)
-- ARGV[1] the version the index lists the shard at
-- ARGV[2] '1' when the shard may be closed if empty, '0' otherwise
-- ARGV[3] how long a closed, empty shard is kept (ms)
--
-- Reply: {'OK', id, entry, id, entry, ...}, or {'CLOSED'}.
local all = redis.call('HGETALL', KEYS[1])
local out = {'OK'}
for i = 1, #all, 2 do
  if all[i] ~= OUTBOX_CLOSED then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
if #out > 1 or ARGV[2] ~= '1' then return out end
local v = num(ARGV[1])
if num(redis.call('HGET', KEYS[1], OUTBOX_CLOSED)) < v then
  redis.call('HSET', KEYS[1], OUTBOX_CLOSED, int(v))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return reply('CLOSED')
