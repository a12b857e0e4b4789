// Package token creates and parses Valet's opaque credentials: refresh tokens,
// authorization codes and device codes, the family ids that tie a grant's
// credentials together, random ids (jti) and RFC 8628 user codes.
//
// An opaque token is
//
//	<kind> "_" <fid> "." <secret>      e.g. vrt_<22 chars>.<43 chars>
//
// where kind is "vrt", "vac" or "vdc", fid is the grant's family id (16 random
// bytes, base64url) and secret is 32 random bytes (256 bits), base64url. The
// family id travels in clear so that every Redis key of a family can carry the
// hash tag {fid}; only the SHA-256 of the whole token string is ever stored.
// docs/tokens.md describes the formats and the reasoning behind them.
//
// A Token never prints its secret: String, Format, GoString, MarshalText,
// MarshalJSON and LogValue all give the redacted form "vrt_<fid>.***". The
// secret is read only through the Value field, which is what goes to the
// client.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Kind is the type of an opaque token, which is also its prefix.
type Kind string

// The kinds of opaque token.
const (
	// KindRefresh is a refresh token (RFC 6749 §1.5), "vrt_...".
	KindRefresh Kind = "vrt"
	// KindCode is an authorization code (RFC 6749 §4.1.2), "vac_...".
	KindCode Kind = "vac"
	// KindDevice is a device code (RFC 8628 §3.2), "vdc_...".
	KindDevice Kind = "vdc"
)

// Valid reports whether k is one of KindRefresh, KindCode and KindDevice.
func (k Kind) Valid() bool {
	return k == KindRefresh || k == KindCode || k == KindDevice
}

// String returns the kind's prefix, e.g. "vrt".
func (k Kind) String() string { return string(k) }

// Lengths of the parts of an opaque token, in characters.
const (
	// PrefixLen is the length of a kind prefix, "vrt".
	PrefixLen = 3
	// FamilyIDLen is the length of a family id: 16 bytes in unpadded
	// base64url.
	FamilyIDLen = 22
	// IDLen is the length of an id from NewID: 16 bytes in unpadded base64url.
	IDLen = 22
	// SecretLen is the length of a token's secret: 32 bytes in unpadded
	// base64url.
	SecretLen = 43
	// Len is the length of a whole opaque token:
	// prefix, '_', family id, '.', secret.
	Len = PrefixLen + 1 + FamilyIDLen + 1 + SecretLen
)

// Entropy of the random parts, in bytes.
const (
	// FamilyIDBytes is the number of random bytes in a family id or an id.
	FamilyIDBytes = 16
	// SecretBytes is the number of random bytes in a token's secret (256 bits).
	SecretBytes = 32
)

// FamilyClaim is the name of the JWT claim in which an access token carries
// the family id of the grant it was minted from (absent for client
// credentials, which have no family).
const FamilyClaim = "fid"

// offsets of the separators and parts in a token string.
const (
	sepKind   = PrefixLen              // '_'
	fidStart  = PrefixLen + 1          // first character of the family id
	sepFamily = fidStart + FamilyIDLen // '.'
	secStart  = sepFamily + 1          // first character of the secret
	redacted  = ".***"                 // what replaces ".<secret>" in print
)

// ErrMalformed is returned, possibly wrapped, by Parse and ParseKind for any
// string that is not a well-formed opaque token, and by New for an invalid
// kind or family id. Its messages never include the input.
var ErrMalformed = errors.New("token: malformed")

// ErrWrongKind is returned by ParseKind for a well-formed token of another
// kind, e.g. an authorization code presented as a refresh token. It wraps
// ErrMalformed.
var ErrWrongKind = fmt.Errorf("%w: wrong kind", ErrMalformed)

var (
	errLength = fmt.Errorf("%w: wrong length", ErrMalformed)
	errKind   = fmt.Errorf("%w: unknown kind", ErrMalformed)
	errSyntax = fmt.Errorf("%w: bad separator", ErrMalformed)
	errFamily = fmt.Errorf("%w: bad family id", ErrMalformed)
	errSecret = fmt.Errorf("%w: bad secret", ErrMalformed)
)

