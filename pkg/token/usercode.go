package token

import (
	"crypto/rand"
	"fmt"
	"io"
)

// UserCodeAlphabet is the alphabet of device-flow user codes: 20 upper-case
// consonants with no vowels (so no words are spelled) and none of the letters
// easily confused with digits or each other, as RFC 8628 §6.1 recommends.
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// UserCodeChars is the number of alphabet characters in a user code: 8, about
// 34.5 bits (20^8 ≈ 2^34.6). That is enough only together with the short life
// of a device code and rate limiting of the verification page (RFC 8628 §5.1).
const UserCodeChars = 8

// NewUserCode returns a new RFC 8628 user code: 8 characters drawn uniformly
// from UserCodeAlphabet with crypto/rand, displayed as "XXXX-XXXX". This
// display form is also the canonical form NormalizeUserCode returns. It fails
// only if the system's random source does.
func NewUserCode() (string, error) {
	var out [UserCodeChars + 1]byte
	var buf [2 * UserCodeChars]byte
	n := 0
	for n < UserCodeChars {
		if _, err := io.ReadFull(rand.Reader, buf[:]); err != nil {
			return "", fmt.Errorf("token: read random: %w", err)
		}
		for _, b := range buf {
			// Reject bytes >= 240 so that b % 20 is uniform.
			if int(b) >= 256/len(UserCodeAlphabet)*len(UserCodeAlphabet) {
				continue
			}
			i := n
			if n >= UserCodeChars/2 {
				i++
			}
			out[i] = UserCodeAlphabet[int(b)%len(UserCodeAlphabet)]
			if n++; n == UserCodeChars {
				break
			}
		}
	}
	out[UserCodeChars/2] = '-'
	return string(out[:]), nil
}

// maxUserCodeInput caps the input NormalizeUserCode looks at.
const maxUserCodeInput = 64

// NormalizeUserCode turns a user code as a person typed it into the canonical
// "XXXX-XXXX" form NewUserCode returns: letters are matched without regard to
// case, and '-' and spaces are ignored wherever they are. It reports false for
// input longer than 64 bytes or that is not 8 characters of UserCodeAlphabet
// once those are removed.
func NormalizeUserCode(in string) (string, bool) {
	if len(in) > maxUserCodeInput {
		return "", false
	}
	var out [UserCodeChars + 1]byte
	n := 0
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c == '-' || c == ' ' {
			continue
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if !inUserCodeAlphabet(c) || n == UserCodeChars {
			return "", false
		}
		j := n
		if n >= UserCodeChars/2 {
			j++
		}
		out[j] = c
		n++
	}
	if n != UserCodeChars {
		return "", false
	}
	out[UserCodeChars/2] = '-'
	return string(out[:]), true
}

// inUserCodeAlphabet reports whether c is one of UserCodeAlphabet.
func inUserCodeAlphabet(c byte) bool {
	for i := 0; i < len(UserCodeAlphabet); i++ {
		if UserCodeAlphabet[i] == c {
			return true
		}
	}
	return false
}
