package ratelimit_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/testenv"
)

// attemptLimiter is what Attempts and LocalAttempts both offer.
type attemptLimiter interface {
	Take(ctx context.Context, limits ...ratelimit.Limit) (time.Duration, error)
	Refund(ctx context.Context, limits ...ratelimit.Limit) error
}

var (
	_ attemptLimiter = (*ratelimit.Attempts)(nil)
	_ attemptLimiter = (*ratelimit.LocalAttempts)(nil)
)

// newAttemptsFunc builds a fresh, empty limiter with window, and returns a
// function that lets time pass for it.
type newAttemptsFunc func(t *testing.T, window time.Duration) (attemptLimiter, func(time.Duration))

// testAttempts is the contract both implementations pass.
func testAttempts(t *testing.T, newLimiter newAttemptsFunc) {
	ctx := context.Background()
	ip := func(max int) ratelimit.Limit { return ratelimit.Limit{ID: "ip:192.0.2.1", Max: max} }
	sid := func(max int) ratelimit.Limit { return ratelimit.Limit{ID: "sid:s1", Max: max} }

	t.Run("caps each key", func(t *testing.T) {
		l, _ := newLimiter(t, time.Minute)
		for i := range 3 {
			if w, err := l.Take(ctx, ip(3)); err != nil || w != 0 {
				t.Fatalf("attempt %d: %v, %v", i+1, w, err)
			}
		}
		w, err := l.Take(ctx, ip(3))
		if err != nil || w <= 0 || w > time.Minute {
			t.Fatalf("attempt over the cap: %v, %v; want a wait in (0, 1m]", w, err)
		}
		if w, err := l.Take(ctx, ratelimit.Limit{ID: "ip:192.0.2.2", Max: 3}); err != nil || w != 0 {
			t.Fatalf("another key: %v, %v", w, err)
		}
	})
	t.Run("all or nothing", func(t *testing.T) {
		l, _ := newLimiter(t, time.Minute)
		for range 2 {
			if w, err := l.Take(ctx, sid(2)); err != nil || w != 0 {
				t.Fatal(w, err)
			}
		}
		// The session is full: the address is not charged.
		for range 5 {
			if w, err := l.Take(ctx, ip(5), sid(2)); err != nil || w <= 0 {
				t.Fatalf("session at its cap: %v, %v", w, err)
			}
		}
		for i := range 5 {
			if w, err := l.Take(ctx, ip(5)); err != nil || w != 0 {
				t.Fatalf("address attempt %d after refusals: %v, %v", i+1, w, err)
			}
		}
	})
	t.Run("refund", func(t *testing.T) {
		l, _ := newLimiter(t, time.Minute)
		for range 10 {
			if w, err := l.Take(ctx, ip(2), sid(2)); err != nil || w != 0 {
				t.Fatalf("refunded attempts counted: %v, %v", w, err)
			}
			if err := l.Refund(ctx, ip(2), sid(2)); err != nil {
				t.Fatal(err)
			}
		}
		// A refund without a take never goes below zero.
		if err := l.Refund(ctx, ratelimit.Limit{ID: "never", Max: 1}); err != nil {
			t.Fatal(err)
		}
		if w, err := l.Take(ctx, ratelimit.Limit{ID: "never", Max: 1}); err != nil || w != 0 {
			t.Fatal(w, err)
		}
		if w, _ := l.Take(ctx, ratelimit.Limit{ID: "never", Max: 1}); w <= 0 {
			t.Fatal("a refund before any take raised the cap")
		}
	})
	t.Run("window ends", func(t *testing.T) {
		l, pass := newLimiter(t, 100*time.Millisecond)
		for range 2 {
			_, _ = l.Take(ctx, ip(2))
		}
		if w, _ := l.Take(ctx, ip(2)); w <= 0 {
			t.Fatal("not capped")
		}
		pass(250 * time.Millisecond)
		if w, err := l.Take(ctx, ip(2)); err != nil || w != 0 {
			t.Fatalf("after the window: %v, %v", w, err)
		}
	})
	t.Run("concurrent takes never overshoot", func(t *testing.T) {
		l, _ := newLimiter(t, time.Minute)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := l.Take(ctx, ip(10))
				if err != nil {
					t.Error(err)
				}
				if w == 0 {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := allowed.Load(); n != 10 {
			t.Fatalf("%d of 50 concurrent attempts allowed, want 10", n)
		}
	})
	t.Run("bad limits", func(t *testing.T) {
		l, _ := newLimiter(t, time.Minute)
		if _, err := l.Take(ctx); err == nil {
			t.Error("Take without limits")
		}
		if _, err := l.Take(ctx, ratelimit.Limit{ID: "x"}); err == nil {
			t.Error("Take with Max 0")
		}
		if err := l.Refund(ctx, make([]ratelimit.Limit, 9)...); err == nil {
			t.Error("Refund of 9 limits")
		}
	})
}

func TestAttemptsRedis(t *testing.T) {
	testAttempts(t, func(t *testing.T, window time.Duration) (attemptLimiter, func(time.Duration)) {
		rdb, srv := redisClient(t)
		a, err := ratelimit.NewAttempts(rdb, srv.Prefix, ratelimit.AttemptsConfig{Name: "device", Window: window})
		if err != nil {
			t.Fatal(err)
		}
		return a, time.Sleep
	})
}

func TestAttemptsLocal(t *testing.T) {
	testAttempts(t, func(t *testing.T, window time.Duration) (attemptLimiter, func(time.Duration)) {
		var mu sync.Mutex
		now := time.Unix(1_700_000_000, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		l, err := ratelimit.NewLocalAttempts(ratelimit.AttemptsConfig{Name: "device", Window: window}, 0, clock)
		if err != nil {
			t.Fatal(err)
		}
		return l, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	})
}

// TestAttemptsShared: two limiters on one Redis (two replicas) share the
// counts; the keys carry the hash tag, a hashed id and a TTL.
func TestAttemptsShared(t *testing.T) {
	ctx := context.Background()
	rdb, srv := redisClient(t)
	opt, _ := goredis.ParseURL(srv.URL)
	other := goredis.NewClient(opt)
	t.Cleanup(func() { _ = other.Close() })
	cfg := ratelimit.AttemptsConfig{Name: "device", Window: time.Minute}
	a, _ := ratelimit.NewAttempts(rdb, srv.Prefix, cfg)
	b, _ := ratelimit.NewAttempts(other, srv.Prefix, cfg)
	lim := ratelimit.Limit{ID: "ip:198.51.100.7", Max: 4}
	for i := range 4 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if w, err := l.Take(ctx, lim); err != nil || w != 0 {
			t.Fatalf("attempt %d: %v, %v", i+1, w, err)
		}
	}
	if w, err := b.Take(ctx, lim); err != nil || w <= 0 {
		t.Fatalf("replica B after 4 attempts across both: %v, %v", w, err)
	}
	keys, err := rdb.Keys(ctx, srv.Prefix+"rl:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if !strings.HasPrefix(keys[0], srv.Prefix+"rl:{device}:") || strings.Contains(keys[0], "198.51") {
		t.Fatalf("key %q: want the {device} hash tag and a hashed id", keys[0])
	}
	if ttl := rdb.PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
}

func TestAttemptsRedisDownIsAnError(t *testing.T) {
	rdb, srv := redisClient(t)
	a, err := ratelimit.NewAttempts(rdb, srv.Prefix, ratelimit.AttemptsConfig{Name: "device", Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lim := ratelimit.Limit{ID: "k", Max: 1}
	if _, err := a.Take(ctx, lim); err == nil {
		t.Fatal("Take with Redis down: no error")
	}
	if err := a.Refund(ctx, lim); err == nil {
		t.Fatal("Refund with Redis down: no error")
	}
}

func TestNewAttemptsRefusesBadConfig(t *testing.T) {
	rdb, srv := redisClient(t)
	for _, c := range []ratelimit.AttemptsConfig{
		{Name: "", Window: time.Minute},
		{Name: "a{b}", Window: time.Minute},
		{Name: "a b", Window: time.Minute},
		{Name: "a", Window: 0},
	} {
		if _, err := ratelimit.NewAttempts(rdb, srv.Prefix, c); err == nil {
			t.Errorf("NewAttempts(%+v) accepted", c)
		}
		if _, err := ratelimit.NewLocalAttempts(c, 0, nil); err == nil {
			t.Errorf("NewLocalAttempts(%+v) accepted", c)
		}
	}
	if _, err := ratelimit.NewAttempts(nil, "", ratelimit.AttemptsConfig{Name: "a", Window: time.Minute}); err == nil {
		t.Error("nil client accepted")
	}
	if _, err := ratelimit.NewLocalAttempts(ratelimit.AttemptsConfig{Name: "a", Window: time.Minute}, -1, nil); err == nil {
		t.Error("negative capacity accepted")
	}
}

// TestLocalAttemptsEvicts: a full table drops ended windows, then the
// oldest live one, never growing past its capacity.
func TestLocalAttemptsEvicts(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	l, err := ratelimit.NewLocalAttempts(ratelimit.AttemptsConfig{Name: "d", Window: time.Minute}, 2, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	take := func(id string) time.Duration {
		w, err := l.Take(ctx, ratelimit.Limit{ID: id, Max: 1})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	take("a")
	now = now.Add(time.Second)
	take("b")
	now = now.Add(time.Second)
	take("c") // evicts a, the oldest
	if take("b") == 0 || take("c") == 0 {
		t.Fatal("live entries were evicted instead of the oldest")
	}
	if take("a") != 0 {
		t.Fatal("the oldest entry was not evicted")
	}
}

// BenchmarkAttempts is the cost of one device user-code entry's limiting:
// a Take on two keys (address and session) and the Refund of a valid code.
func BenchmarkAttempts(b *testing.B) {
	ctx := context.Background()
	lims := []ratelimit.Limit{{ID: "ip:192.0.2.1", Max: 1 << 30}, {ID: "sid:s1", Max: 1 << 30}}
	b.Run("redis", func(b *testing.B) {
		srv := testenv.Redis(b)
		opt, _ := goredis.ParseURL(srv.URL)
		rdb := goredis.NewClient(opt)
		b.Cleanup(func() { _ = rdb.Close() })
		a, err := ratelimit.NewAttempts(rdb, srv.Prefix, ratelimit.AttemptsConfig{Name: "device", Window: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.Take(ctx, lims...); err != nil {
				b.Fatal(err)
			}
			if err := a.Refund(ctx, lims...); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("local", func(b *testing.B) {
		l, err := ratelimit.NewLocalAttempts(ratelimit.AttemptsConfig{Name: "device", Window: time.Minute}, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = l.Take(ctx, lims...)
			_ = l.Refund(ctx, lims...)
		}
	})
}
