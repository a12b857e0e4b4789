package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// keyTests cover store.KeyStore (MISSION §0.4: a key's lifecycle is agreed
// by compare-and-set between replicas).
var keyTests = []subtest{
	{"SigningKey/Missing", testKeyMissing},
	{"SigningKey/Duplicate", testKeyDuplicate},
	{"SigningKey/RoundTrip", testKeyRoundTrip},
	{"SigningKey/UpdateComparesVersion", testKeyUpdate},
	{"SigningKey/ListByCreatedAtAndDelete", testKeyListDelete},
	{"SigningKey/RefusesInvalid", testKeyValidation},
	{"SigningKey/ConcurrentActivationHasOneWinner", testKeyConcurrentUpdate},
}

func fullKey(kid string, createdAt time.Time) store.SigningKey {
	return store.SigningKey{
		KID:        kid,
		Alg:        "ES256",
		PublicJWK:  []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"` + kid + `"}`),
		Sealed:     []byte{0x00, 0xff, 0x10, 0x80, 0x7f, 0x01},
		KEKID:      "kek-2025",
		State:      store.KeyPublished,
		CreatedAt:  createdAt,
		ActivateAt: createdAt.Add(10 * time.Minute),
		RetireAt:   createdAt.Add(30 * 24 * time.Hour),
	}
}

func normKey(k store.SigningKey) store.SigningKey {
	k.PublicJWK, k.Sealed = normBytes(k.PublicJWK), normBytes(k.Sealed)
	k.CreatedAt, k.ActivateAt, k.RetireAt = k.CreatedAt.UTC(), k.ActivateAt.UTC(), k.RetireAt.UTC()
	return k
}

func keyVersion(k store.SigningKey, v int64) store.SigningKey { k.Version = v; return k }

// keyList returns the store's keys, failing t on error.
func keyList(t *testing.T, s store.Store) []store.SigningKey {
	t.Helper()
	keys, err := s.ListKeys(t.Context())
	noErr(t, "list keys", err)
	return keys
}

func kids(keys []store.SigningKey) string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KID
	}
	return strings.Join(out, ",")
}

func testKeyMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	if keys := keyList(t, s); len(keys) != 0 {
		t.Fatalf("empty store lists keys %s", kids(keys))
	}
	_, err := s.UpdateKey(ctx, keyVersion(fullKey("k1", registryNow()), 1))
	wantErr(t, "update unknown key", err, store.ErrNotFound)
	wantErr(t, "delete unknown key", s.DeleteKey(ctx, "k1"), store.ErrNotFound)
}

func testKeyDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := fullKey("k1", registryNow())
	noErr(t, "create key", s.CreateKey(ctx, first))
	second := first
	second.Alg = "RS256"
	second.Sealed = []byte("another private key")
	wantErr(t, "create the same kid again", s.CreateKey(ctx, second), store.ErrAlreadyExists)
	keys := keyList(t, s)
	if len(keys) != 1 {
		t.Fatalf("listed keys %s, want k1 once", kids(keys))
	}
	sameRecord(t, "key after a refused duplicate", keys[0], keyVersion(first, 1), normKey)
}

func testKeyRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	k := fullKey("2025-06-01_a-B", now)
	k.CreatedAt = now.In(time.FixedZone("UTC+5:30", 5*3600+1800))
	k.Version = 9 // CreateKey stores Version 1 whatever it is given.
	noErr(t, "create key", s.CreateKey(ctx, k))
	keys := keyList(t, s)
	if len(keys) != 1 {
		t.Fatalf("listed keys %s, want one", kids(keys))
	}
	sameRecord(t, "key read back", keys[0], keyVersion(k, 1), normKey)
}

func testKeyUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	k := fullKey("k1", now)
	noErr(t, "create key", s.CreateKey(ctx, k))

	active := keyVersion(k, 1)
	active.State = store.KeyActive
	v2, err := s.UpdateKey(ctx, active)
	noErr(t, "activate at the stored version", err)
	sameRecord(t, "update's result", v2, keyVersion(active, 2), normKey)

	// A replica that read version 1 and tries to revoke loses.
	revoked := keyVersion(k, 1)
	revoked.State = store.KeyRevoked
	_, err = s.UpdateKey(ctx, revoked)
	wantErr(t, "update at a stale version", err, store.ErrConflict)
	keys := keyList(t, s)
	if len(keys) != 1 {
		t.Fatalf("listed keys %s, want one", kids(keys))
	}
	sameRecord(t, "key after a lost update", keys[0], keyVersion(active, 2), normKey)

	retiring := v2
	retiring.State = store.KeyRetiring
	retiring.RetireAt = now.Add(time.Hour)
	v3, err := s.UpdateKey(ctx, retiring)
	noErr(t, "retire at version 2", err)
	if v3.Version != 3 || v3.State != store.KeyRetiring {
		t.Fatalf("got %s at version %d, want retiring at version 3", v3.State, v3.Version)
	}
}

func testKeyListDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	// Created out of order, and with kids whose order is not their age.
	for _, k := range []struct {
		kid string
		age time.Duration
	}{
		{"a-newest", 0},
		{"z-oldest", 3 * time.Hour},
		{"m-middle", 2 * time.Hour},
		{"b-younger", time.Hour},
		{"c-young", 30 * time.Minute},
	} {
		key := fullKey(k.kid, now.Add(-k.age))
		noErr(t, "create "+k.kid, s.CreateKey(ctx, key))
	}
	if got, want := kids(keyList(t, s)), "z-oldest,m-middle,b-younger,c-young,a-newest"; got != want {
		t.Fatalf("listed %s, want %s (by CreatedAt)", got, want)
	}
	noErr(t, "delete m-middle", s.DeleteKey(ctx, "m-middle"))
	wantErr(t, "delete m-middle again", s.DeleteKey(ctx, "m-middle"), store.ErrNotFound)
	_, err := s.UpdateKey(ctx, keyVersion(fullKey("m-middle", now), 1))
	wantErr(t, "update a deleted key", err, store.ErrNotFound)
	if got, want := kids(keyList(t, s)), "z-oldest,b-younger,c-young,a-newest"; got != want {
		t.Fatalf("after delete, listed %s, want %s", got, want)
	}
}

func testKeyValidation(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	for _, tc := range []struct {
		name   string
		modify func(k *store.SigningKey)
	}{
		{"empty kid", func(k *store.SigningKey) { k.KID = "" }},
		{"kid with a dot", func(k *store.SigningKey) { k.KID = "k.1" }},
		{"kid with a wildcard", func(k *store.SigningKey) { k.KID = "k*" }},
		{"kid with a colon", func(k *store.SigningKey) { k.KID = "k:1" }},
		{"kid of 200 characters", func(k *store.SigningKey) { k.KID = strings.Repeat("k", 200) }},
		{"no alg", func(k *store.SigningKey) { k.Alg = "" }},
		{"no state", func(k *store.SigningKey) { k.State = "" }},
		{"unknown state", func(k *store.SigningKey) { k.State = "compromised" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := fullKey("k-new", now)
			tc.modify(&k)
			refused(t, "create", s.CreateKey(ctx, k))
		})
	}
	if keys := keyList(t, s); len(keys) != 0 {
		t.Fatalf("refused keys were stored: %s", kids(keys))
	}
	k := fullKey("k1", now)
	noErr(t, "create a valid key", s.CreateKey(ctx, k))
	bad := keyVersion(k, 1)
	bad.State = "compromised"
	_, err := s.UpdateKey(ctx, bad)
	refused(t, "update to an unknown state", err)
}

// testKeyConcurrentUpdate has 20 replicas try to move one key on from the
// same version: exactly one of them does.
func testKeyConcurrentUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := fullKey("k1", registryNow())
	noErr(t, "create key", s.CreateKey(ctx, k))
	winner := oneWinner(t, 20, func(i int) error {
		next := keyVersion(k, 1)
		next.State = store.KeyActive
		next.KEKID = fmt.Sprintf("replica-%d", i)
		_, err := s.UpdateKey(ctx, next)
		return err
	})
	keys := keyList(t, s)
	if len(keys) != 1 || keys[0].Version != 2 || keys[0].KEKID != fmt.Sprintf("replica-%d", winner) {
		t.Fatalf("stored %+v, want replica %d's update at version 2", keys, winner)
	}
}
