// Package secret generates client secrets and stores them as keyed hashes
// (MISSION invariant 5: no secret is stored in clear).
//
// A client secret is made by the server, never chosen by a person:
//
//	vcs_<43 characters>      "vcs_" + 32 random bytes (256 bits) in unpadded base64url
//
// and stored only as one of two self-describing, versioned formats:
//
//	hmac-sha256$<kek-id>$<base64url(HMAC-SHA256(K, secret))>
//	sha256$<base64url(SHA-256(secret))>
//
// K is derived with HKDF-SHA256 from the key-encryption key named by
// kek-id, with the fixed info string HashInfo, so the same key material that
// seals signing keys (pkg/keys) keys the secret hashes without ever being
// used for two purposes. The KEK id in the stored hash keeps old hashes
// verifiable after a KEK rotation, as long as the old KEK stays in the ring.
// The unkeyed sha256 form exists for declarative bootstrap (a hash computed
// offline by `valet hash-secret` and written into a configuration); it is as
// strong as the keyed one against guessing, since a 256-bit secret cannot be
// guessed, but a stolen store alone then suffices to test candidate secrets.
//
// Why a fast keyed hash and not a memory-hard KDF: a KDF such as Argon2id
// or scrypt makes each guess of a low-entropy, human-chosen password
// expensive. A server-generated 256-bit secret has no guessable structure;
// 2^256 HMAC evaluations are out of reach whatever one costs, so a KDF would
// add only latency (tens of milliseconds and megabytes per request on the
// token endpoint's hot path) and a denial-of-service lever, and no
// security. The HMAC key adds what the KDF would have added for humans: a
// copy of the store alone does not let anyone check a candidate secret.
// docs/clients.md says the same for operators.
//
// Verification is constant-time in the secret: the MAC is computed and
// compared with crypto/subtle whatever the input.
package secret

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Prefix starts every client secret Valet generates, so that a leaked secret
// is recognisable by secret scanners and in a log review.
const Prefix = "vcs_"

// Bytes is the number of random bytes in a generated secret (256 bits).
const Bytes = 32

// Len is the length of a generated secret: the prefix and 32 bytes in
// unpadded base64url.
const Len = len(Prefix) + 43

// HashInfo is the HKDF info string of the secret-hashing key: it binds the
// derived key to this one purpose and format version.
const HashInfo = "valet client secret hmac v1"

// Stored hash formats, the part before the first '$'.
const (
	// FormatHMAC is the keyed format, hmac-sha256$<kek-id>$<mac>.
	FormatHMAC = "hmac-sha256"
	// FormatSHA256 is the unkeyed bootstrap format, sha256$<digest>.
	FormatSHA256 = "sha256"
)

// Errors of Verify. A mismatch is not an error: Verify returns false.
var (
	// ErrUnknownKey: a keyed hash names a key-encryption key the Hasher does
	// not hold (an old KEK removed from the configuration too early).
	ErrUnknownKey = errors.New("secret: hash keyed under an unknown key-encryption key")
	// ErrMalformed: the stored hash is in no known format.
	ErrMalformed = errors.New("secret: malformed stored hash")
)

var (
	b64          = base64.RawURLEncoding
	kekIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	macB64Len    = b64.EncodedLen(sha256.Size)
)

// New returns a new client secret: Prefix followed by 32 bytes from
// crypto/rand in unpadded base64url (Len characters). It fails only if the
// system's random source does.
func New() (string, error) {
	var b [Bytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("secret: read random: %w", err)
	}
	out := make([]byte, len(Prefix)+b64.EncodedLen(Bytes))
	copy(out, Prefix)
	b64.Encode(out[len(Prefix):], b[:])
	return string(out), nil
}

// HashUnkeyed returns the unkeyed stored form of s, sha256$<digest>, for
// declarative bootstrap. Prefer Hasher.Hash wherever the server's keys are at
// hand.
func HashUnkeyed(s string) []byte {
	d := digest(s)
	out := make([]byte, 0, len(FormatSHA256)+1+macB64Len)
	out = append(out, FormatSHA256+"$"...)
	return b64.AppendEncode(out, d[:])
}

// Hasher hashes and verifies client secrets under keys derived from the
// key-encryption keys. It is immutable and safe for concurrent use.
type Hasher struct {
	active string
	keys   map[string]*macKey
}

// macKey is one derived HMAC key as its two padded blocks (RFC 2104), so
// that a MAC of a short secret is two SHA-256 sums over stack buffers and
// allocates nothing.
type macKey struct {
	ipad, opad [sha256.BlockSize]byte
	key        []byte // for inputs too long for the stack buffer
}

func newMACKey(key []byte) *macKey {
	k := &macKey{key: key}
	for i := range sha256.BlockSize {
		var b byte
		if i < len(key) {
			b = key[i]
		}
		k.ipad[i] = b ^ 0x36
		k.opad[i] = b ^ 0x5c
	}
	return k
}

// maxStackInput is the longest input MACed without allocating; longer ones
// (never a generated secret) go through crypto/hmac.
const maxStackInput = 256

// sum writes HMAC-SHA256(key, s) to dst.
func (k *macKey) sum(dst *[sha256.Size]byte, s string) {
	if len(s) > maxStackInput {
		m := hmac.New(sha256.New, k.key)
		_, _ = m.Write([]byte(s))
		copy(dst[:], m.Sum(nil)) // not m.Sum(dst[:0]): dst would escape
		return
	}
	var inner [sha256.BlockSize + maxStackInput]byte
	copy(inner[:], k.ipad[:])
	n := copy(inner[sha256.BlockSize:], s)
	ih := sha256.Sum256(inner[:sha256.BlockSize+n])
	var outer [sha256.BlockSize + sha256.Size]byte
	copy(outer[:], k.opad[:])
	copy(outer[sha256.BlockSize:], ih[:])
	*dst = sha256.Sum256(outer[:])
}

