-- family_rotate.lua: RotateRefresh (RFC 6749 §6, RFC 9700 §4.14.2). Replaces
-- the family's one live refresh token, answers a grace replay with the very
-- successor of the last rotation, or recognises a superseded token, revokes
-- the family and queues the reuse event — all in this one step, so a family
-- never has two live tokens (MISSION §0.3). Cut-offs are checked by the
-- caller, on values read in the same round trip (grants.go).
--
-- KEYS[1] P{fid}:fam     family record (hash)
-- KEYS[2] P{fid}:sup     superseded refresh-token hashes: a ring of
--                        SUPERSEDED_KEPT 32-byte slots, the token superseded
--                        at generation g in slot (g - 1) mod SUPERSEDED_KEPT
-- KEYS[3] P{fid}:succ    sealed successor of the last rotation (string, TTL grace)
-- KEYS[4] P{fid}:rev     family revoked mark
-- KEYS[5] P{fid}:outbox  the grant's outbox shard
-- ARGV[1]  SHA-256 of the presented refresh token (32 bytes)
-- ARGV[2]  client id presenting it
-- ARGV[3]  now (ms)
-- ARGV[4]  SHA-256 of the successor (32 bytes)
-- ARGV[5]  sealed successor, '' when grace is off
-- ARGV[6]  '1' when ARGV[7] narrows the scopes, '0' otherwise
-- ARGV[7]  the narrowed scopes, space-separated
-- ARGV[8]  grace (ms), 0 for none
-- ARGV[9]  most grace replays allowed after one rotation
-- ARGV[10] TTL of the revoked mark written on reuse (ms)
-- ARGV[11] the shard's registration version ('0': not registered yet)
-- ARGV[12] reuse event id, ARGV[13] its entry "<created ms> <subject> <data>"
--
-- Reply: {'OK', FAM fields 1..13} after a rotation; {'GRACE', sealed
-- successor, FAM fields 1..13} for a grace replay; {'INDEX'} when a reuse
-- must queue its event but the shard is not registered (nothing written;
-- register and run again); or one of NOTFOUND, REVOKED, REUSED, MISMATCH,
-- EXPIRED, SCOPE.
local FAM = {'client', 'sub', 'sub_type', 'scopes', 'resource', 'grant',
             'created', 'auth_time', 'gen', 'idle', 'abs_exp', 'public',
             'rotated_at', 'cur', 'prev', 'grace_n', 'ttl_at'}
local presented = ARGV[1]
local f = hmget(KEYS[1], FAM)
if f[1] == '' then
  -- Every step that writes :rev deletes :fam, and family_create refuses a
  -- revoked fid: a live record is never under a mark, so :rev is only read
  -- here. A superseded token of a revoked family is still told apart as
  -- reuse.
  if redis.call('EXISTS', KEYS[4]) == 1 then
    if superseded(KEYS[2], presented) then return reply('REUSED') end
    return reply('REVOKED')
  end
  return reply('NOTFOUND')
end
local kind
if presented == f[14] then
  kind = 'cur'
elseif presented == f[15] then
  kind = 'prev'
elseif superseded(KEYS[2], presented) then
  kind = 'used'
else
  -- A forged secret with a valid fid: not found, nothing revoked.
  return reply('NOTFOUND')
end
if f[1] ~= ARGV[2] then return reply('MISMATCH') end

local now = num(ARGV[3])
local last = math.max(num(f[7]), num(f[13]))
local idle = num(f[10])
if now >= num(f[11]) or (idle > 0 and now >= last + idle) then return reply('EXPIRED') end

if kind == 'prev' then
  local grace = num(ARGV[8])
  if grace > 0 and now - num(f[13]) <= grace and num(f[16]) < num(ARGV[9]) then
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
  if not enqueue(KEYS[5], ARGV[11], ARGV[12], ARGV[13]) then return reply('INDEX') end
  mark(KEYS[4], ARGV[10])
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[10])
  return reply('REUSED')
end

-- Rotation.
local scopes = f[4]
if ARGV[6] == '1' then
  local have = {}
  for s in string.gmatch(f[4], '%S+') do have[s] = true end
  for s in string.gmatch(ARGV[7], '%S+') do
    if not have[s] then return reply('SCOPE') end
  end
  scopes = ARGV[7]
end
local gen = num(f[9])
-- The token superseded now is generation gen: it takes the ring's oldest
-- slot once the ring is full. One SETRANGE, whatever the ring holds.
redis.call('SETRANGE', KEYS[2], ((gen - 1) % SUPERSEDED_KEPT) * 32, f[14])
local next = int(gen + 1)
local set = {'prev', f[14], 'cur', ARGV[4], 'gen', next, 'rotated_at', ARGV[3], 'grace_n', '0'}
if scopes ~= f[4] then
  set[#set + 1], set[#set + 2] = 'scopes', scopes
end
-- The keys must live until the family's expiry, which this rotation pushes
-- to now + idle (the script decides expiry from the fields; TTLs only
-- collect the garbage). ttl_at is the TTL the keys have: it is pushed, with
-- idle/16 to spare, only once the expiry passes it, so most rotations set no
-- TTL. The ring gets its TTL when the first rotation (no prev yet) creates it.
local abs = num(f[11])
local expires = idle > 0 and math.min(abs, now + idle) or abs
if num(f[17]) < expires or f[15] == '' then
  local ttl = int(idle > 0 and math.min(abs, expires + math.floor(idle / 16)) or abs)
  redis.call('PEXPIREAT', KEYS[1], ttl)
  redis.call('PEXPIREAT', KEYS[2], ttl)
  set[#set + 1], set[#set + 2] = 'ttl_at', ttl
end
redis.call('HSET', KEYS[1], unpack(set))
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[3], ARGV[5], 'PX', int(num(ARGV[8]) + 1000))
else
  redis.call('DEL', KEYS[3])
end
f[4], f[9], f[13] = scopes, next, ARGV[3]
return reply('OK', {unpack(f, 1, 13)})
