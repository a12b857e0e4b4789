package boot

import (
	"bytes"
	"errors"
	"testing"

	"github.com/valetauth/valet/pkg/config"
	"go.uber.org/zap/zaptest"
)

func TestResolveKEKsNone(t *testing.T) {
	cfg := config.Default()
	if _, _, err := ResolveKEKs(&cfg); !errors.Is(err, ErrNoKEKs) {
		t.Fatalf("ResolveKEKs without keys: %v, want ErrNoKEKs", err)
	}
}

// TestSuccessorAEADStable: two processes with the same key-encryption key
// open each other's sealed successors.
func TestSuccessorAEADStable(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	a, err := SuccessorAEAD(kek)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SuccessorAEAD(kek)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	sealed := a.Seal(nil, nonce, []byte("successor"), []byte("fid"))
	if got, err := b.Open(nil, nonce, sealed, []byte("fid")); err != nil || string(got) != "successor" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestStandaloneKEKsDevDefault(t *testing.T) {
	cfg := config.Default()
	cfg.Dev = true
	id, keks, err := StandaloneKEKs(&cfg, zaptest.NewLogger(t), "issuer")
	if err != nil || id != "dev" || len(keks["dev"]) != 32 {
		t.Fatalf("dev default: %q %v %v", id, keks, err)
	}
	cfg.Dev = false
	if _, _, err := StandaloneKEKs(&cfg, zaptest.NewLogger(t), "issuer"); err == nil {
		t.Fatal("no KEK outside dev mode accepted")
	}
}
