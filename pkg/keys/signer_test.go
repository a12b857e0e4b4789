package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestES256DeterministicVector: ES256 signatures use RFC 6979 nonces; the
// signature of "sample" under the key of RFC 6979 §A.2.5 is the RFC's, byte
// for byte, so the nonce derivation (not only the curve arithmetic) is the
// standard one.
func TestES256DeterministicVector(t *testing.T) {
	hexInt := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			t.Fatalf("bad hex %q", s)
		}
		return n
	}
	priv := &ecdsa.PrivateKey{
		PublicKey: ecdsa.PublicKey{Curve: elliptic.P256(),
			X: hexInt("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"),
			Y: hexInt("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")},
		D: hexInt("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"),
	}
	s := newSigner("kid", "ES256", time.Time{}, priv)
	sig, err := s.sign([]byte("sample"))
	if err != nil {
		t.Fatal(err)
	}
	want := "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716" +
		"F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"
	if got := strings.ToUpper(hex.EncodeToString(sig)); got != want {
		t.Fatalf("signature\n got %s\nwant %s", got, want)
	}
}

// TestRawECDSASignature: the DER → R || S conversion agrees with
// encoding/asn1 on many signatures (short integers are left-padded) and
// refuses malformed input.
func TestRawECDSASignature(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		d := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		der, err := ecdsa.SignASN1(rand.Reader, priv, d[:])
		if err != nil {
			t.Fatal(err)
		}
		var parsed struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &parsed); err != nil {
			t.Fatal(err)
		}
		raw, err := rawECDSASignature(der, 32)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 64)
		parsed.R.FillBytes(want[:32])
		parsed.S.FillBytes(want[32:])
		if !bytes.Equal(raw, want) {
			t.Fatalf("signature %d: raw %x, want %x", i, raw, want)
		}
		if !ecdsa.Verify(&priv.PublicKey, d[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
			t.Fatalf("signature %d does not verify after conversion", i)
		}
	}
	for name, der := range map[string][]byte{
		"empty":          nil,
		"not a sequence": {0x02, 0x01, 0x01},
		"one integer":    {0x30, 0x03, 0x02, 0x01, 0x01},
		"trailing":       {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00},
		"too long":       append([]byte{0x30, 0x26, 0x02, 0x21, 0x01}, append(bytes.Repeat([]byte{1}, 32), 0x02, 0x01, 0x01)...),
		"zero length":    {0x30, 0x05, 0x02, 0x00, 0x02, 0x01, 0x01},
	} {
		if _, err := rawECDSASignature(der, 32); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
