-- device_create.lua: CreateDeviceCode (RFC 8628 §3.2). Stores a device
-- authorization unless its fid is taken. The user-code index is written
-- before, by its own command (it lives outside the {fid} slot).
--
-- KEYS[1] P{fid}:dev   device authorization (hash)
-- KEYS[2] P{fid}:fam   family record (hash), only tested
-- ARGV[1] when the record expires (Unix ms: ExpiresAt plus the reuse window)
-- ARGV[2..] field, value pairs of the record (DEV in common.lua)
--
-- Reply: {'OK'} or {'EXISTS'}.
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return reply('EXISTS') end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return reply('OK')
