package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/valetauth/valet/pkg/store"
)

// The JWS algorithms a signing key may use (RFC 7518 §3.1, RFC 8037 §3.1).
// "none" and every HMAC algorithm are absent on purpose.
const (
	// ES256 is ECDSA on P-256 with SHA-256, the default.
	ES256 = "ES256"
	// EdDSA is Ed25519 (RFC 8037).
	EdDSA = "EdDSA"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 over a 3072-bit key.
	RS256 = "RS256"
)

// RSABits is the size of generated RS256 keys.
const RSABits = 3072

// Algorithms returns the algorithms Config.Algorithm accepts.
func Algorithms() []string { return []string{ES256, EdDSA, RS256} }

func supported(alg string) bool {
	return alg == ES256 || alg == EdDSA || alg == RS256
}

// generate returns a new private key for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, RSABits)
	}
	return nil, fmt.Errorf("keys: unsupported algorithm %q (want one of ES256, EdDSA, RS256)", alg)
}

// matches reports whether priv is the kind of key alg signs with.
func matches(alg string, priv crypto.Signer) bool {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		return alg == ES256 && k.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		return alg == EdDSA
	case *rsa.PrivateKey:
		return alg == RS256 && k.N.BitLen() >= 2048
	}
	return false
}

// publicJWK returns the public JWK of priv with kid (its RFC 7638 SHA-256
// thumbprint, base64url), alg and use=sig set.
func publicJWK(alg string, priv crypto.Signer) (jwk.Key, string, error) {
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, "", fmt.Errorf("keys: public JWK: %w", err)
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, "", err
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg),
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pub.Set(name, v); err != nil {
			return nil, "", fmt.Errorf("keys: public JWK %s: %w", name, err)
		}
	}
	return pub, kid, nil
}

// thumbprint returns k's RFC 7638 JWK thumbprint with SHA-256, unpadded
// base64url: 43 characters of [A-Za-z0-9_-], so one NATS subject token.
func thumbprint(k jwk.Key) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: RFC 7638 thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// newRecord generates a key for alg, seals its private half under the
// ring's active KEK and returns the record to store: state published, not
// yet announced (ActivateAt zero, see announced).
func newRecord(alg string, ring *KEKRing, now time.Time) (store.SigningKey, error) {
	priv, err := generate(alg)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	pub, kid, err := publicJWK(alg, priv)
	if err != nil {
		return store.SigningKey{}, err
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: encode public JWK: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: encode private key: %w", err)
	}
	sealed, kekID, err := ring.Seal(kid, der)
	clear(der)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{
		KID:       kid,
		Alg:       alg,
		PublicJWK: pubJSON,
		Sealed:    sealed,
		KEKID:     kekID,
		State:     store.KeyPublished,
		CreatedAt: now,
	}, nil
}

// parsePublic parses a stored public JWK and checks that it is public, that
// its kid is the record's kid and its own thumbprint, and that its alg is
// the record's. It returns the key and its thumbprint.
func parsePublic(k store.SigningKey) (jwk.Key, string, error) {
	pub, err := jwk.ParseKey(k.PublicJWK)
	if err != nil {
		return nil, "", fmt.Errorf("keys: key %s: public JWK: %w", k.KID, err)
	}
	if isPrivate(pub) {
		return nil, "", fmt.Errorf("keys: key %s: stored public JWK holds a private key", k.KID)
	}
	tp, err := thumbprint(pub)
	if err != nil {
		return nil, "", err
	}
	switch {
	case pub.KeyID() != k.KID:
		return nil, "", fmt.Errorf("keys: key %s: public JWK has kid %q", k.KID, pub.KeyID())
	case tp != k.KID:
		return nil, "", fmt.Errorf("keys: key %s: kid is not the key's RFC 7638 thumbprint", k.KID)
	case pub.Algorithm().String() != k.Alg || !supported(k.Alg):
		return nil, "", fmt.Errorf("keys: key %s: public JWK alg %q, record alg %q", k.KID, pub.Algorithm(), k.Alg)
	}
	return pub, tp, nil
}

// isPrivate reports whether k holds private or symmetric key material.
func isPrivate(k jwk.Key) bool {
	switch k.(type) {
	case jwk.ECDSAPrivateKey, jwk.OKPPrivateKey, jwk.RSAPrivateKey, jwk.SymmetricKey:
		return true
	}
	return false
}

// unseal opens a stored key's private half and checks it is the private key
// of the stored public JWK, for the stored alg.
func unseal(ring *KEKRing, k store.SigningKey, pub jwk.Key) (crypto.Signer, error) {
	if len(k.Sealed) == 0 {
		return nil, fmt.Errorf("keys: key %s has no private key", k.KID)
	}
	der, err := ring.Open(k.KEKID, k.KID, k.Sealed)
	if err != nil {
		return nil, err
	}
	raw, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: decode private key: %w", k.KID, err)
	}
	priv, ok := raw.(crypto.Signer)
	if !ok || !matches(k.Alg, priv) {
		return nil, fmt.Errorf("keys: key %s: private key is not an %s key", k.KID, k.Alg)
	}
	var want crypto.PublicKey
	if err := pub.Raw(&want); err != nil {
		return nil, fmt.Errorf("keys: key %s: public key: %w", k.KID, err)
	}
	if eq, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(want) {
		return nil, errors.New("keys: key " + k.KID + ": private key does not match its public JWK")
	}
	return priv, nil
}
