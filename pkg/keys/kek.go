package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"sort"

	"github.com/valetauth/valet/pkg/store"
)

// KEKSize is the length of a key-encryption key: 32 bytes, an AES-256 key
// (config.KeyEncryptionKeySize).
const KEKSize = 32

// sealVersion is the first byte of every sealed blob: AES-256-GCM, a 12-byte
// random nonce, the kid as associated data. A new format gets a new byte.
const sealVersion byte = 1

// sealAD prefixes the associated data, so that a KEK shared with another
// purpose could never open a signing key or be tricked into sealing one.
const sealAD = "valet signing key v1\x00"

var kekIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Errors of sealing at rest.
var (
	// ErrUnknownKEK: a sealed key names a key-encryption key the ring does
	// not hold (an old KEK removed from the configuration too early).
	ErrUnknownKEK = errors.New("keys: unknown key-encryption key")
	// ErrUnseal: a sealed key failed authentication: the wrong
	// key-encryption key, another key's kid, or a tampered blob.
	ErrUnseal = errors.New("keys: sealed key failed authentication")
)

// KEKRing holds the key-encryption keys that seal signing keys at rest
// (MISSION §0.5), by id, with one active: Seal always uses the active one,
// Open uses the one the blob names. Older KEKs stay in the ring until Rewrap
// has re-sealed every key under the active one. A KEKRing is immutable and
// safe for concurrent use.
type KEKRing struct {
	active string
	aeads  map[string]cipher.AEAD
}

