-- device_decide.lua: DecideDevice. The user approves or denies a pending
-- device authorization (RFC 8628 §3.3), once.
--
-- KEYS[1] P{fid}:dev   device authorization (hash)
-- ARGV[1] '1' to approve, '0' to deny
-- ARGV[2] subject who approved, ARGV[3] their auth time (ms, or '')
-- ARGV[4] now (ms)
--
-- Reply: {'OK'}, or one of NOTFOUND, EXPIRED, CONFLICT (already decided).
local d = hmget(KEYS[1], {'status', 'exp'})
if d[1] == '' then return reply('NOTFOUND') end
if num(ARGV[4]) >= num(d[2]) then return reply('EXPIRED') end
if d[1] ~= 'pending' then return reply('CONFLICT') end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'status', 'approved', 'sub', ARGV[2], 'auth_time', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'status', 'denied')
end
return reply('OK')
