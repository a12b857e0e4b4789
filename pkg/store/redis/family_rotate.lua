-- family_rotate.lua: RotateRefresh (RFC 6749 §6, RFC 9700 §4.14.2). Replaces
-- the family's one live refresh token, answers a grace replay with the very
-- successor of the last rotation, or recognises a superseded token, revokes
-- the family and queues the reuse event — all in this one step, so a family
-- never has two live tokens (MISSION §0.3).
--
-- KEYS[1] P{fid}:fam    family record (hash)
-- KEYS[2] P{fid}:used   superseded refresh-token hashes (zset, scored by
--                        generation; the latest ARGV[17] only)
-- KEYS[3] P{fid}:succ   sealed successor of the last rotation (string, TTL grace)
-- KEYS[4] P{fid}:rev    family revoked mark
-- KEYS[5] Pcut:sub:<ARGV[4]>:<ARGV[5]>   subject cut-off (ms)
-- KEYS[6] Pcut:client:<ARGV[2]>          client cut-off (ms)
-- KEYS[7] P{outbox}       outbox index (zset)
-- KEYS[8] P{outbox}:data  outbox entries (hash)
-- ARGV[1]  SHA-256 of the presented refresh token (32 bytes)
-- ARGV[2]  client id presenting it
-- ARGV[3]  now (ms)
-- ARGV[4]  subject type and ARGV[5] subject KEYS[5] was built for (hints,
--          checked against the record)
-- ARGV[6]  clock skew (ms)
-- ARGV[7]  SHA-256 of the successor (32 bytes)
-- ARGV[8]  sealed successor, '' when grace is off
-- ARGV[9]  '1' when ARGV[10] narrows the scopes, '0' otherwise
-- ARGV[10] the narrowed scopes, space-separated
-- ARGV[11] grace (ms), 0 for none
-- ARGV[12] most grace replays allowed after one rotation
-- ARGV[13] TTL of the revoked mark written on reuse or cut-off (ms)
-- ARGV[14] reuse event id, ARGV[15] its creation (ms), ARGV[16] "<subject> <data>"
-- ARGV[17] how many superseded hashes to keep
--
-- Reply: {'OK', FAM fields 1..13} after a rotation; {'GRACE', sealed
-- successor, FAM fields 1..13} for a grace replay; {'STALE', subject type,
-- subject} when the hints were wrong (nothing written; run again with them);
-- or one of NOTFOUND, REVOKED, REUSED, MISMATCH, EXPIRED, SCOPE.
local presented = ARGV[1]
if redis.call('EXISTS', KEYS[4]) == 1 then
  -- Revoked. A superseded token is still told apart as reuse.
  if redis.call('ZSCORE', KEYS[2], presented) then return reply('REUSED') end
  return reply('REVOKED')
end
local f = hmget(KEYS[1], FAM)
if f[1] == '' then return reply('NOTFOUND') end
local kind
if presented == f[14] then
  kind = 'cur'
elseif presented == f[15] then
  kind = 'prev'
elseif redis.call('ZSCORE', KEYS[2], presented) then
  kind = 'used'
else
  -- A forged secret with a valid fid: not found, nothing revoked.
  return reply('NOTFOUND')
end
if f[1] ~= ARGV[2] then return reply('MISMATCH') end
if f[3] ~= ARGV[4] or f[2] ~= ARGV[5] then return reply('STALE', {f[3], f[2]}) end

local now = num(ARGV[3])
local last = math.max(num(f[7]), num(f[13]))
local idle = num(f[10])
if now >= num(f[11]) or (idle > 0 and now >= last + idle) then return reply('EXPIRED') end

if covered(f[7], cutoff(KEYS[5], KEYS[6]), ARGV[6]) then
  -- Make the cut-off's verdict permanent for this family.
  mark(KEYS[4], ARGV[13])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return reply('REVOKED')
end

if kind == 'prev' then
  local grace = num(ARGV[11])
  if grace > 0 and now - num(f[13]) <= grace and num(f[16]) < num(ARGV[12]) then
    local sealed = redis.call('GET', KEYS[3])
    if sealed then
      redis.call('HINCRBY', KEYS[1], 'grace_n', 1)
      return reply('GRACE', {sealed, unpack(f, 1, 13)})
    end
  end
end
if kind ~= 'cur' then
  -- Reuse of a superseded token: revoke the family. The superseded hashes
  -- stay as long as the mark, so that later replays are still reuse.
  mark(KEYS[4], ARGV[13])
  queue(KEYS[7], KEYS[8], ARGV[14], ARGV[15], ARGV[16])
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[13])
  return reply('REUSED')
end

-- Rotation.
local scopes = f[4]
if ARGV[9] == '1' then
  local have = {}
  for s in string.gmatch(f[4], '%S+') do have[s] = true end
  for s in string.gmatch(ARGV[10], '%S+') do
    if not have[s] then return reply('SCOPE') end
  end
  scopes = ARGV[10]
end
local expires = num(f[11])
if idle > 0 then expires = math.min(expires, now + idle) end
-- Trim first, so that the set never grows past its compact encoding.
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -num(ARGV[17]))
redis.call('ZADD', KEYS[2], f[9], f[14])
local gen = int(num(f[9]) + 1)
if scopes ~= f[4] then
  redis.call('HSET', KEYS[1], 'prev', f[14], 'cur', ARGV[7], 'gen', gen,
    'rotated_at', ARGV[3], 'grace_n', '0', 'scopes', scopes)
else
  redis.call('HSET', KEYS[1], 'prev', f[14], 'cur', ARGV[7], 'gen', gen,
    'rotated_at', ARGV[3], 'grace_n', '0')
end
redis.call('PEXPIREAT', KEYS[1], int(expires))
redis.call('PEXPIREAT', KEYS[2], int(expires))
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], ARGV[8], 'PX', int(num(ARGV[11]) + 1000))
else
  redis.call('DEL', KEYS[3])
end
f[4], f[9], f[13] = scopes, gen, ARGV[3]
return reply('OK', {unpack(f, 1, 13)})
