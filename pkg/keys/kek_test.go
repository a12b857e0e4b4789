package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/store"
)

func TestNewKEKRing(t *testing.T) {
	good := bytes.Repeat([]byte{7}, KEKSize)
	for _, tc := range []struct {
		name   string
		active string
		keks   map[string][]byte
		ok     bool
	}{
		{"one key", "a", map[string][]byte{"a": good}, true},
		{"two keys", "b", map[string][]byte{"a": good, "b": good}, true},
		{"empty ring", "a", nil, false},
		{"active not in ring", "b", map[string][]byte{"a": good}, false},
		{"short key", "a", map[string][]byte{"a": good[:16]}, false},
		{"long key", "a", map[string][]byte{"a": append(good, 1)}, false},
		{"id with a slash", "a/b", map[string][]byte{"a/b": good}, false},
		{"empty id", "", map[string][]byte{"": good}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewKEKRing(tc.active, tc.keks)
			if tc.ok != (err == nil) {
				t.Fatalf("NewKEKRing: err = %v, want ok = %v", err, tc.ok)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), good[:4]) {
				t.Fatalf("error quotes key material: %v", err)
			}
			if err == nil && r.ActiveID() != tc.active {
				t.Fatalf("ActiveID = %q, want %q", r.ActiveID(), tc.active)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	k1, k2 := randomKEK(t), randomKEK(t)
	ring, err := NewKEKRing("kek-1", map[string][]byte{"kek-1": k1})
	if err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("-----PKCS#8 private key bytes-----")
	sealed, kekID, err := ring.Seal("kid-A", plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if kekID != "kek-1" {
		t.Fatalf("sealed under %q, want kek-1", kekID)
	}
	if bytes.Contains(sealed, plaintext[5:20]) {
		t.Fatal("sealed blob contains the plaintext")
	}
	again, _, _ := ring.Seal("kid-A", plaintext)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of the same key are equal: nonce reused")
	}

	impostor, err := NewKEKRing("kek-1", map[string][]byte{"kek-1": k2})
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	badVersion := bytes.Clone(sealed)
	badVersion[0] = 9

	for _, tc := range []struct {
		name    string
		ring    *KEKRing
		kekID   string
		kid     string
		blob    []byte
		wantErr error
	}{
		{"round trip", ring, "kek-1", "kid-A", sealed, nil},
		{"wrong KEK under the same id", impostor, "kek-1", "kid-A", sealed, ErrUnseal},
		{"wrong kid", ring, "kek-1", "kid-B", sealed, ErrUnseal},
		{"unknown KEK id", ring, "kek-0", "kid-A", sealed, ErrUnknownKEK},
		{"tampered ciphertext", ring, "kek-1", "kid-A", tampered, ErrUnseal},
		{"unknown format", ring, "kek-1", "kid-A", badVersion, ErrUnseal},
		{"truncated", ring, "kek-1", "kid-A", sealed[:10], ErrUnseal},
		{"empty", ring, "kek-1", "kid-A", nil, ErrUnseal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ring.Open(tc.kekID, tc.kid, tc.blob)
			if tc.wantErr == nil {
				if err != nil || !bytes.Equal(got, plaintext) {
					t.Fatalf("Open = %q, %v; want the plaintext", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open: err = %v, want %v", err, tc.wantErr)
			}
			if got != nil {
				t.Fatal("Open returned plaintext with an error")
			}
		})
	}
}

// TestStoredKeysAreSealed checks what reaches the store: the private key only
// sealed, under the active KEK, bound to its kid.
func TestStoredKeysAreSealed(t *testing.T) {
	f := newFixture(t)
	m := f.replica(t)
	refresh(t, m)
	kid := current(t, m).KID()
	k := f.st.get(t, kid)
	if k.KEKID != "kek-1" || len(k.Sealed) == 0 {
		t.Fatalf("stored key: KEKID %q, %d sealed bytes", k.KEKID, len(k.Sealed))
	}
	if strings.Contains(string(k.PublicJWK), `"d"`) {
		t.Fatalf("stored public JWK holds a private member: %s", k.PublicJWK)
	}
	if _, err := f.ring.Open(k.KEKID, kid, k.Sealed); err != nil {
		t.Fatalf("stored key does not open: %v", err)
	}
}

func TestRewrap(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	kekA, kekB := randomKEK(t), randomKEK(t)
	ringA, _ := NewKEKRing("a", map[string][]byte{"a": kekA})
	f.ring = ringA
	m := f.replica(t)
	refresh(t, m)
	if _, err := m.Rotate(ctx); err != nil { // a published successor
		t.Fatal(err)
	}
	before := len(f.st.inState(store.KeyActive)) + len(f.st.inState(store.KeyPublished))
	if before != 2 {
		t.Fatalf("want an active key and a successor, have %d", before)
	}

	ringAB, _ := NewKEKRing("b", map[string][]byte{"a": kekA, "b": kekB})
	// Another replica moves a key between Rewrap's read and write once.
	var bumped bool
	f.st.beforeUpdate = func(k store.SigningKey) error {
		if !bumped && k.KEKID == "b" {
			bumped = true
			cur := f.st.get(t, k.KID)
			if _, err := f.st.UpdateKey(ctx, cur); err != nil { // same record, new version
				t.Errorf("bump: %v", err)
			}
		}
		return nil
	}
	n, err := ringAB.Rewrap(ctx, f.st)
	f.st.beforeUpdate = nil
	if err != nil || n != 2 {
		t.Fatalf("Rewrap = %d, %v; want 2 keys re-sealed", n, err)
	}
	if !bumped {
		t.Fatal("the conflict was not exercised")
	}
	ringB, _ := NewKEKRing("b", map[string][]byte{"b": kekB})
	keys, _ := f.st.ListKeys(ctx)
	for _, k := range keys {
		if k.KEKID != "b" {
			t.Fatalf("key %s still sealed under %q", k.KID, k.KEKID)
		}
		if _, err := ringB.Open(k.KEKID, k.KID, k.Sealed); err != nil {
			t.Fatalf("key %s does not open under the new KEK alone: %v", k.KID, err)
		}
	}
	if n, err := ringAB.Rewrap(ctx, f.st); err != nil || n != 0 {
		t.Fatalf("second Rewrap = %d, %v; want 0 (idempotent)", n, err)
	}

	// A replica holding only the new KEK signs with the rewrapped key.
	f.ring = ringB
	m2 := f.replica(t)
	refresh(t, m2)
	if current(t, m2).KID() != current(t, m).KID() {
		t.Fatal("replicas disagree on the active key after rewrap")
	}

	// Rewrap with a ring that cannot open the keys refuses, changing nothing.
	ringC, _ := NewKEKRing("c", map[string][]byte{"c": randomKEK(t)})
	if _, err := ringC.Rewrap(ctx, f.st); !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("Rewrap without the old KEK: err = %v, want ErrUnknownKEK", err)
	}
}

// TestWrongKEKCannotSign: a replica without the KEK that sealed the active
// key serves JWKS but refuses to sign (503), rather than sign with anything
// else.
func TestWrongKEKCannotSign(t *testing.T) {
	f := newFixture(t)
	refresh(t, f.replica(t))
	f.ring, _ = NewKEKRing("other", map[string][]byte{"other": randomKEK(t)})
	m := f.replica(t)
	if err := m.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if _, err := m.Current(); !errors.Is(err, ErrNoSigningKey) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Current with the wrong KEK: err = %v, want ErrNoSigningKey and store.ErrUnavailable", err)
	}
	if len(kidsOf(jwksOf(t, m))) != 1 {
		t.Fatal("JWKS should still list the active key")
	}
}
