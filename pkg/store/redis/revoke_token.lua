-- revoke_token.lua: Revoke of one access token by jti (RFC 7009), with its
-- outbox entry, in one step.
--
-- KEYS[1] Prev:jti:<jti>   the token's revoked mark
-- KEYS[2] P{outbox}        outbox index (zset)
-- KEYS[3] P{outbox}:data   outbox entries (hash)
-- ARGV[1] when the mark expires (Unix ms): the token's exp plus retain
-- ARGV[2] event id, ARGV[3] its creation (ms), ARGV[4] "<subject> <data>"
--
-- Reply: {'OK'}. A mark is never shortened.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
end
queue(KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[4])
return reply('OK')
