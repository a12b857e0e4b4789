-- code_redeem.lua: RedeemAuthCode (RFC 6749 §4.1.2, RFC 9700). An
-- authorization code is redeemed once; a second redemption of the right code
-- revokes the family and queues the reuse event, in this one step.
--
-- KEYS[1] P{fid}:code   code record (hash)
-- KEYS[2] P{fid}:fam    family record, deleted on reuse
-- KEYS[3] P{fid}:used   superseded refresh hashes, deleted on reuse
-- KEYS[4] P{fid}:succ   sealed successor, deleted on reuse
-- KEYS[5] P{fid}:rev    family revoked mark
-- KEYS[6] Pcut:sub:user:<ARGV[4]>   subject cut-off (ms)
-- KEYS[7] Pcut:client:<ARGV[2]>     client cut-off (ms)
-- KEYS[8] P{outbox}       outbox index (zset)
-- KEYS[9] P{outbox}:data  outbox entries (hash)
-- ARGV[1] SHA-256 of the presented code (32 bytes)
-- ARGV[2] client id presenting it
-- ARGV[3] now (ms)
-- ARGV[4] subject KEYS[6] was built for (a hint; checked against the record)
-- ARGV[5] clock skew (ms)
-- ARGV[6] TTL of the revoked mark written on reuse (ms)
-- ARGV[7] reuse event id, ARGV[8] its creation (ms), ARGV[9] "<subject> <data>"
--
-- Reply: {'OK', CODE fields...}, {'STALE', subject} when ARGV[4] was not the
-- code's subject (nothing written; run again with it), or one of NOTFOUND,
-- REVOKED, REUSED, MISMATCH, EXPIRED.
local c = hmget(KEYS[1], CODE)
if c[1] == '' then
  if redis.call('EXISTS', KEYS[5]) == 1 then return reply('REVOKED') end
  return reply('NOTFOUND')
end
-- A wrong secret with a valid fid is only not found: the fid is public.
if c[1] ~= ARGV[1] then return reply('NOTFOUND') end
if c[12] == '1' then
  -- Reuse: revoke whatever the first redemption issued. The event is queued
  -- by the step that revokes; a family already revoked has its event.
  if redis.call('EXISTS', KEYS[5]) == 0 then
    mark(KEYS[5], ARGV[6])
    queue(KEYS[8], KEYS[9], ARGV[7], ARGV[8], ARGV[9])
  end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return reply('REUSED')
end
if c[2] ~= ARGV[2] then
  -- Another client: the code is spent (RFC 6749 §4.1.3).
  redis.call('HSET', KEYS[1], 'used', '1')
  return reply('MISMATCH')
end
if num(ARGV[3]) >= num(c[11]) then return reply('EXPIRED') end
if redis.call('EXISTS', KEYS[5]) == 1 then return reply('REVOKED') end
if c[3] ~= ARGV[4] then return reply('STALE', {c[3]}) end
if covered(c[10], cutoff(KEYS[6], KEYS[7]), ARGV[5]) then return reply('REVOKED') end
redis.call('HSET', KEYS[1], 'used', '1')
c[12] = '1'
return reply('OK', c)
