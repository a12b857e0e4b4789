-- grant_kill.lua: what a redemption, rotation, device poll or family
-- creation does when the cut-off values read with it cover the grant
-- (grants.go): the grant is revoked for good, so that the verdict no longer
-- depends on the cut-off key, and nothing under the fid can be redeemed.
-- Nothing was handed out: the caller answers ErrRevoked.
--
-- KEYS[1] P{fid}:rev    family revoked mark
-- KEYS[2] P{fid}:fam    family record
-- KEYS[3] P{fid}:sup    superseded refresh hashes
-- KEYS[4] P{fid}:succ   sealed successor
-- KEYS[5] P{fid}:code   authorization code
-- KEYS[6] P{fid}:dev    device authorization
-- ARGV[1] TTL of the mark (ms): the store's deny retention
--
-- Reply: {'OK'}.
mark(KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return reply('OK')
