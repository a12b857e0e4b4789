package edge_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/edge"
)

// newStreamChecker starts a Checker that follows e's key stream and refetches
// JWKS only when an event says so: the periodic refresh and the unknown-kid
// refetch are an hour apart, so nothing but the stream can make it learn.
func (e *env) newStreamChecker(t *testing.T) *edge.Checker {
	t.Helper()
	_, js := connect(t, e.srv.URL)
	c, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: e.is.url(), HTTPClient: e.is.srv.Client(),
		MaxTokenLifetime: time.Hour, ClockSkew: skew,
		RefreshInterval: time.Hour, UnknownKIDInterval: time.Hour,
		JetStream: js, SubjectPrefix: e.prefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready after Start: %v", err)
	}
	return c
}

// checkFails returns nil when Check of tok fails with want.
func checkFails(c *edge.Checker, tok string, want error) error {
	_, err := c.Check(context.Background(), tok)
	if !errors.Is(err, want) {
		return fmt.Errorf("Check = %v, want %v", err, want)
	}
	return nil
}

// TestCheckerFollowsKeyStream: with a JetStream, key events reach the
// Checker at once — a published key becomes usable, a retired one stops
// verifying, and a key revoked as compromised is refused at once and its
// cached tokens dropped — instead of after DefaultCheckerRefreshInterval.
func TestCheckerFollowsKeyStream(t *testing.T) {
	e := newEnv(t)
	c := e.newStreamChecker(t)
	old := sign(t, e.key, claims())
	if _, err := c.Check(context.Background(), old); err != nil {
		t.Fatalf("Check: %v", err)
	}

	fresh := newKey(t, "ES256", "es256-b")
	newTok := sign(t, fresh, claims())
	if err := checkFails(c, newTok, edge.ErrUnknownKID); err != nil {
		t.Fatalf("before the announcement: %v", err)
	}
	t.Run("key.published makes a new key usable", func(t *testing.T) {
		e.is.serve(e.key, fresh)
		e.publish(t, &events.KeyPublished{KID: fresh.kid, Alg: fresh.alg, Thumbprint: fresh.thumbprint})
		eventually(t, func() error {
			_, err := c.Check(context.Background(), newTok)
			return err
		})
	})

	t.Run("key.revoked refuses the kid and drops its cached tokens", func(t *testing.T) {
		if _, err := c.Check(context.Background(), old); err != nil { // cached
			t.Fatalf("Check: %v", err)
		}
		if n := edge.CheckerCached(c, e.key.kid); n != 1 {
			t.Fatalf("%d cached tokens of %s, want 1", n, e.key.kid)
		}
		e.is.serve(fresh) // the issuer dropped it from JWKS
		e.publish(t, &events.KeyRevoked{KID: e.key.kid, Reason: "compromised"})
		// Dropped by the event itself, not by a lookup.
		eventually(t, func() error {
			if n := edge.CheckerCached(c, e.key.kid); n != 0 {
				return fmt.Errorf("%d cached tokens of the revoked kid", n)
			}
			return nil
		})
		for _, tok := range []string{old, sign(t, e.key, claims())} {
			if err := checkFails(c, tok, edge.ErrKeyRevoked); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Check(context.Background(), newTok); err != nil {
			t.Fatalf("another key's token: %v", err)
		}
	})

	t.Run("key.revoked wins over a JWKS that still serves the kid", func(t *testing.T) {
		k := newKey(t, "ES256", "es256-c")
		e.is.serve(fresh, k)
		e.publish(t, &events.KeyPublished{KID: k.kid, Alg: k.alg, Thumbprint: k.thumbprint})
		tok := sign(t, k, claims())
		eventually(t, func() error {
			_, err := c.Check(context.Background(), tok)
			return err
		})
		e.publish(t, &events.KeyRevoked{KID: k.kid, Reason: "compromised"})
		eventually(t, func() error { return checkFails(c, tok, edge.ErrKeyRevoked) })
	})

	t.Run("key.retired stops the kid", func(t *testing.T) {
		e.is.serve()
		e.publish(t, &events.KeyRetired{KID: fresh.kid})
		eventually(t, func() error { return checkFails(c, newTok, edge.ErrUnknownKID) })
		if n := edge.CheckerCached(c, fresh.kid); n != 0 {
			t.Fatalf("%d cached tokens of the retired kid", n)
		}
	})
}

// TestCheckerReplaysKeyStream: a kid revoked before the Checker started is
// refused from its first Check, even though JWKS still serves it.
func TestCheckerReplaysKeyStream(t *testing.T) {
	e := newEnv(t)
	e.publish(t, &events.KeyRevoked{KID: e.key.kid, Reason: "compromised"})
	c := e.newStreamChecker(t)
	if err := checkFails(c, sign(t, e.key, claims()), edge.ErrKeyRevoked); err != nil {
		t.Fatal(err)
	}
}

// TestCheckerWithoutKeyStream: a Checker that cannot follow its key stream
// (here: the stream does not exist) answers ErrStale — the caller's 503 —
// rather than a verdict that might let a revoked kid through.
func TestCheckerWithoutKeyStream(t *testing.T) {
	e := newEnv(t)
	_, js := connect(t, e.srv.URL)
	c, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: e.is.url(), HTTPClient: e.is.srv.Client(),
		MaxTokenLifetime: time.Hour, JetStream: js, SubjectPrefix: "nostreams",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Start(ctx); err == nil {
		t.Fatal("Start succeeded without the key stream")
	}
	if c.Ready() == nil {
		t.Fatal("ready without the key stream")
	}
	if err := checkFails(c, sign(t, e.key, claims()), edge.ErrStale); err != nil {
		t.Fatal(err)
	}
}

// TestCheckerConfigPrefix: a subject prefix that cannot be a subject token
// is refused at construction.
func TestCheckerConfigPrefix(t *testing.T) {
	_, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: "https://issuer.test/jwks.json", MaxTokenLifetime: time.Hour,
		SubjectPrefix: "a.b",
	})
	if err == nil {
		t.Fatal("NewChecker accepted the subject prefix a.b")
	}
}
