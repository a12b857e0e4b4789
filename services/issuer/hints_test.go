package issuer

import (
	"strconv"
	"testing"
)

// TestHintCacheBounded: the cache finds every family of the last size puts
// and never holds more than two generations.
func TestHintCacheBounded(t *testing.T) {
	c := newHintCache(100)
	for i := range 1000 {
		c.put(strconv.Itoa(i), subjectHint{typ: "user", sub: "u" + strconv.Itoa(i)})
		if n := len(c.cur) + len(c.prev); n > 200 {
			t.Fatalf("%d entries after %d puts, want at most 200", n, i+1)
		}
	}
	for i := 900; i < 1000; i++ {
		h, ok := c.get(strconv.Itoa(i))
		if !ok || h.sub != "u"+strconv.Itoa(i) {
			t.Fatalf("family %d: %+v %v, want its hint", i, h, ok)
		}
	}
	if _, ok := c.get("0"); ok {
		t.Fatal("the oldest family is still remembered after 10 generations")
	}
}
