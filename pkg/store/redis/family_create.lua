-- family_create.lua: CreateFamily. Starts a refresh family unless its fid
-- was revoked (a code reused before its first redemption had finished), the
-- family exists, or a cut-off covers its creation.
--
-- KEYS[1] P{fid}:fam    family record (hash)
-- KEYS[2] P{fid}:rev    family revoked mark
-- KEYS[3] Pcut:sub:<type>:<sub>   subject cut-off (ms)
-- KEYS[4] Pcut:client:<client>    client cut-off (ms)
-- ARGV[1] when the family expires (ms): min(created + idle, absolute expiry)
-- ARGV[2..] field, value pairs of the record (FAM in common.lua)
--
-- Reply: {'OK'}, {'REVOKED'} or {'EXISTS'}.
if redis.call('EXISTS', KEYS[2]) == 1 then return reply('REVOKED') end
if redis.call('EXISTS', KEYS[1]) == 1 then return reply('EXISTS') end
local created = ''
for i = 2, #ARGV, 2 do
  if ARGV[i] == 'created' then created = ARGV[i + 1] end
end
if covered(created, cutoff(KEYS[3], KEYS[4]), 0) then return reply('REVOKED') end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return reply('OK')
