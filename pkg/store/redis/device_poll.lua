-- device_poll.lua: PollDevice (RFC 8628 §3.4, §3.5). One poll of the token
-- endpoint: slow_down, pending, denied, or the single redemption of an
-- approved authorization. A poll after the redemption revokes the family and
-- queues the reuse event, in this one step. Cut-offs are checked by the
-- caller, on values read in the same round trip (grants.go).
--
-- KEYS[1] P{fid}:dev     device authorization (hash)
-- KEYS[2] P{fid}:fam     family record, deleted on reuse
-- KEYS[3] P{fid}:sup     superseded refresh hashes, deleted on reuse
-- KEYS[4] P{fid}:succ    sealed successor, deleted on reuse
-- KEYS[5] P{fid}:rev     family revoked mark
-- KEYS[6] P{fid}:outbox  the grant's outbox shard
-- ARGV[1] SHA-256 of the presented device code (32 bytes)
-- ARGV[2] client id presenting it
-- ARGV[3] now (ms)
-- ARGV[4] TTL of the revoked mark written on reuse (ms)
-- ARGV[5] the shard's registration version ('0': not registered yet)
-- ARGV[6] reuse event id, ARGV[7] its entry "<created ms> <subject> <data>"
--
-- Reply: {status, DEV fields...} with status OK (redeemed now), PENDING,
-- SLOWDOWN (pending, interval grown by 5 s) or DENIED; {'INDEX'} when a
-- reuse must queue its event but the shard is not registered (nothing
-- written; register and run again); or one of NOTFOUND, REVOKED, REUSED,
-- MISMATCH, EXPIRED.
local DEV = {'h', 'ucode', 'client', 'scopes', 'resource', 'interval',
             'created', 'exp', 'status', 'sub', 'auth_time', 'last_poll',
             'redeemed'}
local d = hmget(KEYS[1], DEV)
if d[1] == '' then
  if redis.call('EXISTS', KEYS[5]) == 1 then return reply('REVOKED') end
  return reply('NOTFOUND')
end
if d[1] ~= ARGV[1] then return reply('NOTFOUND') end
if d[13] == '1' then
  if redis.call('EXISTS', KEYS[5]) == 0 then
    if not enqueue(KEYS[6], ARGV[5], ARGV[6], ARGV[7]) then return reply('INDEX') end
    mark(KEYS[5], ARGV[4])
  end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return reply('REUSED')
end
if d[3] ~= ARGV[2] then return reply('MISMATCH') end
local now = num(ARGV[3])
if now >= num(d[8]) then return reply('EXPIRED') end
if redis.call('EXISTS', KEYS[5]) == 1 then return reply('REVOKED') end
if d[9] == 'pending' then
  local last, interval = num(d[12]), num(d[6])
  redis.call('HSET', KEYS[1], 'last_poll', ARGV[3])
  d[12] = ARGV[3]
  if last > 0 and now - last < interval then
    d[6] = int(interval + 5000)
    redis.call('HSET', KEYS[1], 'interval', d[6])
    return reply('SLOWDOWN', d)
  end
  return reply('PENDING', d)
end
if d[9] ~= 'approved' then return reply('DENIED', d) end
redis.call('HSET', KEYS[1], 'redeemed', '1')
d[13] = '1'
return reply('OK', d)
