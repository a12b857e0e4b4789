package ratelimit_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/ratelimit"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// near reports whether a wait is want, or up to a microsecond more: the
// buckets count in floating-point seconds, and waits are rounded up, never
// down (Retry-After must not be early).
func near(wait, want time.Duration) bool { return wait >= want && wait <= want+time.Microsecond }

func newRequests(t testing.TB, cfg ratelimit.RequestsConfig, clk *fakeClock) *ratelimit.Requests {
	t.Helper()
	var opts []ratelimit.Option
	if clk != nil {
		opts = append(opts, ratelimit.WithClock(clk.Now))
	}
	r, err := ratelimit.NewRequests(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRequestsRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]ratelimit.RequestsConfig{
		"zero rate":         {Rate: 0, Burst: 1},
		"negative rate":     {Rate: -1, Burst: 1},
		"zero burst":        {Rate: 1, Burst: 0},
		"negative capacity": {Rate: 1, Burst: 1, Capacity: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ratelimit.NewRequests(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestRequestsBurstAndRefill: a key gets its burst at once, then tokens at
// the rate; the wait until the next token is exact.
func TestRequestsBurstAndRefill(t *testing.T) {
	clk := newFakeClock()
	r := newRequests(t, ratelimit.RequestsConfig{Rate: 2, Burst: 3}, clk)
	for i := range 3 {
		if ok, _ := r.Allow("k"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := r.Allow("k")
	if ok || !near(wait, 500*time.Millisecond) {
		t.Fatalf("after the burst: ok=%v wait=%s, want refused for 500ms", ok, wait)
	}
	clk.Advance(499 * time.Millisecond)
	if ok, wait := r.Allow("k"); ok || !near(wait, time.Millisecond) {
		t.Fatalf("1ms early: ok=%v wait=%s, want refused for 1ms", ok, wait)
	}
	clk.Advance(time.Millisecond)
	if ok, _ := r.Allow("k"); !ok {
		t.Fatal("refused once a token was earned")
	}
	if ok, _ := r.Allow("k"); ok {
		t.Fatal("allowed a second token within the same 500ms")
	}
	// Refill never exceeds the burst.
	clk.Advance(time.Hour)
	for i := range 3 {
		if ok, _ := r.Allow("k"); !ok {
			t.Fatalf("request %d of the refilled burst refused", i+1)
		}
	}
	if ok, _ := r.Allow("k"); ok {
		t.Fatal("the refill exceeded the burst")
	}
	// Other keys have their own bucket.
	if ok, _ := r.Allow("other"); !ok {
		t.Fatal("another key was refused")
	}
}

// TestRequestsWaitRounding: the wait is rounded up to the nanosecond, so
// Retry-After (whole seconds rounded up by oautherr.Write) is never early.
func TestRequestsWaitRounding(t *testing.T) {
	clk := newFakeClock()
	r := newRequests(t, ratelimit.RequestsConfig{Rate: 3, Burst: 1}, clk)
	r.Allow("k")
	_, wait := r.Allow("k")
	if want := time.Second / 3; !near(wait, want) {
		t.Fatalf("wait %s, want 1/3 s rounded up", wait)
	}
	slow := newRequests(t, ratelimit.RequestsConfig{Rate: 0.1, Burst: 1}, clk)
	slow.Allow("k")
	if _, wait := slow.Allow("k"); !near(wait, 10*time.Second) {
		t.Fatalf("wait %s at 0.1/s, want 10s", wait)
	}
}

// TestRequestsPeekAndSpend: Peek never takes a token nor adds a key; Spend
// takes one even from an empty bucket, and the debt delays the next token.
func TestRequestsPeekAndSpend(t *testing.T) {
	clk := newFakeClock()
	r := newRequests(t, ratelimit.RequestsConfig{Rate: 1, Burst: 2}, clk)
	for range 10 {
		if ok, _ := r.Peek("addr"); !ok {
			t.Fatal("Peek refused a fresh key")
		}
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Peek added keys: %d held", n)
	}
	r.Spend("addr")
	if ok, _ := r.Peek("addr"); !ok {
		t.Fatal("refused with one token left")
	}
	r.Spend("addr")
	ok, wait := r.Peek("addr")
	if ok || !near(wait, time.Second) {
		t.Fatalf("empty bucket: ok=%v wait=%s, want refused for 1s", ok, wait)
	}
	// Two failures that passed Peek concurrently still count: debt.
	r.Spend("addr")
	r.Spend("addr")
	if _, wait := r.Peek("addr"); !near(wait, 3*time.Second) {
		t.Fatalf("in debt of 2: wait %s, want 3s", wait)
	}
	clk.Advance(3 * time.Second)
	if ok, _ := r.Peek("addr"); !ok {
		t.Fatal("refused after the debt was paid")
	}
}

// TestRequestsCapacityBound: however many keys are sprayed, at most Capacity
// are held, and a key in use survives a spray of keys used once.
func TestRequestsCapacityBound(t *testing.T) {
	for _, capacity := range []int{1, 10, 100, 5000} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			clk := newFakeClock()
			r := newRequests(t, ratelimit.RequestsConfig{Rate: 1, Burst: 5, Capacity: capacity}, clk)
			for i := range capacity * 20 {
				r.Spend("spray-" + strconv.Itoa(i))
				if i%97 == 0 {
					clk.Advance(time.Millisecond)
				}
			}
			if n := r.Len(); n > capacity || n == 0 {
				t.Fatalf("%d keys held, capacity %d", n, capacity)
			}
		})
	}
}

// TestRequestsEvictsIdleFirst: when full, a key whose bucket has refilled
// (idle: it answers as an absent key would) goes before one that still
// carries failures.
func TestRequestsEvictsIdleFirst(t *testing.T) {
	clk := newFakeClock()
	r := newRequests(t, ratelimit.RequestsConfig{Rate: 1, Burst: 2, Capacity: 2}, clk)
	for range 5 {
		r.Spend("hot") // 3 tokens in debt
	}
	clk.Advance(time.Second)
	r.Spend("idle") // used after "hot": plain LRU would evict "hot"
	clk.Advance(2 * time.Second)
	// Now "idle" has refilled to its burst, "hot" is still empty.
	r.Spend("new")
	if ok, _ := r.Peek("hot"); ok {
		t.Fatal("the key carrying failures was evicted instead of the idle one")
	}
	if n := r.Len(); n != 2 {
		t.Fatalf("%d keys held, want 2", n)
	}
}

// TestRequestsConcurrent: many goroutines on shared and own keys never get
// more than burst + rate × elapsed tokens per key (run with -race).
func TestRequestsConcurrent(t *testing.T) {
	clk := newFakeClock()
	r := newRequests(t, ratelimit.RequestsConfig{Rate: 10, Burst: 20, Capacity: 1000}, clk)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := "own-" + strconv.Itoa(g)
			for i := range 500 {
				if ok, _ := r.Allow("shared"); ok {
					allowed.Add(1)
				}
				r.Allow(own)
				r.Peek(own)
				r.Spend("spray-" + strconv.Itoa(g*1000+i))
				if i%100 == 0 {
					clk.Advance(100 * time.Millisecond) // one token of "shared" per advance
				}
			}
		}()
	}
	wg.Wait()
	// 8 goroutines × 5 advances of 100ms: at most 20 + 40 tokens.
	if n := allowed.Load(); n < 20 || n > 60 {
		t.Fatalf("%d requests of the shared key allowed, want 20..60", n)
	}
	if n := r.Len(); n > 1000 {
		t.Fatalf("%d keys held, capacity 1000", n)
	}
}

// BenchmarkRequestsAllow measures one answer on the hot path: many
// goroutines, many keys, all allowed (the common case).
func BenchmarkRequestsAllow(b *testing.B) {
	r := newRequests(b, ratelimit.RequestsConfig{Rate: 1e9, Burst: 1 << 30}, nil)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if ok, _ := r.Allow(keys[i&1023]); !ok {
				b.Fatal("refused")
			}
			i++
		}
	})
}

// BenchmarkRequestsPeekAbsent measures the failure limit's cost on a
// request from an address that never failed: a lookup that finds nothing.
func BenchmarkRequestsPeekAbsent(b *testing.B) {
	r := newRequests(b, ratelimit.RequestsConfig{Rate: 10, Burst: 50}, nil)
	for i := range 1000 {
		r.Spend("198.51.100." + strconv.Itoa(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _ := r.Peek("127.0.0.1"); !ok {
				b.Fatal("refused")
			}
		}
	})
}