var b64 = base64.RawURLEncoding

// b64val maps a byte to its base64url value, or -1 when it is not in the
// alphabet.
var b64val = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// canonicalB64 reports whether s is the canonical unpadded base64url encoding
// of some byte string whose encoding has len(s) characters: every character
// is in the alphabet and the unused low bits of the last one are zero (so that
// every value has exactly one accepted spelling). It does not allocate.
func canonicalB64(s string) bool {
	for i := 0; i < len(s); i++ {
		if b64val[s[i]] < 0 {
			return false
		}
	}
	var unused uint
	switch len(s) % 4 {
	case 1:
		return false
	case 2:
		unused = 4
	case 3:
		unused = 2
	}
	return len(s) == 0 || int(b64val[s[len(s)-1]])&(1<<unused-1) == 0
}

// random returns n random bytes from crypto/rand in unpadded base64url.
func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("token: read random: %w", err)
	}
	return b64.EncodeToString(b), nil
}

// NewFamilyID returns a new family id: 16 bytes from crypto/rand in unpadded
// base64url, 22 characters of [A-Za-z0-9_-]. It fails only if the system's
// random source does.
func NewFamilyID() (string, error) { return random(FamilyIDBytes) }

// NewID returns a new random id, e.g. for a jti: 16 bytes from crypto/rand in
// unpadded base64url (22 characters). It fails only if the system's random
// source does.
func NewID() (string, error) { return random(FamilyIDBytes) }

// ValidFamilyID reports whether s is a well-formed family id: exactly 22
// characters, the canonical unpadded base64url encoding of 16 bytes. Such an
// id holds neither '{' nor '}', so "{"+fid+"}" is a valid Redis hash tag.
func ValidFamilyID(s string) bool {
	return len(s) == FamilyIDLen && canonicalB64(s)
}

// Hash is the SHA-256 of a whole token string, prefix and family id included,
// so that a hash binds the kind and the family. It is what stores keep in
// place of the token. Its String form is lowercase hex.
type Hash [sha256.Size]byte

// HashOf returns the SHA-256 of s. For a token, s is the whole string,
// exactly as the client sent it.
func HashOf(s string) Hash {
	if len(s) <= Len {
		// Hash from a stack copy: a []byte(s) conversion would allocate.
		var buf [Len]byte
		n := copy(buf[:], s)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(s))
}

// Bytes returns a copy of the hash's 32 bytes.
func (h Hash) Bytes() []byte { return append([]byte(nil), h[:]...) }

// String returns the hash in lowercase hex, 64 characters.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero value, which is the hash of nothing.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText returns the hash in lowercase hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText sets h from 64 hex digits, as MarshalText writes them.
func (h *Hash) UnmarshalText(text []byte) error {
	if len(text) != hex.EncodedLen(len(h)) {
		return fmt.Errorf("token: hash: want %d hex digits, got %d", hex.EncodedLen(len(h)), len(text))
	}
	var tmp Hash
	if _, err := hex.Decode(tmp[:], text); err != nil {
		return fmt.Errorf("token: hash: %w", err)
	}
	*h = tmp
	return nil
}

// Token is a newly minted opaque token. Value is the whole token string, the
// only field that holds the secret: send it to the client, store Hash.
// Every way of printing or encoding a Token (fmt verbs, JSON, text, slog)
// gives the redacted form "vrt_<fid>.***".
type Token struct {
	// Kind is the token's kind and prefix.
	Kind Kind
	// FID is the family id of the grant the token belongs to.
	FID string
	// Value is the whole token string, secret included. Never log it.
	Value string
	// Hash is the SHA-256 of Value.
	Hash Hash
}

