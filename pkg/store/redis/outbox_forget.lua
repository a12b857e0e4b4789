-- outbox_forget.lua: drops closed shards from the index, each only if its
-- version is still the one it was closed at: a writer that registered since
-- has moved it (outbox.go).
--
-- KEYS[1] P{outbox}:shards   index: shard tag scored by registration version
-- ARGV    tag, version, tag, version, ...
--
-- Reply: {'OK'}.
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return reply('OK')
