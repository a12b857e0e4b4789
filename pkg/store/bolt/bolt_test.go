package bolt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
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

// newTestStore opens a Store on a fresh file in t.TempDir() and closes it in
// cleanup.
func newTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "valet.db"), newAEAD(t), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t *testing.T) store.Store { return newTestStore(t) }

func TestConformance(t *testing.T) { conformance.RunTests(t, newStore) }

func TestConcurrency(t *testing.T) { conformance.RunConcurrencyTests(t, newStore) }