// New returns a new token of the given kind for the family fid, with a
// 32-byte secret from crypto/rand. It fails with ErrMalformed (wrapped) for
// an unknown kind or an invalid family id, or if the random source fails.
func New(kind Kind, fid string) (Token, error) {
	if !kind.Valid() {
		return Token{}, errKind
	}
	if !ValidFamilyID(fid) {
		return Token{}, errFamily
	}
	var secret [SecretBytes]byte
	if _, err := io.ReadFull(rand.Reader, secret[:]); err != nil {
		return Token{}, fmt.Errorf("token: read random: %w", err)
	}
	var buf [Len]byte
	copy(buf[:], kind)
	buf[sepKind] = '_'
	copy(buf[fidStart:], fid)
	buf[sepFamily] = '.'
	b64.Encode(buf[secStart:], secret[:])
	return Token{Kind: kind, FID: fid, Value: string(buf[:]), Hash: sha256.Sum256(buf[:])}, nil
}

// Redacted returns the token with its secret replaced: "vrt_<fid>.***". It is
// safe to log. The zero Token gives "".
func (t Token) Redacted() string {
	if t.Kind == "" && t.FID == "" {
		return ""
	}
	return string(t.Kind) + "_" + t.FID + redacted
}

// String returns the redacted form, never the secret.
func (t Token) String() string { return t.Redacted() }

// GoString returns a Go-syntax representation with the secret redacted, for
// %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("token.Token{Kind:%q, FID:%q, Value:%q, Hash:%q}", t.Kind, t.FID, t.Redacted(), t.Hash.String())
}

// Format implements fmt.Formatter so that no verb (%v, %+v, %s, %q, %x, ...)
// ever prints the secret: %#v prints GoString, %q the quoted redacted form and
// every other verb the redacted form.
func (t Token) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, t.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(t.Redacted()))
	default:
		_, _ = io.WriteString(f, t.Redacted())
	}
}

// MarshalText returns the redacted form, so that text and JSON encoders and
// loggers built on them never write the secret.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.Redacted()), nil }

// MarshalJSON returns the redacted form as a JSON string. To send a token to a
// client, encode its Value.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(t.Redacted())), nil }

// LogValue returns the redacted form for log/slog.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.Redacted()) }

// Parsed is what Parse learns from a token string presented by a client: its
// kind, family id and hash. It holds no secret.
type Parsed struct {
	// Kind is the token's kind.
	Kind Kind
	// FID is the family id carried in the token.
	FID string
	// Hash is the SHA-256 of the whole token string, the key to look it up by.
	Hash Hash
}

// Parse checks that s is a well-formed opaque token and returns its kind,
// family id and hash. It is strict: s must be exactly Len (70) characters, a
// known prefix, '_', a canonical 22-character base64url family id, '.', and a
// canonical 43-character base64url secret; the length is checked before
// anything else. Any other input yields an error wrapping ErrMalformed, whose
// message never includes s. Parse never panics.
//
// A well-formed token is not a valid one: look its Hash up in the store.
func Parse(s string) (Parsed, error) {
	if len(s) != Len {
		return Parsed{}, errLength
	}
	kind := Kind(s[:PrefixLen])
	if !kind.Valid() {
		return Parsed{}, errKind
	}
	if s[sepKind] != '_' || s[sepFamily] != '.' {
		return Parsed{}, errSyntax
	}
	fid := s[fidStart:sepFamily]
	if !canonicalB64(fid) {
		return Parsed{}, errFamily
	}
	if !canonicalB64(s[secStart:]) {
		return Parsed{}, errSecret
	}
	return Parsed{Kind: kind, FID: fid, Hash: HashOf(s)}, nil
}

// ParseKind is Parse, and also requires the token to be of the given kind; a
// well-formed token of another kind yields ErrWrongKind.
func ParseKind(kind Kind, s string) (Parsed, error) {
	p, err := Parse(s)
	if err != nil {
		return Parsed{}, err
	}
	if p.Kind != kind {
		return Parsed{}, ErrWrongKind
	}
	return p, nil
}