// NewKEKRing returns a ring of the given key-encryption keys (id → 32 bytes,
// as resolved from config keys.encryption_keys) that seals under active. It
// copies nothing it does not need: the AES key schedules are built here and
// the caller may wipe its slices afterwards. It returns an error for an empty
// ring, an id that is not 1..64 of [A-Za-z0-9._-], a key that is not 32
// bytes, or an active id not in the ring; errors never quote key material.
func NewKEKRing(active string, keks map[string][]byte) (*KEKRing, error) {
	if len(keks) == 0 {
		return nil, errors.New("keys: a key-encryption key is required; signing keys are never stored in clear")
	}
	r := &KEKRing{active: active, aeads: make(map[string]cipher.AEAD, len(keks))}
	for id, k := range keks {
		if !kekIDPattern.MatchString(id) {
			return nil, errors.New("keys: a key-encryption key id must be 1 to 64 letters, digits, '.', '_' or '-'")
		}
		if len(k) != KEKSize {
			return nil, fmt.Errorf("keys: key-encryption key %q is %d bytes, want %d", id, len(k), KEKSize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("keys: key-encryption key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keys: key-encryption key %q: %w", id, err)
		}
		r.aeads[id] = aead
	}
	if _, ok := r.aeads[active]; !ok {
		return nil, fmt.Errorf("keys: active key-encryption key %q is not in the ring", active)
	}
	return r, nil
}

// ActiveID returns the id of the key-encryption key Seal uses.
func (r *KEKRing) ActiveID() string { return r.active }

// IDs returns the ids of every key-encryption key in the ring, sorted.
func (r *KEKRing) IDs() []string {
	out := make([]string, 0, len(r.aeads))
	for id := range r.aeads {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Seal encrypts plaintext (a private key) under the active key-encryption
// key with AES-256-GCM, binding it to kid as associated data, and returns the
// blob and the KEK id to store beside it (store.SigningKey.Sealed and KEKID).
func (r *KEKRing) Seal(kid string, plaintext []byte) (sealed []byte, kekID string, err error) {
	aead := r.aeads[r.active]
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, "", fmt.Errorf("keys: seal %s: nonce: %w", kid, err)
	}
	return aead.Seal(out, out[1:], plaintext, associatedData(kid)), r.active, nil
}

// Open decrypts a blob Seal returned for kid under the key-encryption key
// kekID. It returns ErrUnknownKEK when the ring lacks kekID and ErrUnseal
// when the blob does not authenticate (wrong KEK, another kid, tampering).
func (r *KEKRing) Open(kekID, kid string, sealed []byte) ([]byte, error) {
	aead, ok := r.aeads[kekID]
	if !ok {
		return nil, fmt.Errorf("%w: %q (sealing key %s)", ErrUnknownKEK, kekID, kid)
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: key %s: not a sealed key of format %d", ErrUnseal, kid, sealVersion)
	}
	nonce, ct := sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, associatedData(kid))
	if err != nil {
		return nil, fmt.Errorf("%w: key %s under key-encryption key %q", ErrUnseal, kid, kekID)
	}
	return pt, nil
}

func associatedData(kid string) []byte { return []byte(sealAD + kid) }

// RewrapStore is what Rewrap needs of the key store.
type RewrapStore interface {
	// ListKeys returns every stored key.
	ListKeys(ctx context.Context) ([]store.SigningKey, error)
	// UpdateKey replaces a key if its version is unchanged
	// (store.ErrConflict otherwise).
	UpdateKey(ctx context.Context, k store.SigningKey) (store.SigningKey, error)
}

// rewrapAttempts bounds how often Rewrap retries one key that keeps changing
// under it (a lifecycle step by a replica between its read and its write).
const rewrapAttempts = 5

// Rewrap re-seals every stored private key that is not sealed under the
// active key-encryption key, with a compare-and-set update per key, and
// returns how many it re-sealed. It backs `valet keys rewrap`, the second
// half of a KEK rotation: make the new KEK active everywhere, run Rewrap,
// then remove the old KEK from the configuration. It is idempotent: keys
// already under the active KEK, and keys without private material (retired,
// revoked), are left alone. It stops at the first key it cannot open
// (ErrUnknownKEK, ErrUnseal) or store; the keys done so far stay done.
func (r *KEKRing) Rewrap(ctx context.Context, st RewrapStore) (int, error) {
	listed, err := st.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("keys: rewrap: list keys: %w", err)
	}
	n := 0
	for _, k := range listed {
		done, err := r.rewrapOne(ctx, st, k)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// rewrapOne re-seals k, re-reading it after a lost compare-and-set.
func (r *KEKRing) rewrapOne(ctx context.Context, st RewrapStore, k store.SigningKey) (bool, error) {
	for range rewrapAttempts {
		if len(k.Sealed) == 0 || k.KEKID == r.active {
			return false, nil
		}
		pt, err := r.Open(k.KEKID, k.KID, k.Sealed)
		if err != nil {
			return false, fmt.Errorf("keys: rewrap %s: %w", k.KID, err)
		}
		sealed, kekID, err := r.Seal(k.KID, pt)
		clear(pt)
		if err != nil {
			return false, err
		}
		next := k
		next.Sealed, next.KEKID = sealed, kekID
		_, err = st.UpdateKey(ctx, next)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, store.ErrNotFound):
			return false, nil // deleted meanwhile: nothing left to protect
		case !errors.Is(err, store.ErrConflict):
			return false, fmt.Errorf("keys: rewrap %s: %w", k.KID, err)
		}
		if k, err = reread(ctx, st, k.KID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return false, nil
			}
			return false, fmt.Errorf("keys: rewrap %s: %w", k.KID, err)
		}
	}
	return false, fmt.Errorf("keys: rewrap %s: still changing after %d attempts: %w", k.KID, rewrapAttempts, store.ErrConflict)
}

// reread returns the stored key kid, or store.ErrNotFound.
func reread(ctx context.Context, st interface {
	ListKeys(context.Context) ([]store.SigningKey, error)
}, kid string) (store.SigningKey, error) {
	listed, err := st.ListKeys(ctx)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("list keys: %w", err)
	}
	for _, k := range listed {
		if k.KID == kid {
			return k, nil
		}
	}
	return store.SigningKey{}, fmt.Errorf("signing key %s: %w", kid, store.ErrNotFound)
}
