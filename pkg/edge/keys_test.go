package edge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"sort"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// jwkOf returns the JWK of raw with the given parameters set.
func jwkOf(t *testing.T, raw any, params map[string]any) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatalf("jwk.FromRaw(%T): %v", raw, err)
	}
	for name, v := range params {
		if err := k.Set(name, v); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
	}
	return k
}

func TestParseJWKSKeepsOnlyUsableSigningKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	es256, eddsa, rs256 := jwa.ES256, jwa.EdDSA, jwa.RS256

	keys := []jwk.Key{
		jwkOf(t, &ec.PublicKey, map[string]any{"kid": "ec", "alg": es256, "use": "sig"}),
		jwkOf(t, edPub, map[string]any{"kid": "ed", "alg": eddsa}),
		jwkOf(t, &rs.PublicKey, map[string]any{"kid": "rs", "alg": rs256}),
		// Refused:
		jwkOf(t, &ec.PublicKey, map[string]any{"alg": es256}),                             // no kid
		jwkOf(t, &ec.PublicKey, map[string]any{"kid": "no-alg"}),                          // no alg to bind
		jwkOf(t, &ec.PublicKey, map[string]any{"kid": "enc", "alg": es256, "use": "enc"}), // not for signatures
		jwkOf(t, &rs.PublicKey, map[string]any{"kid": "rsa-as-ec", "alg": es256}),         // alg does not fit the key
		jwkOf(t, &ec.PublicKey, map[string]any{"kid": "hs", "alg": jwa.HS256}),            // alg not allowed
		jwkOf(t, &ec384.PublicKey, map[string]any{"kid": "p384", "alg": es256}),           // wrong curve
		jwkOf(t, &weak.PublicKey, map[string]any{"kid": "weak", "alg": rs256}),            // too short
		jwkOf(t, ec, map[string]any{"kid": "private", "alg": es256}),                      // private material
		jwkOf(t, edPriv, map[string]any{"kid": "private-ed", "alg": eddsa}),               // private material
		jwkOf(t, []byte("secret"), map[string]any{"kid": "oct", "alg": jwa.HS256}),        // symmetric
		jwkOf(t, &ec.PublicKey, map[string]any{"kid": "dup", "alg": es256}),               // ambiguous kid
		jwkOf(t, edPub, map[string]any{"kid": "dup", "alg": eddsa}),
	}
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	got, problems, err := parseJWKS(body)
	if err != nil {
		t.Fatalf("parseJWKS: %v", err)
	}
	var kids []string
	for kid := range got {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	if want := []string{"ec", "ed", "rs"}; !equal(kids, want) {
		t.Fatalf("usable kids %v, want %v", kids, want)
	}
	if len(problems) != 11 {
		t.Fatalf("%d problems reported, want 11: %v", len(problems), problems)
	}
	tp, _ := keys[0].Thumbprint(crypto.SHA256)
	if got["ec"].thumbprint != base64.RawURLEncoding.EncodeToString(tp) || got["ec"].alg != "ES256" {
		t.Fatalf("ec key: %+v", got["ec"])
	}

	if _, _, err := parseJWKS([]byte("not json")); err == nil {
		t.Fatal("parseJWKS accepted garbage")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
