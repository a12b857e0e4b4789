package edge_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/edge"
)

func newChecker(t *testing.T, is *issuer) *edge.Checker {
	t.Helper()
	c, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: testIssuer, JWKSURL: is.url(), HTTPClient: is.srv.Client(),
		MaxTokenLifetime: 15 * time.Minute, ClockSkew: skew, UnknownKIDInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestChecker: the Checker runs the edge's checks except the audience and
// the deny state.
func TestChecker(t *testing.T) {
	k := newKey(t, "ES256", "k1")
	other := newKey(t, "ES256", "k2")
	is := newIssuer(t, k)
	c := newChecker(t, is)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	hs := func() string {
		// HS256 keyed with the public key's JSON: alg confusion.
		pub, _ := k.pub.(interface{ MarshalJSON() ([]byte, error) }).MarshalJSON()
		hdr := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
		tok := rawToken(t, hdr, claims(), nil)
		in := tok[:strings.LastIndexByte(tok, '.')]
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", sign(t, k, claims()), nil},
		{"any audience", sign(t, k, with(claims(), "aud", "https://elsewhere.test")), nil},
		{"garbage", "not-a-token", edge.ErrMalformed},
		{"alg none", rawToken(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "k1"}, claims(), nil), edge.ErrBadAlgorithm},
		{"HS256 with the public key", hs(), edge.ErrBadAlgorithm},
		{"wrong typ", sign(t, k, claims(), "typ", "JWT"), edge.ErrWrongType},
		{"foreign issuer", sign(t, k, with(claims(), "iss", "https://evil.test")), edge.ErrWrongIssuer},
		{"unknown key", sign(t, other, claims()), edge.ErrUnknownKID},
		{"expired", sign(t, k, with(claims(), "iat", now-700, "nbf", now-700, "exp", now-100)), edge.ErrExpired},
		{"too long", sign(t, k, with(claims(), "exp", now+7200)), edge.ErrLifetime},
		{"future iat", sign(t, k, with(claims(), "iat", now+60, "nbf", nil)), edge.ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second time from the cache
				cl, err := c.Check(context.Background(), tt.token)
				if tt.want == nil {
					if err != nil || cl.Subject != "alice" {
						t.Fatalf("Check = %+v, %v", cl, err)
					}
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("Check error %v, want %v", err, tt.want)
				}
			}
		})
	}
}

// TestCheckerKeysUnavailable: while JWKS cannot be fetched, an unknown kid
// is ErrStale (cannot decide), never a verdict on the token.
func TestCheckerKeysUnavailable(t *testing.T) {
	k := newKey(t, "ES256", "k1")
	is := newIssuer(t, k)
	is.setDown(true)
	c := newChecker(t, is)
	if _, err := c.Check(context.Background(), sign(t, k, claims())); !errors.Is(err, edge.ErrStale) {
		t.Fatalf("before Start: %v, want ErrStale", err)
	}
	if err := c.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded with JWKS down")
	}
	if c.Ready() == nil {
		t.Fatal("ready without keys")
	}
	tok := sign(t, k, claims())
	if _, err := c.Check(context.Background(), tok); !errors.Is(err, edge.ErrStale) {
		t.Fatalf("JWKS down: %v, want ErrStale", err)
	}
	is.setDown(false)
	eventually(t, func() error {
		_, err := c.Check(context.Background(), tok)
		return err
	})
	if c.Ready() != nil {
		t.Fatal("not ready after a fetch")
	}
}

func BenchmarkCheckerCached(b *testing.B) {
	k := newKey(b, "ES256", "k1")
	is := newIssuer(b, k)
	c, _ := edge.NewChecker(edge.CheckerConfig{Issuer: testIssuer, JWKSURL: is.url(), HTTPClient: is.srv.Client(), MaxTokenLifetime: 15 * time.Minute})
	defer c.Close()
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	tok := sign(b, k, claims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Check(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
