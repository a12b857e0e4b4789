package secret_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/secret"
)

func kek(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func newHasher(t testing.TB, active string, ids ...string) *secret.Hasher {
	t.Helper()
	keks := map[string][]byte{}
	for i, id := range ids {
		keks[id] = kek(byte(i + 1))
	}
	h, err := secret.NewHasher(active, keks)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	return h
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := secret.New()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != secret.Len || !strings.HasPrefix(s, secret.Prefix) || !secret.Looks(s) {
			t.Fatalf("secret %q: want %d characters starting with %q", s, secret.Len, secret.Prefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(s[len(secret.Prefix):])
		if err != nil || len(raw) != secret.Bytes {
			t.Fatalf("secret body does not decode to %d bytes: %v", secret.Bytes, err)
		}
		if seen[s] {
			t.Fatal("duplicate secret")
		}
		seen[s] = true
	}
	if secret.Looks("vcs_short") || secret.Looks(strings.Repeat("x", secret.Len)) {
		t.Error("Looks accepted a non-secret")
	}
}

func TestHashFormatAndVerify(t *testing.T) {
	h := newHasher(t, "kek-1", "kek-1")
	s, _ := secret.New()
	stored := h.Hash(s)
	if !bytes.HasPrefix(stored, []byte("hmac-sha256$kek-1$")) {
		t.Fatalf("stored hash %q: want hmac-sha256$kek-1$...", stored)
	}
	if bytes.Contains(stored, []byte(s)) {
		t.Fatal("stored hash contains the secret")
	}
	// The MAC is HMAC-SHA256 under HKDF-SHA256(kek, nil, HashInfo).
	key, _ := hkdf.Key(sha256.New, kek(1), nil, secret.HashInfo, 32)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	want := "hmac-sha256$kek-1$" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if string(stored) != want {
		t.Fatalf("stored %q, want %q", stored, want)
	}
	if !secret.ValidFormat(stored) {
		t.Error("ValidFormat refused a Hash result")
	}

	tests := []struct {
		name   string
		stored []byte
		input  string
		ok     bool
		err    error
	}{
		{"keyed match", stored, s, true, nil},
		{"keyed mismatch", stored, s + "x", false, nil},
		{"keyed empty input", stored, "", false, nil},
		{"unkeyed match", secret.HashUnkeyed(s), s, true, nil},
		{"unkeyed mismatch", secret.HashUnkeyed(s), strings.ToUpper(s), false, nil},
		{"long input", h.Hash(strings.Repeat("a", 1000)), strings.Repeat("a", 1000), true, nil},
		{"long input mismatch", h.Hash(strings.Repeat("a", 1000)), strings.Repeat("a", 999), false, nil},
		{"unknown kek", []byte("hmac-sha256$kek-9$" + strings.Repeat("A", 43)), s, false, secret.ErrUnknownKey},
		{"no format", []byte("plain"), s, false, secret.ErrMalformed},
		{"unknown format", []byte("md5$abc"), s, false, secret.ErrMalformed},
		{"short mac", []byte("hmac-sha256$kek-1$AAAA"), s, false, secret.ErrMalformed},
		{"bad base64", []byte("sha256$" + strings.Repeat("*", 43)), s, false, secret.ErrMalformed},
		{"keyed without id", []byte("hmac-sha256$" + strings.Repeat("A", 43)), s, false, secret.ErrMalformed},
		{"empty", nil, s, false, secret.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := h.Verify(tt.stored, tt.input)
			if ok != tt.ok || !errors.Is(err, tt.err) {
				t.Fatalf("Verify = %v, %v; want %v, %v", ok, err, tt.ok, tt.err)
			}
		})
	}
}

// TestKEKRotation: a hash made under an old KEK still verifies once another
// KEK is active, as long as the old one stays in the ring.
func TestKEKRotation(t *testing.T) {
	old := newHasher(t, "kek-1", "kek-1")
	s, _ := secret.New()
	stored := old.Hash(s)

	rotated := newHasher(t, "kek-2", "kek-1", "kek-2")
	if ok, err := rotated.Verify(stored, s); !ok || err != nil {
		t.Fatalf("old hash after rotation: %v, %v", ok, err)
	}
	if !bytes.HasPrefix(rotated.Hash(s), []byte("hmac-sha256$kek-2$")) {
		t.Error("new hashes are not under the active KEK")
	}
	dropped, _ := secret.NewHasher("kek-2", map[string][]byte{"kek-2": kek(2)})
	if ok, err := dropped.Verify(stored, s); ok || !errors.Is(err, secret.ErrUnknownKey) {
		t.Fatalf("hash under a removed KEK: %v, %v; want ErrUnknownKey", ok, err)
	}
	// Different KEKs give different MACs.
	other, _ := secret.NewHasher("kek-1", map[string][]byte{"kek-1": kek(7)})
	if ok, _ := other.Verify(stored, s); ok {
		t.Error("a hash verified under another key")
	}
}

func TestNewHasherRefuses(t *testing.T) {
	tests := []struct {
		name   string
		active string
		keks   map[string][]byte
	}{
		{"empty ring", "a", nil},
		{"short key", "a", map[string][]byte{"a": make([]byte, 16)}},
		{"bad id", "a b", map[string][]byte{"a b": kek(1)}},
		{"active missing", "b", map[string][]byte{"a": kek(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := secret.NewHasher(tt.active, tt.keks); err == nil {
				t.Fatal("NewHasher accepted it")
			} else if bytes.Contains([]byte(err.Error()), kek(1)) {
				t.Fatal("error quotes key material")
			}
		})
	}
}

func TestVerifyAllocatesNothing(t *testing.T) {
	h := newHasher(t, "kek-1", "kek-1")
	s, _ := secret.New()
	stored := h.Hash(s)
	unkeyed := secret.HashUnkeyed(s)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = h.Verify(stored, s)
		_, _ = h.Verify(unkeyed, s)
		h.Dummy(s)
	}); n != 0 {
		t.Fatalf("Verify allocates %v times", n)
	}
}

func BenchmarkVerify(b *testing.B) {
	h := newHasher(b, "kek-1", "kek-1")
	s, _ := secret.New()
	stored := h.Hash(s)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := h.Verify(stored, s); !ok {
			b.Fatal("mismatch")
		}
	}
}

func FuzzVerify(f *testing.F) {
	h := newHasher(f, "kek-1", "kek-1")
	f.Add([]byte("hmac-sha256$kek-1$"+strings.Repeat("A", 43)), "vcs_x")
	f.Add([]byte("sha256$$$"), "")
	f.Add(h.Hash("abc"), "abc")
	f.Fuzz(func(t *testing.T, stored []byte, s string) {
		ok, err := h.Verify(stored, s)
		if ok && err != nil {
			t.Fatal("ok with an error")
		}
		if ok != (ok && secret.ValidFormat(stored)) {
			t.Fatal("verified a hash ValidFormat refuses")
		}
	})
}
