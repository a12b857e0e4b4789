package edge

import (
	"crypto/sha256"
	"sync"
)

// cacheEntry is a token whose signature verified and whose time-independent
// claims (typ, alg, iss, aud, lifetime) passed. A cache hit skips only that
// work: expiry, the deny state, the key's status and scopes are checked on
// every Verify.
type cacheEntry struct {
	claims Claims
	// key is the key that verified the signature. A hit is trusted only
	// while the current key set maps the kid to this very key.
	key *verifyKey
	jti jtiKey
	// iat, exp and nbf in seconds since the epoch; nbf 0 when absent.
	iat, exp, nbf int64
}

// cacheKey is SHA-256 of the whole token string.
type cacheKey [32]byte

// maxStackToken is the longest token hashed from a stack copy; longer ones
// (rare: tokens are a few hundred bytes) pay one allocation.
const maxStackToken = 2048

func keyOf(token string) cacheKey {
	if len(token) > maxStackToken {
		return sha256.Sum256([]byte(token))
	}
	var buf [maxStackToken]byte
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

const cacheShards = 64

// tokenCache is a bounded map of verified tokens, sharded by the first byte
// of their hash. Each shard holds at most perShard entries; a full shard
// drops expired entries, then arbitrary ones (Go's map iteration order is
// random), so an attacker with many valid tokens can only lower the hit
// rate, never grow memory.
type tokenCache struct {
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]*cacheEntry
	_  [32]byte // pad the shard to 64 bytes: one cache line each
}

// newTokenCache returns a cache of about size entries, or nil (no caching)
// for size ≤ 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	c := &tokenCache{perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
	}
	return c
}

func (c *tokenCache) get(k *cacheKey) *cacheEntry {
	if c == nil {
		return nil
	}
	s := &c.shards[k[0]%cacheShards]
	s.mu.RLock()
	e := s.m[*k]
	s.mu.RUnlock()
	return e
}

// put stores e under k; now is in seconds, for eviction of expired entries.
func (c *tokenCache) put(k *cacheKey, e *cacheEntry, now int64) {
	if c == nil {
		return
	}
	s := &c.shards[k[0]%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		// Look at a few entries: drop the expired ones, or else the
		// first one seen.
		var victim cacheKey
		seen, dropped := 0, false
		for vk, ve := range s.m {
			if seen == 0 {
				victim = vk
			}
			if ve.exp <= now {
				delete(s.m, vk)
				dropped = true
			}
			if seen++; seen == 8 {
				break
			}
		}
		if !dropped {
			delete(s.m, victim)
		}
	}
	s.m[*k] = e
}

// remove drops k, for an entry found unusable (its key changed).
func (c *tokenCache) remove(k *cacheKey) {
	if c == nil {
		return
	}
	s := &c.shards[k[0]%cacheShards]
	s.mu.Lock()
	delete(s.m, *k)
	s.mu.Unlock()
}

// dropKID drops every entry verified with a key of this kid: the key was
// retired or revoked, so none of them may skip its signature check again.
// The per-lookup key check would drop them one by one anyway; this frees
// them at once and leaves nothing to trust by mistake. It walks the whole
// cache, shard by shard, which is fine for an event that comes a few times a
// day.
func (c *tokenCache) dropKID(kid string) {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.claims.KeyID == kid {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

// sweep drops every entry expired at now (seconds).
func (c *tokenCache) sweep(now int64) {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.exp <= now {
				delete(s.m, k)
			}
		}
		s.mu.Unlock()
	}
}

func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
