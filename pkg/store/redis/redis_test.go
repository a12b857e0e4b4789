package redis

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

// newAEAD returns AES-256-GCM under a random key.
func newAEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// newTestStore builds a Store on a fresh redis-server from the harness.
func newTestStore(t testing.TB) (*Store, *testenv.RedisServer) {
	t.Helper()
	srv := testenv.Redis(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	s, err := New(context.Background(), rdb, newAEAD(t), WithPrefix(srv.Prefix))
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
