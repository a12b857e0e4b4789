package store

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Bounds every backend enforces on registry records.
const (
	maxClientIDLen   = 128
	maxNameLen       = 256
	maxSecrets       = 2
	maxResourceIDLen = 2048
	maxKIDLen        = 128
)

// ValidateClient returns an error when c breaks what stores rely on: a
// client id of 1..128 VSCHARs (RFC 6749 Appendix A.1), a bounded UTF-8 name, a known type, at
// most two secrets each with an id and a hash, and none for a public client
// (RFC 6749 §2.1).
func ValidateClient(c Client) error {
	if c.ID == "" || len(c.ID) > maxClientIDLen || !vschar(c.ID) {
		return fmt.Errorf("client id %.*q must be 1..%d visible ASCII characters (RFC 6749 Appendix A.1)", maxClientIDLen, c.ID, maxClientIDLen)
	}
	if len(c.Name) > maxNameLen || !utf8.ValidString(c.Name) {
		return fmt.Errorf("client %q: name must be UTF-8 of at most %d bytes", c.ID, maxNameLen)
	}
	switch c.Type {
	case Confidential, Public:
	default:
		return fmt.Errorf("client %q: type %q is neither %q nor %q", c.ID, c.Type, Confidential, Public)
	}
	if c.Type == Public && len(c.Secrets) > 0 {
		return fmt.Errorf("client %q: a public client has no secrets (RFC 6749 §2.1)", c.ID)
	}
	if len(c.Secrets) > maxSecrets {
		return fmt.Errorf("client %q: %d secrets, at most %d", c.ID, len(c.Secrets), maxSecrets)
	}
	for i, sec := range c.Secrets {
		if sec.ID == "" || len(sec.Hash) == 0 {
			return fmt.Errorf("client %q: secret %d needs an id and a hash", c.ID, i)
		}
		if i > 0 && sec.ID == c.Secrets[0].ID {
			return fmt.Errorf("client %q: two secrets with id %q", c.ID, sec.ID)
		}
	}
	if c.AccessTokenLifetime < 0 {
		return fmt.Errorf("client %q: negative access token lifetime", c.ID)
	}
	return nil
}

// ValidateResourceServer returns an error unless the id is an absolute URI
// without a fragment (RFC 8707 §2) of bounded printable ASCII and the name is
// bounded.
func ValidateResourceServer(r ResourceServer) error {
	if r.ID == "" || len(r.ID) > maxResourceIDLen || !uriChars(r.ID) {
		return fmt.Errorf("resource server id %.*q must be 1..%d characters of a URI (RFC 3986)", maxClientIDLen, r.ID, maxResourceIDLen)
	}
	u, err := url.Parse(r.ID)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("resource server id %q must be an absolute URI (RFC 8707 §2)", r.ID)
	}
	if strings.Contains(r.ID, "#") {
		return fmt.Errorf("resource server id %q must not have a fragment (RFC 8707 §2)", r.ID)
	}
	if len(r.Name) > maxNameLen || !utf8.ValidString(r.Name) {
		return fmt.Errorf("resource server %q: name must be UTF-8 of at most %d bytes", r.ID, maxNameLen)
	}
	if r.AccessTokenLifetime < 0 {
		return fmt.Errorf("resource server %q: negative access token lifetime", r.ID)
	}
	return nil
}

// vschar reports whether s is only %x20-7E.
func vschar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// uriChars reports whether s is only visible ASCII without space (%x21-7E),
// a superset of what RFC 3986 allows in a URI.
func uriChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidateKey returns an error unless the kid is 1..128 characters of
// [A-Za-z0-9_-] (it becomes a NATS subject token of key events), there is an
// alg, and the state is known.
func ValidateKey(k SigningKey) error {
	if !kidChars(k.KID) {
		return fmt.Errorf("kid %q must be 1..%d characters of [A-Za-z0-9_-]", k.KID, maxKIDLen)
	}
	if k.Alg == "" {
		return fmt.Errorf("signing key %q: no alg", k.KID)
	}
	switch k.State {
	case KeyPublished, KeyActive, KeyRetiring, KeyRetired, KeyRevoked:
	default:
		return fmt.Errorf("signing key %q: unknown state %q", k.KID, k.State)
	}
	return nil
}

func kidChars(s string) bool {
	if s == "" || len(s) > maxKIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
