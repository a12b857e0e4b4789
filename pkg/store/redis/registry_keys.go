package redis

// Signing keys (store.KeyStore), shared by every issuer replica:
//
//	<prefix>{keys}         sorted set: every kid, scored by CreatedAt (Unix ms)
//	<prefix>{keys}:<kid>   string: keyRecord JSON (private key only sealed)

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

var keyKind = recordKind{tag: "{keys}", name: "signing key"}

// keyRecord is the stored JSON of a store.SigningKey. Sealed is the AEAD
// ciphertext of the private key; the clear key is never stored (MISSION
// §0.5).
type keyRecord struct {
	KID        string         `json:"kid"`
	Alg        string         `json:"alg"`
	PublicJWK  []byte         `json:"public_jwk"`
	Sealed     []byte         `json:"sealed"`
	KEKID      string         `json:"kek_id"`
	State      store.KeyState `json:"state"`
	CreatedAt  time.Time      `json:"created_at"`
	ActivateAt time.Time      `json:"activate_at"`
	RetireAt   time.Time      `json:"retire_at"`
	Version    int64          `json:"version"`
}

func toKeyRecord(k store.SigningKey) keyRecord {
	return keyRecord{
		KID:        k.KID,
		Alg:        k.Alg,
		PublicJWK:  k.PublicJWK,
		Sealed:     k.Sealed,
		KEKID:      k.KEKID,
		State:      k.State,
		CreatedAt:  k.CreatedAt.UTC(),
		ActivateAt: k.ActivateAt.UTC(),
		RetireAt:   k.RetireAt.UTC(),
		Version:    k.Version,
	}
}

func (r keyRecord) signingKey() store.SigningKey {
	return store.SigningKey{
		KID:        r.KID,
		Alg:        r.Alg,
		PublicJWK:  r.PublicJWK,
		Sealed:     r.Sealed,
		KEKID:      r.KEKID,
		State:      r.State,
		CreatedAt:  r.CreatedAt,
		ActivateAt: r.ActivateAt,
		RetireAt:   r.RetireAt,
		Version:    r.Version,
	}
}

// CreateKey stores k with Version 1; store.ErrAlreadyExists if the kid
// exists, and an error when the kid, alg or state is invalid.
func (s *Store) CreateKey(ctx context.Context, k store.SigningKey) error {
	if err := store.ValidateKey(k); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	k.Version = 1
	return s.createIn(ctx, keyKind, k.KID, ms(k.CreatedAt), toKeyRecord(k))
}

// UpdateKey replaces the stored key if its Version equals k.Version and
// returns it as stored, with Version+1, so that replicas agree on each step
// of the key's lifecycle. It returns store.ErrConflict when the stored
// version differs and store.ErrNotFound when there is no such key.
func (s *Store) UpdateKey(ctx context.Context, k store.SigningKey) (store.SigningKey, error) {
	if err := store.ValidateKey(k); err != nil {
		return store.SigningKey{}, fmt.Errorf("update signing key: %w", err)
	}
	was := k.Version
	k.Version++
	rec := toKeyRecord(k)
	if err := s.updateIn(ctx, keyKind, k.KID, was, ms(k.CreatedAt), rec); err != nil {
		return store.SigningKey{}, err
	}
	return rec.signingKey(), nil
}

// ListKeys returns every key not deleted, ordered by CreatedAt (then kid).
func (s *Store) ListKeys(ctx context.Context) ([]store.SigningKey, error) {
	raw, err := s.listIn(ctx, keyKind)
	if err != nil {
		return nil, err
	}
	out := make([]store.SigningKey, 0, len(raw))
	for _, data := range raw {
		var r keyRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, malformed("list signing keys", err)
		}
		out = append(out, r.signingKey())
	}
	// The index orders by millisecond; settle finer differences and ties.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].KID < out[j].KID
	})
	return out, nil
}

// DeleteKey removes a key and its index entry; store.ErrNotFound if there
// was none. The caller deletes only retired keys (MISSION §0.4); the store
// does not check the state.
func (s *Store) DeleteKey(ctx context.Context, kid string) error {
	return s.deleteIn(ctx, keyKind, kid)
}
