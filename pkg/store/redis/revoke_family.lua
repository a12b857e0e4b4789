-- revoke_family.lua: Revoke of a refresh family (admin, RFC 7009 for a
-- refresh token, logout), with its outbox entry, in one step. Every later
-- redemption under the fid fails: the mark answers while it lives, and the
-- records it would need are gone.
--
-- KEYS[1] P{fid}:rev     family revoked mark
-- KEYS[2] P{fid}:fam     family record
-- KEYS[3] P{fid}:sup     superseded refresh hashes
-- KEYS[4] P{fid}:succ    sealed successor
-- KEYS[5] P{fid}:code    authorization code
-- KEYS[6] P{fid}:dev     device authorization
-- KEYS[7] P{fid}:outbox  the grant's outbox shard
-- ARGV[1] TTL of the mark (ms): retain
-- ARGV[2] the shard's registration version
-- ARGV[3] event id ('' to queue nothing: a replay), ARGV[4] its entry
--
-- Reply: {'OK'}, or {'INDEX'} when the shard must be registered again
-- (nothing written).
if ARGV[3] ~= '' and not enqueue(KEYS[7], ARGV[2], ARGV[3], ARGV[4]) then return reply('INDEX') end
mark(KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return reply('OK')
