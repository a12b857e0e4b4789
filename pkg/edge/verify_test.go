package edge_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/valetauth/valet/pkg/edge"
)

func TestVerifyValidToken(t *testing.T) {
	e := newEnv(t)
	ed := newKey(t, "EdDSA", "eddsa-a")
	rs := newKey(t, "RS256", "rs256-a")
	e.is.serve(e.key, ed, rs)
	var d decisions
	v := e.startEdge(t, edge.WithObserver(edge.Observer{OnDecision: d.record}))

	for _, k := range []*signingKey{e.key, ed, rs} {
		t.Run(k.alg, func(t *testing.T) {
			c := claims()
			got := mustVerify(t, v, sign(t, k, c))
			want := edge.Claims{
				Issuer:    testIssuer,
				Subject:   "alice",
				Audience:  []string{"https://other.test", testAudience},
				ClientID:  "web-portal",
				Scopes:    []string{"read", "write"},
				JTI:       c["jti"].(string),
				FID:       c["fid"].(string),
				KeyID:     k.kid,
				IssuedAt:  time.Unix(c["iat"].(int64), 0),
				ExpiresAt: time.Unix(c["exp"].(int64), 0),
				NotBefore: time.Unix(c["nbf"].(int64), 0),
			}
			if !equalClaims(got, want) {
				t.Fatalf("claims\n got %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("typ variants and single aud", func(t *testing.T) {
		for _, typ := range []string{"at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"} {
			tok := sign(t, e.key, with(claims(), "aud", testAudience, "nbf", nil, "fid", nil), "typ", typ)
			c := mustVerify(t, v, tok)
			if c.FID != "" || !c.NotBefore.IsZero() || !slices.Equal(c.Audience, []string{testAudience}) {
				t.Fatalf("typ %s: claims %+v", typ, c)
			}
		}
	})

	t.Run("returned slices are the caller's", func(t *testing.T) {
		tok := sign(t, e.key, claims())
		c := mustVerify(t, v, tok)
		c.Scopes[0] = "admin"
		c.Audience[0] = "x"
		c2 := mustVerify(t, v, tok)
		if c2.Scopes[0] != "read" || c2.Audience[0] != "https://other.test" {
			t.Fatalf("cached claims were modified through a returned slice: %+v", c2)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		tok := sign(t, e.key, claims())
		if _, err := v.VerifyScopes(context.Background(), tok, "read", "write"); err != nil {
			t.Fatalf("VerifyScopes(read write): %v", err)
		}
		_, err := v.VerifyScopes(context.Background(), tok, "read", "admin")
		if !errors.Is(err, edge.ErrInsufficientScope) {
			t.Fatalf("VerifyScopes(admin) = %v, want ErrInsufficientScope", err)
		}
	})

	if d.count(edge.ReasonOK) == 0 || d.count(edge.ReasonInsufficientScope) != 1 {
		t.Fatalf("decisions observed: %v", d.reasons())
	}
}

func equalClaims(a, b edge.Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Audience, b.Audience) &&
		a.ClientID == b.ClientID && slices.Equal(a.Scopes, b.Scopes) && a.JTI == b.JTI && a.FID == b.FID &&
		a.KeyID == b.KeyID && a.IssuedAt.Equal(b.IssuedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && a.NotBefore.Equal(b.NotBefore)
}

func TestVerifyRejects(t *testing.T) {
	e := newEnv(t)
	ed := newKey(t, "EdDSA", "eddsa-a")
	e.is.serve(e.key, ed)
	v := e.startEdge(t)
	now := time.Now().Unix()
	stranger := newKey(t, "ES256", "never-published")

	// The ES256 key's public key, as an attacker would find it.
	der, err := x509.MarshalPKIXPublicKey(e.key.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := func(key []byte) string {
		hdr := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": e.key.kid}
		unsigned := strings.TrimSuffix(rawToken(t, hdr, claims(), nil), ".")
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(unsigned))
		return unsigned + "." + b64(mac.Sum(nil))
	}
	jwxHS256, err := jws.Sign([]byte(`{"iss":"`+testIssuer+`"}`), jws.WithKey(jwa.HS256, pubPEM, jws.WithProtectedHeaders(headers(t, "typ", "at+jwt", "kid", e.key.kid))))
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, e.key, claims())
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		token string
		want  *edge.Error
	}{
		{"empty", "", edge.ErrMalformed},
		{"garbage", "not a token", edge.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], edge.ErrMalformed},
		{"JWE-like five segments", valid + ".a.b", edge.ErrMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], edge.ErrMalformed},
		{"header not JSON", b64([]byte("nope")) + "." + parts[1] + "." + parts[2], edge.ErrMalformed},
		{"huge", strings.Repeat("a", 20000), edge.ErrMalformed},
		{"typ JWT", sign(t, e.key, claims(), "typ", "JWT"), edge.ErrWrongType},
		{"typ missing", rawToken(t, map[string]any{"alg": "ES256", "kid": e.key.kid}, claims(), make([]byte, 64)), edge.ErrWrongType},
		{"alg none", rawToken(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": e.key.kid}, claims(), nil), edge.ErrBadAlgorithm},
		{"alg None", rawToken(t, map[string]any{"alg": "None", "typ": "at+jwt"}, claims(), nil), edge.ErrBadAlgorithm},
		{"HS256 keyed with the public key PEM", hs256(pubPEM), edge.ErrBadAlgorithm},
		{"HS256 keyed with the public key DER", hs256(der), edge.ErrBadAlgorithm},
		{"HS256 by jwx", string(jwxHS256), edge.ErrBadAlgorithm},
		{"PS256", rawToken(t, map[string]any{"alg": "PS256", "typ": "at+jwt", "kid": e.key.kid}, claims(), make([]byte, 256)), edge.ErrBadAlgorithm},
		{"EdDSA header on the ES256 key", sign(t, &signingKey{kid: e.key.kid, alg: "EdDSA", priv: ed.priv}, claims()), edge.ErrBadAlgorithm},
		{"ES256 header on the EdDSA key", sign(t, &signingKey{kid: ed.kid, alg: "ES256", priv: e.key.priv}, claims()), edge.ErrBadAlgorithm},
		{"crit header", sign(t, e.key, claims(), "crit", []string{"exp"}), edge.ErrMalformed},
		{"unknown kid", sign(t, stranger, claims()), edge.ErrUnknownKID},
		{"no kid", rawToken(t, map[string]any{"alg": "ES256", "typ": "at+jwt"}, claims(), make([]byte, 64)), edge.ErrUnknownKID},
		{"signed by another key under a known kid", sign(t, &signingKey{kid: e.key.kid, alg: "ES256", priv: stranger.priv}, claims()), edge.ErrBadSignature},
		{"tampered payload", parts[0] + "." + b64([]byte(`{"sub":"mallory"}`)) + "." + parts[2], edge.ErrBadSignature},
		{"DER signature", parts[0] + "." + parts[1] + "." + b64(make([]byte, 72)), edge.ErrBadSignature},
		{"wrong issuer", sign(t, e.key, with(claims(), "iss", "https://evil.test")), edge.ErrWrongIssuer},
		{"issuer with trailing slash", sign(t, e.key, with(claims(), "iss", testIssuer+"/")), edge.ErrWrongIssuer},
		{"wrong audience", sign(t, e.key, with(claims(), "aud", "https://other.test")), edge.ErrWrongAudience},
		{"expired", sign(t, e.key, with(claims(), "iat", now-700, "nbf", now-700, "exp", now-100)), edge.ErrExpired},
		{"nbf in the future", sign(t, e.key, with(claims(), "nbf", now+300)), edge.ErrNotYetValid},
		{"iat in the future", sign(t, e.key, with(claims(), "iat", now+300, "nbf", nil, "exp", now+900)), edge.ErrNotYetValid},
		{"lifetime beyond the maximum", sign(t, e.key, with(claims(), "exp", now+2*3600)), edge.ErrLifetime},
		{"no exp", sign(t, e.key, with(claims(), "exp", nil)), edge.ErrMalformed},
		{"no iat", sign(t, e.key, with(claims(), "iat", nil)), edge.ErrMalformed},
		{"no jti", sign(t, e.key, with(claims(), "jti", nil)), edge.ErrMalformed},
		{"no sub", sign(t, e.key, with(claims(), "sub", nil)), edge.ErrMalformed},
		{"no client_id", sign(t, e.key, with(claims(), "client_id", nil)), edge.ErrMalformed},
		{"exp not a number", sign(t, e.key, with(claims(), "exp", "soon")), edge.ErrMalformed},
		{"aud not a string", sign(t, e.key, with(claims(), "aud", 7)), edge.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if got := edge.ReasonOf(err); got != tc.want.Reason() {
				t.Fatalf("ReasonOf = %q, want %q", got, tc.want.Reason())
			}
		})
	}
	// The allow-list refuses before any key is looked up; none of these
	// rejections depends on a key being fetched.
	mustVerify(t, v, valid)
}

func headers(t testing.TB, kv ...string) jws.Headers {
	t.Helper()
	h := jws.NewHeaders()
	for i := 0; i < len(kv); i += 2 {
		if err := h.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    *edge.Error
		status int
		bearer string
	}{
		{edge.ErrStale, http.StatusServiceUnavailable, ""},
		{edge.ErrInsufficientScope, http.StatusForbidden, "insufficient_scope"},
		{edge.ErrRevoked, http.StatusUnauthorized, "invalid_token"},
		{edge.ErrMalformed, http.StatusUnauthorized, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.err.Reason(), func(t *testing.T) {
			if got := tc.err.StatusCode(); got != tc.status {
				t.Errorf("StatusCode = %d, want %d", got, tc.status)
			}
			if got := tc.err.BearerError(); got != tc.bearer {
				t.Errorf("BearerError = %q, want %q", got, tc.bearer)
			}
		})
	}
	if edge.ReasonOf(nil) != edge.ReasonOK || edge.ReasonOf(context.Canceled) != edge.ReasonError {
		t.Fatal("ReasonOf of nil or a foreign error")
	}
	if errors.Is(edge.ErrRevoked, edge.ErrKeyRevoked) {
		t.Fatal("distinct reasons compare equal")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	good := edge.Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://issuer.test/jwks.json", JetStream: fakeJS{}, MaxTokenLifetime: time.Hour}
	tests := []struct {
		name string
		edit func(*edge.Config)
		opts []edge.Option
		ok   bool
	}{
		{"good", func(*edge.Config) {}, nil, true},
		{"loopback http", func(c *edge.Config) { c.JWKSURL = "http://127.0.0.1:8080/jwks.json" }, nil, true},
		{"localhost http", func(c *edge.Config) { c.JWKSURL = "http://localhost:8080/jwks.json" }, nil, true},
		{"plain http", func(c *edge.Config) { c.JWKSURL = "http://issuer.test/jwks.json" }, nil, false},
		{"relative URL", func(c *edge.Config) { c.JWKSURL = "/jwks.json" }, nil, false},
		{"no issuer", func(c *edge.Config) { c.Issuer = "" }, nil, false},
		{"no audience", func(c *edge.Config) { c.Audience = "" }, nil, false},
		{"no JetStream", func(c *edge.Config) { c.JetStream = nil }, nil, false},
		{"no lifetime", func(c *edge.Config) { c.MaxTokenLifetime = 0 }, nil, false},
		{"short replay window", func(*edge.Config) {}, []edge.Option{edge.WithReplayWindow(time.Minute)}, false},
		{"negative skew", func(*edge.Config) {}, []edge.Option{edge.WithClockSkew(-time.Second)}, false},
		{"zero bound", func(*edge.Config) {}, []edge.Option{edge.WithStalenessBound(0)}, false},
		{"bad prefix", func(*edge.Config) {}, []edge.Option{edge.WithSubjectPrefix("a.b")}, false},
		{"nil client", func(*edge.Config) {}, []edge.Option{edge.WithHTTPClient(nil)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := edge.New(cfg, tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("New = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestStartFailsClosedWithoutJWKS(t *testing.T) {
	e := newEnv(t)
	e.is.setDown(true)
	v, err := edge.New(e.config(t), e.options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := v.Start(ctx); err == nil {
		t.Fatal("Start succeeded without JWKS")
	}
	if err := rejectedWith(v, sign(t, e.key, claims()), edge.ErrStale); err != nil {
		t.Fatal(err)
	}
	// It may be started again once JWKS answers.
	e.is.setDown(false)
	if err := v.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := v.WaitCurrent(ctx); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, sign(t, e.key, claims()))
}

func TestUnknownKIDRefetch(t *testing.T) {
	e := newEnv(t)
	v := e.startEdge(t)
	fresh := newKey(t, "ES256", "es256-b")
	tok := sign(t, fresh, claims())
	if err := rejectedWith(v, tok, edge.ErrUnknownKID); err != nil {
		t.Fatal(err)
	}
	// The issuer publishes the key in JWKS; no event has reached the edge
	// yet, but the unknown kid triggers a refetch that finds it.
	e.is.serve(e.key, fresh)
	eventually(t, func() error {
		_, err := v.Verify(context.Background(), tok)
		return err
	})
	mustVerify(t, v, sign(t, e.key, claims()))
}

func TestUnknownKIDRefetchIsRateLimited(t *testing.T) {
	e := newEnv(t)
	v := e.startEdge(t, edge.WithUnknownKIDInterval(time.Hour))
	before := e.is.fetches.Load()
	stranger := newKey(t, "ES256", "stranger")
	for range 50 {
		if err := rejectedWith(v, sign(t, stranger, claims()), edge.ErrUnknownKID); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.is.fetches.Load() - before; n > 1 {
		t.Fatalf("50 unknown-kid tokens caused %d JWKS fetches, want at most 1", n)
	}
}

// fakeJS satisfies edge.JetStream for configuration tests that never start.
type fakeJS struct{ edge.JetStream }
