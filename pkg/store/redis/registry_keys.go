package redis

// Signing keys (store.KeyStore), shared by every issuer replica:
//
//	<prefix>{keys}         sorted set: every kid, scored by CreatedAt (Unix ms)
//	<prefix>{keys}:<kid>   string: record.SigningKey JSON (private key only sealed)

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/record"
)

var keyKind = recordKind{tag: "{keys}", name: "signing key"}

// CreateKey stores k with Version 1; store.ErrAlreadyExists if the kid
// exists, and an error when the kid, alg or state is invalid.
func (s *Store) CreateKey(ctx context.Context, k store.SigningKey) error {
	if err := store.ValidateKey(k); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	k.Version = 1
	return s.createIn(ctx, keyKind, k.KID, ms(k.CreatedAt), record.FromSigningKey(k))
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
	rec := record.FromSigningKey(k)
	if err := s.updateIn(ctx, keyKind, k.KID, was, ms(k.CreatedAt), rec); err != nil {
		return store.SigningKey{}, err
	}
	return rec.SigningKey(), nil
}

// ListKeys returns every key not deleted, ordered by CreatedAt (then kid).
func (s *Store) ListKeys(ctx context.Context) ([]store.SigningKey, error) {
	raw, err := s.listIn(ctx, keyKind)
	if err != nil {
		return nil, err
	}
	out := make([]store.SigningKey, 0, len(raw))
	for _, data := range raw {
		var r record.SigningKey
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, malformed("list signing keys", err)
		}
		out = append(out, r.SigningKey())
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
