-- outbox_pending.lua: PendingOutbox. Reads the oldest outbox entries in one
-- step (the index and the entries could otherwise disagree between two reads).
--
-- KEYS[1] P{outbox}        outbox index (zset: id scored by creation ms)
-- KEYS[2] P{outbox}:data   outbox entries (hash: id -> "<subject> <data>")
-- ARGV[1] newest creation to return (ms)
-- ARGV[2] most entries to return
--
-- Reply: {'OK', id, created (ms), value, id, created, value, ...}, oldest
-- first. An index member without an entry (never written by Valet) is
-- dropped.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {'OK'}
for i = 1, #ids, 2 do
  local v = redis.call('HGET', KEYS[2], ids[i])
  if v then
    out[#out + 1] = ids[i]
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], ids[i])
  end
end
return out
