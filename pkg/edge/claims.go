package edge

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// Claims are the RFC 9068 claims of a verified access token (docs/tokens.md).
// The slices belong to the caller: Verify returns fresh copies.
type Claims struct {
	// Issuer is iss, equal to the configured issuer.
	Issuer string
	// Subject is sub: the resource owner, or the client id for a
	// client-credentials token.
	Subject string
	// Audience is aud; it contains the configured audience.
	Audience []string
	// ClientID is client_id, the client the token was issued to.
	ClientID string
	// Scopes is the space-separated scope claim, split.
	Scopes []string
	// JTI is the token's unique id.
	JTI string
	// FID is the refresh family id (fid claim), or "" for a token that
	// belongs to no family (client credentials).
	FID string
	// KeyID is the kid of the key that signed the token.
	KeyID string
	// IssuedAt is iat.
	IssuedAt time.Time
	// ExpiresAt is exp.
	ExpiresAt time.Time
	// NotBefore is nbf, or the zero time when the token has none.
	NotBefore time.Time
}

// HasScope reports whether scope is one of c.Scopes.
func (c Claims) HasScope(scope string) bool {
	for _, s := range c.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// clone returns c with its slices copied into one new backing array, so a
// caller editing them cannot touch the cached original.
func (c Claims) clone() Claims {
	n := len(c.Audience) + len(c.Scopes)
	if n == 0 {
		return c
	}
	buf := make([]string, n)
	a := copy(buf, c.Audience)
	copy(buf[a:], c.Scopes)
	if c.Audience != nil {
		c.Audience = buf[:a:a]
	}
	if c.Scopes != nil {
		c.Scopes = buf[a:n:n]
	}
	return c
}

// header is the JOSE header of a compact JWS, as far as the edge reads it.
// Key-carrying headers (jwk, jku, x5u, x5c) are ignored: keys come from JWKS
// only.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
	// Crit is refused when present: the edge understands no extension
	// (RFC 7515 §4.1.11).
	Crit json.RawMessage `json:"crit"`
}

// acceptedType reports whether typ names an RFC 9068 access token: "at+jwt"
// or its full media type, compared case-insensitively (RFC 9068 §2.1,
// RFC 7515 §4.1.9).
func acceptedType(typ string) bool {
	return strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt")
}

// wireClaims is the JSON payload of an access token. Numeric dates are
// float64 because RFC 7519 allows fractions; 0 means absent.
type wireClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      float64  `json:"exp"`
	Iat      float64  `json:"iat"`
	Nbf      float64  `json:"nbf"`
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	FID      string   `json:"fid"`
}

// audience is aud: one string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// maxNumericDate is the last second of year 9999.
const maxNumericDate = 253402300799

// seconds converts a NumericDate to whole seconds (rounded down), or returns
// false when it is absent or outside 1970..9999.
func seconds(f float64) (int64, bool) {
	if !(f > 0 && f <= maxNumericDate) {
		return 0, false
	}
	return int64(math.Floor(f)), true
}

var (
	errMissingClaim = errors.New("a required RFC 9068 claim (iss, sub, aud, exp, iat, jti, client_id) is missing or invalid")
	errBadNBF       = errors.New("nbf is not a valid NumericDate")
)

// parsedClaims turns the wire form into Claims with their times in seconds.
// It returns an error, never containing claim values, for a payload that
// lacks what RFC 9068 §2.2 requires.
func parsedClaims(w *wireClaims, kid string) (c Claims, iat, exp, nbf int64, err error) {
	var ok bool
	if exp, ok = seconds(w.Exp); !ok {
		return c, 0, 0, 0, errMissingClaim
	}
	if iat, ok = seconds(w.Iat); !ok {
		return c, 0, 0, 0, errMissingClaim
	}
	if w.Nbf != 0 {
		if nbf, ok = seconds(w.Nbf); !ok {
			return c, 0, 0, 0, errBadNBF
		}
	}
	if w.Iss == "" || w.Sub == "" || len(w.Aud) == 0 || w.JTI == "" || w.ClientID == "" {
		return c, 0, 0, 0, errMissingClaim
	}
	c = Claims{
		Issuer:    w.Iss,
		Subject:   w.Sub,
		Audience:  []string(w.Aud),
		ClientID:  w.ClientID,
		Scopes:    strings.Fields(w.Scope),
		JTI:       w.JTI,
		FID:       w.FID,
		KeyID:     kid,
		IssuedAt:  time.Unix(iat, 0),
		ExpiresAt: time.Unix(exp, 0),
	}
	if nbf != 0 {
		c.NotBefore = time.Unix(nbf, 0)
	}
	return c, iat, exp, nbf, nil
}
