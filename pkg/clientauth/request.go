package clientauth

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/valetauth/valet/pkg/oautherr"
)

// FormContentType is the media type every OAuth endpoint request body must
// have (RFC 6749 §3.2, §4.4.2; RFC 7009 §2.1; RFC 7662 §2.1).
const FormContentType = "application/x-www-form-urlencoded"

// DefaultMaxBody is the body limit ReadForm applies when given none.
const DefaultMaxBody = 64 << 10

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ReadForm checks that r is an OAuth endpoint request — POST, Content-Type
// application/x-www-form-urlencoded (parameters such as charset allowed),
// no parameters in the URI — and parses its body into f. Every refusal is
// invalid_request (RFC 6749 §3.2: "The client MUST use the HTTP POST method";
// §2.3.1: client credentials "MUST NOT be included in the request URI");
// a body over maxBytes is refused too. ReadForm never answers anything but
// invalid_request: bad input is never a 5xx.
func ReadForm(r *http.Request, f *Form, maxBytes int64) error {
	if r.Method != http.MethodPost {
		return oautherr.ErrInvalidRequest.WithDescription("The request must use the POST method.")
	}
	if !isForm(r.Header.Get("Content-Type")) {
		return oautherr.ErrInvalidRequest.WithDescription("The request body must be application/x-www-form-urlencoded.")
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		return oautherr.ErrInvalidRequest.WithDescription("Parameters must be sent in the request body, not in the URI.")
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyPool.Put(buf)
		}
	}()
	if r.Body != nil {
		n, err := buf.ReadFrom(io.LimitReader(r.Body, maxBytes+1))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge) || n > maxBytes:
			return oautherr.ErrInvalidRequest.WithDescription("The request body is too large.")
		case err != nil:
			return oautherr.ErrInvalidRequest.WithDescription("The request body could not be read.").WithCause(err)
		}
	}
	// One copy: the form's values are substrings of it and outlive buf.
	return f.Parse(buf.String())
}

// isForm reports whether a Content-Type header value is
// application/x-www-form-urlencoded, with or without parameters.
func isForm(ct string) bool {
	if ct == FormContentType {
		return true
	}
	if !strings.HasPrefix(strings.ToLower(ct), FormContentType) {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == FormContentType
}
