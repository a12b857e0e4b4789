-- family_create.lua: CreateFamily. Starts a refresh family unless its fid
-- was revoked (a code reused before its first redemption had finished) or
-- the family exists. Cut-offs are checked by the caller, on values read in
-- the same round trip; a covered family is killed at once (grant_kill.lua).
--
-- KEYS[1] P{fid}:fam    family record (hash)
-- KEYS[2] P{fid}:rev    family revoked mark
-- ARGV[1] when the family expires (ms): min(created + idle, absolute expiry)
-- ARGV[2..] field, value pairs of the record (FAM in family_rotate.lua)
--
-- Reply: {'OK'}, {'REVOKED'} or {'EXISTS'}.
if redis.call('EXISTS', KEYS[2]) == 1 then return reply('REVOKED') end
if redis.call('EXISTS', KEYS[1]) == 1 then return reply('EXISTS') end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return reply('OK')
