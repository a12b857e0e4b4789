-- code_redeem.lua: RedeemAuthCode (RFC 6749 §4.1.2, RFC 9700). An
-- authorization code is redeemed once; a second redemption of the right code
-- revokes the family and queues the reuse event, in this one step. Cut-offs
-- are checked by the caller, on values read in the same round trip
-- (grants.go, "The cut-off check" in docs/redis.md).
--
-- KEYS[1] P{fid}:code    code record (hash)
-- KEYS[2] P{fid}:fam     family record, deleted on reuse
-- KEYS[3] P{fid}:sup     superseded refresh hashes, deleted on reuse
-- KEYS[4] P{fid}:succ    sealed successor, deleted on reuse
-- KEYS[5] P{fid}:rev     family revoked mark
-- KEYS[6] P{fid}:outbox  the grant's outbox shard
-- ARGV[1] SHA-256 of the presented code (32 bytes)
-- ARGV[2] client id presenting it
-- ARGV[3] now (ms)
-- ARGV[4] TTL of the revoked mark written on reuse (ms)
-- ARGV[5] the shard's registration version ('0': not registered yet)
-- ARGV[6] reuse event id, ARGV[7] its entry "<created ms> <subject> <data>"
--
-- Reply: {'OK', CODE fields...}; {'INDEX'} when a reuse must queue its event
-- but the shard is not registered (nothing written; register and run again);
-- or one of NOTFOUND, REVOKED, REUSED, MISMATCH, EXPIRED.
local CODE = {'h', 'client', 'sub', 'redirect', 'cc', 'ccm', 'scopes',
              'resource', 'auth_time', 'created', 'exp', 'used'}
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
    if not enqueue(KEYS[6], ARGV[5], ARGV[6], ARGV[7]) then return reply('INDEX') end
    mark(KEYS[5], ARGV[4])
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
-- No :rev check here: every step that writes :rev deletes the code or finds
-- it used (revoke_family, grant_kill, the reuse branches), so an unused code
-- is never under a mark.
redis.call('HSET', KEYS[1], 'used', '1')
c[12] = '1'
return reply('OK', c)
