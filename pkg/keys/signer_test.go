package keys

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// natsToken is what a kid must be to name a NATS subject token (events).
var natsToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// TestAlgorithms: for each algorithm, a bootstrapped replica signs an
// RFC 9068 access token that jwx verifies against the JWKS it serves; the
// kid is the RFC 7638 thumbprint of the served key; the JWKS is public only.
func TestAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		alg string
		kty string
		crv string
	}{
		{ES256, "EC", "P-256"},
		{EdDSA, "OKP", "Ed25519"},
		{RS256, "RSA", ""},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.Algorithm = tc.alg
			m := f.replica(t)
			refresh(t, m)
			s := current(t, m)
			if s.Algorithm() != jwa.SignatureAlgorithm(tc.alg) {
				t.Fatalf("signer alg %s, want %s", s.Algorithm(), tc.alg)
			}
			now := f.clk.Now()
			payload := claims(now, f.cfg.MaxTokenLifetime, "jti-1")
			tok, err := s.Sign(TypeAccessToken, payload)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}

			raw, err := m.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			checkPublicOnly(t, raw)
			set := jwksOf(t, m)
			got, err := jws.Verify(tok, jws.WithKeySet(set))
			if err != nil {
				t.Fatalf("jws.Verify against JWKS: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("verified payload %s, want %s", got, payload)
			}

			msg, err := jws.Parse(tok)
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Signatures()[0].ProtectedHeaders()
			if h.Type() != "at+jwt" || h.KeyID() != s.KID() || h.Algorithm() != jwa.SignatureAlgorithm(tc.alg) {
				t.Fatalf("header typ %q kid %q alg %q", h.Type(), h.KeyID(), h.Algorithm())
			}
			if _, err := jwt.Parse(tok, jwt.WithKeySet(set), jwt.WithIssuer("https://auth.example.com"),
				jwt.WithAudience("https://api.example.com"), jwt.WithClock(jwt.ClockFunc(f.clk.Now))); err != nil {
				t.Fatalf("jwt.Parse: %v", err)
			}

			pub, ok := set.LookupKeyID(s.KID())
			if !ok {
				t.Fatalf("JWKS lacks the signing kid %s", s.KID())
			}
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(tp); s.KID() != want {
				t.Fatalf("kid %s is not the RFC 7638 thumbprint %s", s.KID(), want)
			}
			if !natsToken.MatchString(s.KID()) || len(s.KID()) != 43 {
				t.Fatalf("kid %q is not one NATS subject token of 43 characters", s.KID())
			}
			if pub.KeyType().String() != tc.kty || pub.KeyUsage() != "sig" || pub.Algorithm().String() != tc.alg {
				t.Fatalf("JWK kty %s use %q alg %s", pub.KeyType(), pub.KeyUsage(), pub.Algorithm())
			}
			if tc.crv != "" {
				crv, _ := pub.Get("crv")
				if crv == nil || crv.(interface{ String() string }).String() != tc.crv {
					t.Fatalf("JWK crv %v, want %s", crv, tc.crv)
				}
			}

			// The private JWK signs through jwx too, and verifies alike.
			priv, err := s.JWK()
			if err != nil {
				t.Fatal(err)
			}
			tok2, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(tc.alg), priv))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(tok2, jws.WithKeySet(set)); err != nil {
				t.Fatalf("jwx-signed token does not verify: %v", err)
			}
			// Changing the copy changes nothing in the signer.
			_ = priv.Set(jwk.KeyIDKey, "tampered")
			if s.KID() == "tampered" {
				t.Fatal("JWK returned the signer's own key")
			}
		})
	}
}

// TestThumbprintVector checks the thumbprint function on RFC 7638 §3.1.
func TestThumbprintVector(t *testing.T) {
	const rfc7638 = `{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",` +
		`"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`
	k, err := jwk.ParseKey([]byte(rfc7638))
	if err != nil {
		t.Fatal(err)
	}
	got, err := thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s (RFC 7638 §3.1)", got, want)
	}
}

func TestSignHeader(t *testing.T) {
	f := newFixture(t)
	m := f.replica(t)
	refresh(t, m)
	s := current(t, m)
	for _, tc := range []struct {
		name, typ string
		ok        bool
		header    string
	}{
		{"access token", "at+jwt", true, `{"alg":"ES256","kid":"` + s.KID() + `","typ":"at+jwt"}`},
		{"no typ", "", true, `{"alg":"ES256","kid":"` + s.KID() + `"}`},
		{"quote", `at"jwt`, false, ""},
		{"backslash", `at\jwt`, false, ""},
		{"newline", "at\njwt", false, ""},
		{"non-ASCII", "at+jwté", false, ""},
		{"too long", string(bytes.Repeat([]byte("a"), 65)), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Sign(tc.typ, []byte(`{}`))
			if tc.ok != (err == nil) {
				t.Fatalf("Sign(%q): err = %v, want ok = %v", tc.typ, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			hdr, _, _ := bytes.Cut(tok, []byte("."))
			dec, err := base64.RawURLEncoding.DecodeString(string(hdr))
			if err != nil {
				t.Fatal(err)
			}
			if string(dec) != tc.header || !json.Valid(dec) {
				t.Fatalf("header %s, want %s", dec, tc.header)
			}
		})
	}
}
