package oautherr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// body is the JSON error response of RFC 6749 §5.2.
type body struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	URI         string `json:"error_uri,omitempty"`
}

// Write sends err as an OAuth 2.0 error response (RFC 6749 §5.2): the JSON
// object {"error", "error_description", "error_uri"} (empty members omitted)
// with Content-Type application/json;charset=UTF-8, Cache-Control: no-store
// and Pragma: no-cache (RFC 6749 §5.1), the error's status, a
// WWW-Authenticate challenge when WithChallenge set one, and Retry-After when
// WithRetryAfter set a delay.
//
// err goes through From first, so an unknown error is sent as server_error
// with no detail, and a nil err (a programming error) as server_error too. The
// description is sanitized with SanitizeDescription; a code or URI outside
// the RFC 6749 character set is replaced by server_error or dropped.
//
// Write is the only function that writes an OAuth error to a client; it must be
// called before anything else is written to w.
func Write(w http.ResponseWriter, err error) {
	e := From(err)
	if e == nil {
		e = ErrServerError
	}
	code, status := e.wire()
	b := body{Error: code, URI: e.wireURI()}
	if code == e.Code {
		b.Description = SanitizeDescription(e.Description)
	} else {
		b.Description = ErrServerError.Description
	}
	// Marshal cannot fail on a struct of strings.
	out, _ := json.Marshal(b)

	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Del("Content-Length")
	if c := e.Challenge(); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	if d := e.RetryAfter(); d > 0 {
		secs := int64(d / time.Second)
		if d%time.Second != 0 {
			secs++
		}
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}
