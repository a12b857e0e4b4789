package bolt

import (
	"path/filepath"
	"testing"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

// newTestStore opens a Store on a fresh file in t.TempDir() and closes it in
// cleanup.
func newTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "valet.db"), testenv.AEAD(t), opts...)
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