// NewHasher returns a Hasher keyed by the key-encryption keys (id → 32
// bytes, as resolved from config keys.encryption_keys) that hashes under
// active. Each HMAC key is HKDF-SHA256(kek, no salt, HashInfo). It returns an
// error for an empty ring, an id that is not 1..64 of [A-Za-z0-9._-], a key
// that is not 32 bytes, or an active id not in the ring; errors never quote
// key material.
func NewHasher(active string, keks map[string][]byte) (*Hasher, error) {
	if len(keks) == 0 {
		return nil, errors.New("secret: a key-encryption key is required to key secret hashes")
	}
	h := &Hasher{active: active, keys: make(map[string]*macKey, len(keks))}
	for id, kek := range keks {
		if !kekIDPattern.MatchString(id) {
			return nil, errors.New("secret: a key-encryption key id must be 1 to 64 letters, digits, '.', '_' or '-'")
		}
		if len(kek) != 32 {
			return nil, fmt.Errorf("secret: key-encryption key %q is %d bytes, want 32", id, len(kek))
		}
		derived, err := hkdf.Key(sha256.New, kek, nil, HashInfo, sha256.Size)
		if err != nil {
			return nil, fmt.Errorf("secret: derive key from %q: %w", id, err)
		}
		h.keys[id] = newMACKey(derived)
	}
	if _, ok := h.keys[active]; !ok {
		return nil, fmt.Errorf("secret: active key-encryption key %q is not in the ring", active)
	}
	return h, nil
}

// ActiveID returns the id of the key-encryption key Hash uses.
func (h *Hasher) ActiveID() string { return h.active }

// Hash returns the keyed stored form of s under the active key:
// hmac-sha256$<kek-id>$<mac>.
func (h *Hasher) Hash(s string) []byte {
	var mac [sha256.Size]byte
	h.keys[h.active].sum(&mac, s)
	out := make([]byte, 0, len(FormatHMAC)+2+len(h.active)+macB64Len)
	out = append(out, FormatHMAC+"$"...)
	out = append(out, h.active...)
	out = append(out, '$')
	return b64.AppendEncode(out, mac[:])
}

// Verify reports whether s is the secret whose stored form is stored (from
// Hash or HashUnkeyed). The comparison is constant-time in s and in the
// stored value. It returns ErrUnknownKey for a keyed hash under a KEK this
// Hasher lacks and ErrMalformed for an unknown format; both with false.
// Verify allocates nothing.
func (h *Hasher) Verify(stored []byte, s string) (bool, error) {
	format, rest, ok := cut(stored)
	if !ok {
		return false, ErrMalformed
	}
	var want [sha256.Size]byte
	switch string(format) { // no allocation: the compiler compares in place
	case FormatHMAC:
		id, enc, ok := cut(rest)
		if !ok {
			return false, ErrMalformed
		}
		k := h.keys[string(id)]
		if k == nil {
			return false, ErrUnknownKey
		}
		if !decodeMAC(&want, enc) {
			return false, ErrMalformed
		}
		var got [sha256.Size]byte
		k.sum(&got, s)
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1, nil
	case FormatSHA256:
		if !decodeMAC(&want, rest) {
			return false, ErrMalformed
		}
		got := digest(s)
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1, nil
	}
	return false, ErrMalformed
}

// Dummy spends on s what Verify spends on a real keyed hash, and returns
// nothing: an authenticator calls it for an unknown client, so that response
// times do not tell which client ids exist.
func (h *Hasher) Dummy(s string) {
	var got [sha256.Size]byte
	h.keys[h.active].sum(&got, s)
	_ = subtle.ConstantTimeCompare(got[:], got[:])
}

// ValidFormat reports whether stored is in one of the known formats, for
// stores and admin tools that check a hash before storing it.
func ValidFormat(stored []byte) bool {
	format, rest, ok := cut(stored)
	if !ok {
		return false
	}
	var d [sha256.Size]byte
	switch string(format) {
	case FormatHMAC:
		id, enc, ok := cut(rest)
		return ok && kekIDPattern.Match(id) && decodeMAC(&d, enc)
	case FormatSHA256:
		return decodeMAC(&d, rest)
	}
	return false
}

// Looks reports whether s has the shape of a generated secret (Prefix and
// 43 base64url characters), e.g. for a secret scanner or a log filter.
func Looks(s string) bool {
	if len(s) != Len || !strings.HasPrefix(s, Prefix) {
		return false
	}
	var b [Bytes]byte
	n, err := b64.Decode(b[:], []byte(s[len(Prefix):]))
	return err == nil && n == Bytes
}

// digest returns SHA-256(s), without allocating for inputs up to
// maxStackInput bytes.
func digest(s string) [sha256.Size]byte {
	if len(s) > maxStackInput {
		return sha256.Sum256([]byte(s))
	}
	var buf [maxStackInput]byte
	n := copy(buf[:], s)
	return sha256.Sum256(buf[:n])
}

// cut splits b at its first '$'.
func cut(b []byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == '$' {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

// decodeMAC decodes a 32-byte value in unpadded base64url into dst.
func decodeMAC(dst *[sha256.Size]byte, enc []byte) bool {
	if len(enc) != macB64Len {
		return false
	}
	var buf [sha256.Size + 2]byte
	n, err := b64.Decode(buf[:], enc)
	if err != nil || n != sha256.Size {
		return false
	}
	copy(dst[:], buf[:n])
	return true
}
