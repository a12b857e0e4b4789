package clientauth

import (
	"net/url"
	"strings"

	"github.com/valetauth/valet/pkg/oautherr"
)

// MaxParams is the most parameters a Form holds. No OAuth endpoint needs
// more than a dozen; a body with more is refused rather than parsed.
const MaxParams = 32

// Form is a parsed application/x-www-form-urlencoded request body, the
// encoding of every request to the token, introspection and revocation
// endpoints (RFC 6749 §3.2, Appendix B). Unlike url.Values it keeps the
// parameters in order in a fixed array, so parsing allocates only for values
// that need unescaping, and it can tell a parameter sent twice — which RFC
// 6749 §3.1 and §3.2 forbid — from one sent once.
//
// The zero value is an empty form; Parse fills it. A Form is not safe for
// concurrent use.
type Form struct {
	n     int
	pairs [MaxParams]pair
}

type pair struct{ key, value string }

var errMalformedForm = oautherr.ErrInvalidRequest.WithDescription("The request body is not valid form encoding.")

// Parse replaces f's contents with the parameters of body. Empty segments
// ("a=1&&b=2") are skipped and a segment without '=' is a parameter with an
// empty value, as url.ParseQuery does. It returns invalid_request for a
// malformed percent-escape or more than MaxParams parameters.
func (f *Form) Parse(body string) error {
	f.n = 0
	for body != "" {
		var seg string
		seg, body, _ = strings.Cut(body, "&")
		if seg == "" {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		// The unescape errors quote the input, which may be a secret:
		// they are dropped, not kept as causes.
		k, err := unescape(k)
		if err != nil {
			return errMalformedForm
		}
		v, err = unescape(v)
		if err != nil {
			return errMalformedForm
		}
		if f.n == MaxParams {
			return oautherr.ErrInvalidRequest.WithDescription("The request has too many parameters.")
		}
		f.pairs[f.n] = pair{k, v}
		f.n++
	}
	return nil
}

// unescape form-url-decodes s, returning s itself when it holds nothing to
// decode.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// Len returns how many parameters f holds, repeats included.
func (f *Form) Len() int { return f.n }

// Get returns the first value of name, or "" when it is absent. RFC 6749
// §3.1 treats a parameter sent without a value as omitted, so callers test
// for "" rather than presence.
func (f *Form) Get(name string) string {
	for i := range f.n {
		if f.pairs[i].key == name {
			return f.pairs[i].value
		}
	}
	return ""
}

// Count returns how many times name appears.
func (f *Form) Count(name string) int {
	n := 0
	for i := range f.n {
		if f.pairs[i].key == name {
			n++
		}
	}
	return n
}

// Values appends every value of name to dst, in order, and returns it.
func (f *Form) Values(dst []string, name string) []string {
	for i := range f.n {
		if f.pairs[i].key == name {
			dst = append(dst, f.pairs[i].value)
		}
	}
	return dst
}

// Repeated returns the first parameter name that appears more than once and
// is not one of allowed (RFC 8707's resource may repeat), or "" when there
// is none. RFC 6749 §3.2: "Request and response parameters MUST NOT be
// included more than once."
func (f *Form) Repeated(allowed ...string) string {
outer:
	for i := range f.n {
		k := f.pairs[i].key
		for j := i + 1; j < f.n; j++ {
			if f.pairs[j].key != k {
				continue
			}
			for _, a := range allowed {
				if a == k {
					continue outer
				}
			}
			return k
		}
	}
	return ""
}

// Each calls fn for every parameter in order.
func (f *Form) Each(fn func(name, value string)) {
	for i := range f.n {
		fn(f.pairs[i].key, f.pairs[i].value)
	}
}
