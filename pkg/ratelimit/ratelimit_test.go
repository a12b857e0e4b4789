package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/testenv"
)

func redisClient(t *testing.T) (*goredis.Client, *testenv.RedisServer) {
	t.Helper()
	srv := testenv.Redis(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, srv
}

func backoff(t *testing.T, rdb *goredis.Client, prefix string, free int, base, maxWait time.Duration) *ratelimit.Backoff {
	t.Helper()
	b, err := ratelimit.NewBackoff(rdb, prefix, ratelimit.BackoffConfig{Name: "test", Free: free, Base: base, Max: maxWait, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	ctx := context.Background()
	rdb, srv := redisClient(t)
	b := backoff(t, rdb, srv.Prefix, 2, 100*time.Millisecond, 400*time.Millisecond)
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}
	for i, w := range want {
		wait, err := b.Acquire(ctx, "k")
		if err != nil || wait != 0 {
			t.Fatalf("attempt %d: Acquire = %v, %v; want allowed", i, wait, err)
		}
		got, err := b.Fail(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Fatalf("failure %d: wait %v, want %v", i+1, got, w)
		}
		if w > 0 {
			if left, err := b.Acquire(ctx, "k"); err != nil || left <= 0 || left > w {
				t.Fatalf("failure %d: Acquire during back-off = %v, %v; want a wait in (0, %v]", i+1, left, err, w)
			}
			time.Sleep(w + 20*time.Millisecond)
		}
	}
	// Other keys are untouched.
	if w, err := b.Acquire(ctx, "other"); err != nil || w != 0 {
		t.Fatalf("other key: %v, %v", w, err)
	}
	// Reset forgets.
	if err := b.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if w, err := b.Fail(ctx, "k"); err != nil || w != 0 {
			t.Fatalf("after reset, failure %d: %v, %v", i+1, w, err)
		}
	}
}

// TestBackoffReservesAttempt: in back-off, of many concurrent attempts (as
// from several replicas) exactly one goes ahead.
func TestBackoffReservesAttempt(t *testing.T) {
	ctx := context.Background()
	rdb, srv := redisClient(t)
	b := backoff(t, rdb, srv.Prefix, 1, time.Second, time.Minute)
	if _, err := b.Fail(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := b.Acquire(ctx, "k")
			if err != nil {
				t.Error(err)
			}
			if w == 0 {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d concurrent attempts allowed, want 1", n)
	}
}

func TestBackoffExpires(t *testing.T) {
	ctx := context.Background()
	rdb, srv := redisClient(t)
	b, err := ratelimit.NewBackoff(rdb, srv.Prefix, ratelimit.BackoffConfig{Name: "exp", Free: 0, Base: 10 * time.Millisecond,
		Max: 10 * time.Millisecond, Window: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fail(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, srv.Prefix+"rl:exp:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if ttl := rdb.PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > 200*time.Millisecond {
		t.Fatalf("ttl %v", ttl)
	}
	time.Sleep(300 * time.Millisecond)
	if n := rdb.Exists(ctx, keys[0]).Val(); n != 0 {
		t.Fatal("counter outlived its window")
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	rdb, srv := redisClient(t)
	l, err := ratelimit.NewLogin(rdb, srv.Prefix, ratelimit.LoginConfig{AccountFailures: 2, AddrFailures: 3, Base: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Per account, whatever the address and the case of the username.
	for i, addr := range []string{"192.0.2.1", "192.0.2.2"} {
		if w, err := l.Allow(ctx, "Alice", addr); err != nil || w != 0 {
			t.Fatalf("attempt %d: %v, %v", i, w, err)
		}
		if _, err := l.Failed(ctx, "Alice", addr); err != nil {
			t.Fatal(err)
		}
	}
	if w, err := l.Allow(ctx, " alice", "192.0.2.3"); err != nil || w != 0 {
		t.Fatalf("third attempt (first in back-off) refused: %v, %v", w, err)
	}
	if _, err := l.Failed(ctx, "alice", "192.0.2.3"); err != nil {
		t.Fatal(err)
	}
	if w, err := l.Allow(ctx, "alice", "192.0.2.4"); err != nil || w <= 0 {
		t.Fatalf("account in back-off allowed: %v, %v", w, err)
	}
	// Per address, whatever the account.
	for i, u := range []string{"u1", "u2", "u3"} {
		if w, err := l.Allow(ctx, u, "198.51.100.1"); err != nil || w != 0 {
			t.Fatalf("addr attempt %d: %v, %v", i, w, err)
		}
		if _, err := l.Failed(ctx, u, "198.51.100.1"); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = l.Allow(ctx, "u4", "198.51.100.1")
	_, _ = l.Failed(ctx, "u4", "198.51.100.1")
	if w, err := l.Allow(ctx, "u5", "198.51.100.1"); err != nil || w <= 0 {
		t.Fatalf("address in back-off allowed: %v, %v", w, err)
	}
	// Success forgets the account, not the address.
	if err := l.Succeeded(ctx, "u1", "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if w, _ := l.Allow(ctx, "u1", "198.51.100.1"); w <= 0 {
		t.Fatal("success cleared the address's back-off")
	}
}

func TestRedisDownIsAnError(t *testing.T) {
	rdb, srv := redisClient(t)
	l, err := ratelimit.NewLogin(rdb, srv.Prefix, ratelimit.LoginConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.Allow(ctx, "a", "192.0.2.1"); err == nil {
		t.Fatal("Allow with Redis down: no error")
	}
	if _, err := l.Failed(ctx, "a", "192.0.2.1"); err == nil {
		t.Fatal("Failed with Redis down: no error")
	}
}

func TestNewBackoffRefusesBadConfig(t *testing.T) {
	rdb, srv := redisClient(t)
	for _, c := range []ratelimit.BackoffConfig{
		{Name: "", Base: time.Second, Max: time.Second, Window: time.Second},
		{Name: "a{b}", Base: time.Second, Max: time.Second, Window: time.Second},
		{Name: "a", Free: -1, Base: time.Second, Max: time.Second, Window: time.Second},
		{Name: "a", Base: 0, Max: time.Second, Window: time.Second},
		{Name: "a", Base: time.Second, Max: time.Millisecond, Window: time.Second},
		{Name: "a", Base: time.Second, Max: time.Minute, Window: time.Second},
	} {
		if _, err := ratelimit.NewBackoff(rdb, srv.Prefix, c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
