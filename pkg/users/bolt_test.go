package users_test

import (
	"context"
	"crypto/cipher"
	"errors"
	"path/filepath"
	"testing"

	boltstore "github.com/valetauth/valet/pkg/store/bolt"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

func openBolt(t *testing.T, path string, aead cipher.AEAD) *boltstore.Store {
	t.Helper()
	s, err := boltstore.New(path, aead)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBoltAuthenticator(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "valet.db"), testenv.AEAD(t))
	t.Cleanup(func() { _ = s.Close() })
	testAuthenticator(t, s.Users())
}

// TestBoltDurable: users survive closing and reopening the file, and an
// empty file (no users bucket yet) reads as no users.
func TestBoltDurable(t *testing.T) {
	ctx := context.Background()
	path, aead := filepath.Join(t.TempDir(), "valet.db"), testenv.AEAD(t)
	s := openBolt(t, path, aead)
	if l, err := s.Users().List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty List = %v, %v", l, err)
	}
	if _, err := s.Users().Get(ctx, "demo"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("empty Get: %v", err)
	}
	a, err := users.NewAuthenticator(s.Users(), fast)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Add(ctx, "demo", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users().Get(ctx, "demo"); !errors.Is(err, users.ErrUnavailable) {
		t.Fatalf("closed store: %v", err)
	}
	s = openBolt(t, path, aead)
	t.Cleanup(func() { _ = s.Close() })
	a, err = users.NewAuthenticator(s.Users(), fast)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Authenticate(ctx, "demo", "pw")
	if err != nil || got.Subject != u.Subject {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}
