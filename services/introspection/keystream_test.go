package introspection_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// eventually retries f until it returns nil, failing with its last error
// after a generous deadline: tests never assert how long something took.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within 20s: %v", err)
}

// TestKeyRevokedAtOnce: a signing key revoked as compromised (valet keys
// revoke) makes its tokens inactive here as soon as key.revoked arrives on
// the key stream — the checker's periodic JWKS refresh is an hour away in
// this harness — even a token the checker had verified and cached; tokens
// of the replacement key are active (MISSION §0 invariant 4).
func TestKeyRevokedAtOnce(t *testing.T) {
	h := newHarness(t)
	signer, err := h.keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	tok := h.mint(claims())
	if r := h.introspect(tok, clientA); !r.active() {
		t.Fatalf("before the revocation: %d %s", r.Status, r.Raw)
	}
	if err := h.keys.Revoke(context.Background(), signer.KID(), "compromised"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	eventually(t, func() error {
		if r := h.introspect(tok, clientA); r.Status != 200 || r.Raw != `{"active":false}` {
			return fmt.Errorf("token of the revoked key: %d %s", r.Status, r.Raw)
		}
		return nil
	})
	next, err := h.keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	if next.KID() == signer.KID() {
		t.Fatal("no replacement key")
	}
	fresh := h.mint(claims())
	eventually(t, func() error {
		if r := h.introspect(fresh, clientA); !r.active() {
			return fmt.Errorf("token of the replacement key: %d %s", r.Status, r.Raw)
		}
		return nil
	})
}
