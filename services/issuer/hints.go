package issuer

import "sync"

// subjectHint is what the store needs to read a family's subject cut-off in
// the same round trip as its rotation.
type subjectHint struct{ typ, sub string }

// hintCache remembers the subject of recently rotated families, so that the
// next rotation of a family passes it as a hint (store.Cutoffs) and costs
// one Redis round trip instead of two. A family's subject never changes, and
// the store checks the cut-off of the subject the record names whatever the
// hint says (a wrong hint only costs the round trip back), so the cache needs
// no invalidation. It holds at most 2 × size entries in two generations:
// when the current one is full it becomes the previous one, which is
// dropped, so memory is bounded without per-entry bookkeeping and a family
// rotated within the last size rotations is always found.
type hintCache struct {
	mu        sync.Mutex
	size      int
	cur, prev map[string]subjectHint
}

// hintCacheSize is the number of families per generation (about 100 bytes
// each).
const hintCacheSize = 1 << 16

func newHintCache(size int) *hintCache {
	return &hintCache{size: size, cur: make(map[string]subjectHint, size)}
}

// get returns the hint of fid, if remembered.
func (c *hintCache) get(fid string) (subjectHint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.cur[fid]; ok {
		return h, true
	}
	h, ok := c.prev[fid]
	return h, ok
}

// put remembers the hint of fid.
func (c *hintCache) put(fid string, h subjectHint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]subjectHint, c.size)
	}
	c.cur[fid] = h
}
