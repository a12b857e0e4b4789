package edge

// CheckerCached returns how many tokens signed by kid c's cache holds, so
// that tests can see a drop without a lookup (which would drop it too).
func CheckerCached(c *Checker, kid string) int {
	if c.cache == nil {
		return 0
	}
	n := 0
	for i := range c.cache.shards {
		s := &c.cache.shards[i]
		s.mu.RLock()
		for _, e := range s.m {
			if e.claims.KeyID == kid {
				n++
			}
		}
		s.mu.RUnlock()
	}
	return n
}
