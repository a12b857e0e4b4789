-- revoke_token.lua: Revoke of one access token by jti (RFC 7009), with its
-- outbox entry, in one step. The mark and the shard share the tag
-- {jti:<jti>}.
--
-- KEYS[1] P{jti:<jti>}:rev      the token's revoked mark
-- KEYS[2] P{jti:<jti>}:outbox   its outbox shard
-- ARGV[1] when the mark expires (Unix ms): the token's exp plus retain
-- ARGV[2] the shard's registration version
-- ARGV[3] event id ('' to queue nothing: a replay), ARGV[4] its entry
--
-- Reply: {'OK'}, or {'INDEX'} when the shard must be registered again
-- (nothing written). A mark is never shortened.
if ARGV[3] ~= '' and not enqueue(KEYS[2], ARGV[2], ARGV[3], ARGV[4]) then return reply('INDEX') end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
end
return reply('OK')
