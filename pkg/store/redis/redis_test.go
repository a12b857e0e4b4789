package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

// newTestStore builds a Store on a fresh redis-server from the harness.
func newTestStore(t testing.TB) (*Store, *testenv.RedisServer) {
	t.Helper()
	srv := testenv.Redis(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	s, err := New(context.Background(), rdb, testenv.AEAD(t), WithPrefix(srv.Prefix))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, srv
}

func newStore(t *testing.T) store.Store {
	s, _ := newTestStore(t)
	return s
}

func TestConformance(t *testing.T) { conformance.RunTests(t, newStore) }

func TestConcurrency(t *testing.T) { conformance.RunConcurrencyTests(t, newStore) }
