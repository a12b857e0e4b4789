package keys

// The issuer's signing hot path, top to bottom: Manager.Current loads one
// atomic pointer and returns an immutable *Signer; Signer.Sign builds the JWS
// compact serialization (RFC 7515 §7.1) in one allocation and signs it with
// the standard library, off any lock. bench_test.go measures it.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// TypeAccessToken is the JWS typ of an RFC 9068 access token (§2.1).
const TypeAccessToken = "at+jwt"

// maxTypLen bounds the typ header a caller may ask for.
const maxTypLen = 64

var b64 = base64.RawURLEncoding

// Signer is one decrypted signing key, as Manager.Current hands it out. It
// is immutable and safe for concurrent use: every Sign works on its own
// buffers, and nothing in it changes after the manager built it.
type Signer struct {
	kid        string
	alg        string
	activateAt time.Time
	priv       crypto.Signer
	// header is the protected header up to the typ value:
	// {"alg":"ES256","kid":"<kid>"
	header string
	sigLen int
}

func newSigner(kid, alg string, activateAt time.Time, priv crypto.Signer) *Signer {
	s := &Signer{
		kid: kid, alg: alg, activateAt: activateAt, priv: priv,
		// kid is [A-Za-z0-9_-] and alg a constant: no JSON escaping needed.
		header: `{"alg":"` + alg + `","kid":"` + kid + `"`,
		sigLen: 64,
	}
	if k, ok := priv.(*rsa.PrivateKey); ok {
		s.sigLen = k.Size()
	}
	return s
}

// KID returns the key id, which is the key's RFC 7638 thumbprint.
func (s *Signer) KID() string { return s.kid }

// Algorithm returns the JWS algorithm the key signs with.
func (s *Signer) Algorithm() jwa.SignatureAlgorithm { return jwa.SignatureAlgorithm(s.alg) }

// ActivateAt returns when the key started (or starts) signing.
func (s *Signer) ActivateAt() time.Time { return s.activateAt }

// JWK returns a fresh copy of the private key as a JWK with kid and alg set,
// for callers that sign through jwx. Sign is faster; the copy is the
// caller's, so changing it changes nothing here. It is private key material:
// never log or store it (MISSION §0.5).
func (s *Signer) JWK() (jwk.Key, error) {
	k, err := jwk.FromRaw(s.priv)
	if err != nil {
		return nil, fmt.Errorf("keys: private JWK of %s: %w", s.kid, err)
	}
	if err := k.Set(jwk.KeyIDKey, s.kid); err != nil {
		return nil, err
	}
	if err := k.Set(jwk.AlgorithmKey, s.Algorithm()); err != nil {
		return nil, err
	}
	return k, nil
}

// Sign returns the JWS compact serialization of payload (typically JWT
// claims as JSON) with the protected header {"alg","kid","typ"}; typ is
// omitted when empty and is TypeAccessToken for RFC 9068 access tokens. It
// returns an error for a typ that is not 1..64 printable ASCII characters
// without '"' or '\', and when the signature fails.
func (s *Signer) Sign(typ string, payload []byte) ([]byte, error) {
	if !validTyp(typ) {
		return nil, errors.New("keys: sign: typ must be up to 64 printable ASCII characters without quotes or backslashes")
	}
	hlen := len(s.header) + 1 // the closing brace
	if typ != "" {
		hlen += len(`,"typ":""`) + len(typ)
	}
	hdr := make([]byte, 0, hlen)
	hdr = append(hdr, s.header...)
	if typ != "" {
		hdr = append(hdr, `,"typ":"`...)
		hdr = append(hdr, typ...)
		hdr = append(hdr, '"')
	}
	hdr = append(hdr, '}')

	he, pe := b64.EncodedLen(len(hdr)), b64.EncodedLen(len(payload))
	out := make([]byte, he+1+pe+1+b64.EncodedLen(s.sigLen))
	b64.Encode(out, hdr)
	out[he] = '.'
	b64.Encode(out[he+1:], payload)
	input := out[:he+1+pe]

	sig, err := s.sign(input)
	if err != nil {
		return nil, fmt.Errorf("keys: sign with %s: %w", s.kid, err)
	}
	out[len(input)] = '.'
	b64.Encode(out[len(input)+1:], sig)
	return out, nil
}

// sign returns the JWS signature of the signing input (RFC 7518 §3.3, §3.4;
// RFC 8037 §3.1).
func (s *Signer) sign(input []byte) ([]byte, error) {
	switch k := s.priv.(type) {
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(input)
		// A nil random source selects deterministic nonces (RFC 6979 with
		// HMAC-SHA-256). The standard library's randomized ("hedged") mode
		// runs its nonce DRBG on SHA-512 and costs a quarter more per token
		// on the hot path; RFC 6979 nonces are as unpredictable to anyone
		// without the key, and never repeat for different inputs. See
		// docs/keys.md ("Signing") for the trade-off.
		der, err := k.Sign(nil, d[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		// JWS wants R and S as 32-byte big-endian integers, concatenated,
		// not the ASN.1 the standard library returns.
		return rawECDSASignature(der, 32)
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input), nil
	case *rsa.PrivateKey:
		d := sha256.Sum256(input)
		return rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
	}
	return nil, fmt.Errorf("unsupported private key %T", s.priv)
}

// rawECDSASignature converts an ASN.1 DER ECDSA signature
// (SEQUENCE { INTEGER r, INTEGER s }) into the fixed-width R || S form of
// RFC 7518 §3.4, each integer left-padded to size bytes.
func rawECDSASignature(der []byte, size int) ([]byte, error) {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&s, asn1.INTEGER) || !seq.Empty() {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	for i, v := range [][]byte{r, s} {
		// DER integers are minimal and positive here: at most one leading
		// zero byte, present only when the top bit is set.
		if len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) == 0 || len(v) > size {
			return nil, errors.New("malformed ECDSA signature integer")
		}
		copy(out[(i+1)*size-len(v):(i+1)*size], v)
	}
	return out, nil
}

func validTyp(typ string) bool {
	if len(typ) > maxTypLen {
		return false
	}
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
