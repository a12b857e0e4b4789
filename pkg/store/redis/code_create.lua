-- code_create.lua: CreateAuthCode. Stores a code record unless the fid is
-- taken by a code or a family.
--
-- KEYS[1] P{fid}:code  code record (hash)
-- KEYS[2] P{fid}:fam   family record (hash), only tested
-- ARGV[1] when the record expires (Unix ms: ExpiresAt plus the reuse window)
-- ARGV[2..] field, value pairs of the record (CODE in common.lua)
--
-- Reply: {'OK'} or {'EXISTS'}.
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return reply('EXISTS') end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return reply('OK')
