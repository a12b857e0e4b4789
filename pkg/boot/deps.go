package boot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/config"
)

// SuccessorInfo is the HKDF info of the AEAD that seals refresh-token
// successors in the store (pkg/store/redis, pkg/store/bolt), derived from the
// active key-encryption key. Every service sharing a store must derive it
// the same way.
const SuccessorInfo = "valet refresh successor v1"

// ErrNoKEKs is returned by ResolveKEKs when the configuration lists no
// key-encryption key: an error outside dev mode, and the cue for a dev-mode
// host to supply its own development key.
var ErrNoKEKs = errors.New("keys.encryption_keys is empty")

// ResolveKEKs reads the key-encryption keys the configuration names and
// returns the active key's id with every key by id. It returns ErrNoKEKs
// when none is listed (whatever the mode: the caller decides what a dev
// process supplies instead).
func ResolveKEKs(cfg *config.Config) (string, map[string][]byte, error) {
	if len(cfg.Keys.EncryptionKeys) == 0 {
		return "", nil, ErrNoKEKs
	}
	keks := make(map[string][]byte, len(cfg.Keys.EncryptionKeys))
	for _, e := range cfg.Keys.EncryptionKeys {
		k, err := e.Resolve(nil)
		if err != nil {
			return "", nil, err
		}
		keks[e.ID] = k
	}
	return cfg.Keys.ActiveEncryptionKey, keks, nil
}

// SuccessorAEAD returns AES-256-GCM under HKDF-SHA256(kek, SuccessorInfo):
// the AEAD a store seals refresh-token successors with.
func SuccessorAEAD(kek []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, kek, nil, SuccessorInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive successor key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// InstanceID names this process in heartbeats: host, pid and a random tag.
func InstanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// devKEKSeed derives the fixed key-encryption key a standalone service uses in
// dev mode when none is configured. It protects nothing, which is why it is
// only accepted with dev: true and logged as a warning; valet dev supplies a
// generated key of its own instead.
const devKEKSeed = "valet dev-mode key-encryption key: protects nothing"

// StandaloneKEKs is ResolveKEKs for a service's own main: outside dev mode a
// missing key is an error naming the service; in dev mode the fixed
// development key stands in, with a warning.
func StandaloneKEKs(cfg *config.Config, log *zap.Logger, service string) (string, map[string][]byte, error) {
	active, keks, err := ResolveKEKs(cfg)
	if !errors.Is(err, ErrNoKEKs) {
		return active, keks, err
	}
	if !cfg.Dev {
		return "", nil, fmt.Errorf("%s: keys.encryption_keys is required outside dev mode", service)
	}
	log.Warn("dev mode without keys.encryption_keys: using the fixed development key-encryption key, which protects nothing")
	k := sha256.Sum256([]byte(devKEKSeed))
	return "dev", map[string][]byte{"dev": k[:]}, nil
}
