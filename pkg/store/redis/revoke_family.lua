-- revoke_family.lua: Revoke of a refresh family (admin, RFC 7009 for a
-- refresh token, logout), with its outbox entry, in one step. Every later
-- redemption under the fid fails: the mark answers while it lives, and the
-- records it would need are gone.
--
-- KEYS[1] P{fid}:rev    family revoked mark
-- KEYS[2] P{fid}:fam    family record
-- KEYS[3] P{fid}:used   superseded refresh hashes
-- KEYS[4] P{fid}:succ   sealed successor
-- KEYS[5] P{fid}:code   authorization code
-- KEYS[6] P{fid}:dev    device authorization
-- KEYS[7] P{outbox}       outbox index (zset)
-- KEYS[8] P{outbox}:data  outbox entries (hash)
-- ARGV[1] TTL of the mark (ms): retain
-- ARGV[2] event id, ARGV[3] its creation (ms), ARGV[4] "<subject> <data>"
--
-- Reply: {'OK'}.
mark(KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
queue(KEYS[7], KEYS[8], ARGV[2], ARGV[3], ARGV[4])
return reply('OK')
