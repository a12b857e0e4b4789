package introspection_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/servicetest"
)

// TestKeyRevokedAtOnce: a signing key revoked as compromised (valet keys
// revoke) makes its tokens inactive here as soon as key.revoked arrives on
// the key stream — the checker's periodic JWKS refresh is an hour away in
// this harness — even a token the checker had verified and cached; tokens
// of the replacement key are active (MISSION §0 invariant 4).
func TestKeyRevokedAtOnce(t *testing.T) {
	h := newHarness(t)
	signer, err := h.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	tok := h.Mint(claims())
	if r := h.introspect(tok, clientA); !r.Bool("active") {
		t.Fatalf("before the revocation: %d %s", r.Status, r.Raw)
	}
	if err := h.Keys.Revoke(context.Background(), signer.KID(), "compromised"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	servicetest.Eventually(t, 20*time.Second, func() error {
		if r := h.introspect(tok, clientA); r.Status != 200 || r.Raw != `{"active":false}` {
			return fmt.Errorf("token of the revoked key: %d %s", r.Status, r.Raw)
		}
		return nil
	})
	next, err := h.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	if next.KID() == signer.KID() {
		t.Fatal("no replacement key")
	}
	fresh := h.Mint(claims())
	servicetest.Eventually(t, 20*time.Second, func() error {
		if r := h.introspect(fresh, clientA); !r.Bool("active") {
			return fmt.Errorf("token of the replacement key: %d %s", r.Status, r.Raw)
		}
		return nil
	})
}
