package testenv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
)

// RandomKey returns 32 random bytes: a key-encryption key or an AEAD key
// that lives as long as the test.
func RandomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// AEAD returns AES-256-GCM under a fresh RandomKey: what a store seals
// refresh-token successors with, for a test that builds a store.
func AEAD(t testing.TB) cipher.AEAD {
	t.Helper()
	block, err := aes.NewCipher(RandomKey(t))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}
