// Package oautherr holds the one protocol error type every Valet endpoint
// returns: an OAuth 2.0 error (RFC 6749 §4.1.2.1, §5.2 and the extensions in
// RFC 6750, RFC 7009, RFC 8628 and RFC 8707) with its registered code, a
// description safe to show a client, an HTTP status and a private cause that
// only ever reaches logs.
//
// Sentinels are package variables. Modifiers (WithDescription, WithCause, ...)
// return copies and never change the sentinel, and errors compare by code, so
//
//	return oautherr.ErrInvalidGrant.WithDescription("The code has expired.").WithCause(err)
//
// still satisfies errors.Is(err, oautherr.ErrInvalidGrant). From turns any
// error into an *Error, mapping everything it does not know to server_error
// without leaking detail, and Write is the single place that puts an error on
// the wire with the no-store headers RFC 6749 §5.1 requires.
package oautherr

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Realm is the realm parameter of every WWW-Authenticate challenge Valet sends
// (RFC 7235 §2.2, RFC 6750 §3).
const Realm = "valet"

// Error is an OAuth 2.0 error response. Code, Description and URI are what the
// client sees (the error, error_description and error_uri members of RFC 6749
// §5.2); Status is the HTTP status Write uses. The cause, Retry-After delay
// and WWW-Authenticate scheme are private and set only through the With...
// modifiers, each of which returns a modified copy.
//
// A *Error is never mutated after it is shared: treat the fields as read-only
// and use the modifiers.
type Error struct {
	// Code is the registered error code, e.g. "invalid_grant".
	Code string
	// Description is the human-readable error_description. It is shown to
	// clients: never put secrets, internal identifiers or a cause's text in it.
	Description string
	// Status is the HTTP status code of the response.
	Status int
	// URI is the optional error_uri.
	URI string

	cause      error
	retryAfter time.Duration
	authScheme string
}

// Sentinels, one per registered error code Valet sends, each with the status
// its RFC gives it. Compare with errors.Is; derive responses with the
// modifiers.
var (
	// ErrInvalidRequest is invalid_request (RFC 6749 §5.2, RFC 6750 §3.1): 400.
	ErrInvalidRequest = &Error{Code: "invalid_request", Status: 400,
		Description: "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."}

	// ErrInvalidClient is invalid_client (RFC 6749 §5.2): 401. When the client
	// authenticated with the Authorization header, add the matching challenge
	// with WithChallenge("Basic"); RFC 6749 §5.2 requires it only then.
	ErrInvalidClient = &Error{Code: "invalid_client", Status: 401,
		Description: "Client authentication failed."}

	// ErrInvalidGrant is invalid_grant (RFC 6749 §5.2): 400. It covers invalid,
	// expired, revoked or reused codes, refresh tokens and device codes, and a
	// redirect URI or PKCE verifier that does not match.
	ErrInvalidGrant = &Error{Code: "invalid_grant", Status: 400,
		Description: "The provided authorization grant or refresh token is invalid, expired, revoked, or was issued to another client."}

	// ErrUnauthorizedClient is unauthorized_client (RFC 6749 §4.1.2.1, §5.2): 400.
	ErrUnauthorizedClient = &Error{Code: "unauthorized_client", Status: 400,
		Description: "The client is not authorized to use this authorization grant type."}

	// ErrUnsupportedGrantType is unsupported_grant_type (RFC 6749 §5.2): 400.
	ErrUnsupportedGrantType = &Error{Code: "unsupported_grant_type", Status: 400,
		Description: "The authorization grant type is not supported by the authorization server."}

	// ErrInvalidScope is invalid_scope (RFC 6749 §4.1.2.1, §5.2): 400.
	ErrInvalidScope = &Error{Code: "invalid_scope", Status: 400,
		Description: "The requested scope is invalid, unknown, or malformed."}

	// ErrInvalidTarget is invalid_target (RFC 8707 §2): 400.
	ErrInvalidTarget = &Error{Code: "invalid_target", Status: 400,
		Description: "The requested resource is invalid, unknown, or malformed."}

	// ErrUnsupportedResponseType is unsupported_response_type (RFC 6749
	// §4.1.2.1): 400. At /authorize it is sent by redirect once the redirect
	// URI is known to be valid.
	ErrUnsupportedResponseType = &Error{Code: "unsupported_response_type", Status: 400,
		Description: "The authorization server does not support obtaining an authorization code using this method."}

	// ErrAccessDenied is access_denied: 403. At /authorize (RFC 6749 §4.1.2.1)
	// it is sent by redirect, so the status is not seen. At the device token
	// endpoint (RFC 8628 §3.5) it is a token error response and must be sent
	// with WithStatus(400).
	ErrAccessDenied = &Error{Code: "access_denied", Status: 403,
		Description: "The resource owner or authorization server denied the request."}

	// ErrServerError is server_error (RFC 6749 §4.1.2.1): 500. From maps every
	// error it does not recognise to it.
	ErrServerError = &Error{Code: "server_error", Status: 500,
		Description: "The authorization server encountered an unexpected condition that prevented it from fulfilling the request."}

	// ErrTemporarilyUnavailable is temporarily_unavailable (RFC 6749
	// §4.1.2.1): 503. Use it when a dependency (Redis, NATS) is unavailable,
	// with WithRetryAfter where a delay is known.
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Status: 503,
		Description: "The authorization server is currently unable to handle the request due to a temporary overloading or maintenance."}

	// ErrAuthorizationPending is authorization_pending (RFC 8628 §3.5): 400.
	ErrAuthorizationPending = &Error{Code: "authorization_pending", Status: 400,
		Description: "The authorization request is still pending as the end user has not yet completed the user-interaction steps."}

	// ErrSlowDown is slow_down (RFC 8628 §3.5): 400. The client must add 5
	// seconds to its polling interval.
	ErrSlowDown = &Error{Code: "slow_down", Status: 400,
		Description: "The authorization request is still pending and polling should be slowed down."}

	// ErrExpiredToken is expired_token (RFC 8628 §3.5): 400; the device code
	// has expired.
	ErrExpiredToken = &Error{Code: "expired_token", Status: 400,
		Description: "The device code has expired."}

	// ErrUnsupportedTokenType is unsupported_token_type (RFC 7009 §2.2.1): 400.
	ErrUnsupportedTokenType = &Error{Code: "unsupported_token_type", Status: 400,
		Description: "The authorization server does not support the revocation of the presented token type."}

	// ErrInvalidToken is invalid_token (RFC 6750 §3.1): 401, sent by resource
	// servers with WithChallenge("Bearer").
	ErrInvalidToken = &Error{Code: "invalid_token", Status: 401,
		Description: "The access token provided is expired, revoked, malformed, or invalid for other reasons."}

	// ErrInsufficientScope is insufficient_scope (RFC 6750 §3.1): 403, sent by
	// resource servers with WithChallenge("Bearer").
	ErrInsufficientScope = &Error{Code: "insufficient_scope", Status: 403,
		Description: "The request requires higher privileges than provided by the access token."}
)

// sentinels lists every sentinel, for the default status of a code.
var sentinels = []*Error{
	ErrInvalidRequest, ErrInvalidClient, ErrInvalidGrant, ErrUnauthorizedClient,
	ErrUnsupportedGrantType, ErrInvalidScope, ErrInvalidTarget,
	ErrUnsupportedResponseType, ErrAccessDenied, ErrServerError,
	ErrTemporarilyUnavailable, ErrAuthorizationPending, ErrSlowDown,
	ErrExpiredToken, ErrUnsupportedTokenType, ErrInvalidToken,
	ErrInsufficientScope,
}

// Error returns "code: description", followed by the cause's text when there is
// one. It is meant for logs: the cause may carry internal detail, so never send
// Error() to a client; Write sends only Code, Description and URI.
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.cause != nil {
		b.WriteString(" (cause: ")
		b.WriteString(e.cause.Error())
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the private cause, or nil, so that errors.Is and errors.As
// see through an *Error to what caused it.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.cause
}

// Is reports whether target is an *Error with the same Code. It makes
// errors.Is(err, ErrInvalidGrant) true for every copy derived from the
// sentinel, whatever its description, status or cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || e == nil || t == nil {
		return false
	}
	return e.Code == t.Code
}

// Cause returns the private cause set by WithCause or From, or nil.
func (e *Error) Cause() error { return e.Unwrap() }

// RetryAfter returns the delay set by WithRetryAfter, or 0 when none is set.
func (e *Error) RetryAfter() time.Duration {
	if e == nil {
		return 0
	}
	return e.retryAfter
}

// AuthScheme returns the authentication scheme set by WithChallenge, or "" when
// the error carries no challenge.
func (e *Error) AuthScheme() string {
	if e == nil {
		return ""
	}
	return e.authScheme
}

// clone returns a shallow copy of e; a nil e yields a copy of ErrServerError so
// that modifiers never panic.
func (e *Error) clone() *Error {
	if e == nil {
		e = ErrServerError
	}
	c := *e
	return &c
}

// WithDescription returns a copy of e whose Description is format formatted
// with args, as fmt.Sprintf does (go vet checks the calls). Pass text that is
// not a constant as WithDescription("%s", text). The description is shown to
// the client: never format secrets, token values or a cause into it.
func (e *Error) WithDescription(format string, args ...any) *Error {
	c := e.clone()
	if len(args) == 0 && !strings.Contains(format, "%") {
		c.Description = format
	} else {
		c.Description = fmt.Sprintf(format, args...)
	}
	return c
}

// WithCause returns a copy of e whose private cause is err. The cause reaches
// logs through Error and errors.Unwrap, never the client.
func (e *Error) WithCause(err error) *Error {
	c := e.clone()
	c.cause = err
	return c
}

// WithURI returns a copy of e whose URI (error_uri) is uri.
func (e *Error) WithURI(uri string) *Error {
	c := e.clone()
	c.URI = uri
	return c
}

// WithStatus returns a copy of e whose HTTP status is code, e.g. access_denied
// at the device token endpoint, which RFC 8628 §3.5 answers with 400.
func (e *Error) WithStatus(code int) *Error {
	c := e.clone()
	c.Status = code
	return c
}

// WithRetryAfter returns a copy of e that Write sends with a Retry-After header
// of d, rounded up to whole seconds (RFC 9110 §10.2.3). A d of zero or less
// removes it.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	c := e.clone()
	c.retryAfter = max(d, 0)
	return c
}

// WithChallenge returns a copy of e that Write sends with a WWW-Authenticate
// challenge of the given scheme, e.g. "Basic" for invalid_client when the
// client used HTTP Basic authentication (RFC 6749 §5.2), or "Bearer" for
// invalid_token and insufficient_scope (RFC 6750 §3). The challenge carries
// realm, error, error_description and error_uri. An empty or syntactically
// invalid scheme removes the challenge.
func (e *Error) WithChallenge(scheme string) *Error {
	c := e.clone()
	if isToken(scheme) {
		c.authScheme = scheme
	} else {
		c.authScheme = ""
	}
	return c
}

// Challenge returns the WWW-Authenticate header value Write sends for e, for
// example `Bearer realm="valet", error="invalid_token", error_description="..."`,
// or "" when e carries no challenge.
func (e *Error) Challenge() string {
	if e == nil || e.authScheme == "" {
		return ""
	}
	code, _ := e.wire()
	var b strings.Builder
	b.WriteString(e.authScheme)
	b.WriteString(` realm="` + Realm + `", error="`)
	b.WriteString(code)
	b.WriteByte('"')
	if d := SanitizeDescription(e.Description); d != "" {
		b.WriteString(`, error_description="`)
		b.WriteString(d)
		b.WriteByte('"')
	}
	if u := e.wireURI(); u != "" {
		b.WriteString(`, error_uri="`)
		b.WriteString(u)
		b.WriteByte('"')
	}
	return b.String()
}

// RedirectQuery returns the query parameters of an authorization error
// response sent by redirect (RFC 6749 §4.1.2.1): error, error_description and
// error_uri when set, state when the request carried one, and iss (RFC 9207
// §2) when iss is not empty. The caller adds them to a redirect URI it has
// already validated; an unvalidated redirect URI must get a direct response
// from Write instead.
func (e *Error) RedirectQuery(state, iss string) url.Values {
	code, _ := e.wire()
	v := url.Values{"error": {code}}
	if e != nil {
		if d := SanitizeDescription(e.Description); d != "" {
			v.Set("error_description", d)
		}
		if u := e.wireURI(); u != "" {
			v.Set("error_uri", u)
		}
	}
	if state != "" {
		v.Set("state", state)
	}
	if iss != "" {
		v.Set("iss", iss)
	}
	return v
}

// From returns err as an *Error:
//   - nil stays nil;
//   - an *Error anywhere in err's chain (errors.As) is returned as it is;
//   - context.DeadlineExceeded and context.Canceled become
//     ErrTemporarilyUnavailable (503) with err as the cause: a dependency that
//     did not answer in time is unavailability, never a wrong answer
//     (MISSION invariant 6), and when the client itself went away nobody reads
//     the response. Callers that count client disconnects separately can still
//     test errors.Is(e, context.Canceled) through the cause;
//   - anything else becomes ErrServerError (500) with err as the private cause
//     and the sentinel's generic description, so no detail leaks.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		if e == nil {
			return ErrServerError.WithCause(err)
		}
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ErrTemporarilyUnavailable.WithCause(err)
	}
	return ErrServerError.WithCause(err)
}

// wire returns the error code and HTTP status Write sends for e. An empty or
// malformed code becomes server_error; a status outside 400-599 becomes the
// status of the sentinel with that code, or 500.
func (e *Error) wire() (code string, status int) {
	if e == nil || e.Code == "" || !isParamValue(e.Code, true) {
		return ErrServerError.Code, ErrServerError.Status
	}
	code, status = e.Code, e.Status
	if status < 400 || status > 599 {
		status = 500
		for _, s := range sentinels {
			if s.Code == code {
				status = s.Status
				break
			}
		}
	}
	return code, status
}

// wireURI returns e.URI when it is made only of the characters RFC 6749 §5.2
// allows in error_uri (%x21 / %x23-5B / %x5D-7E), and "" otherwise: a mangled
// URI is worse than none.
func (e *Error) wireURI() string {
	if e == nil || e.URI == "" || !isParamValue(e.URI, false) {
		return ""
	}
	return e.URI
}

// maxDescription caps error_description, in bytes, so that reflected input
// cannot inflate responses.
const maxDescription = 1024

// SanitizeDescription returns s restricted to the characters RFC 6749 §5.2
// allows in error_description (%x20-21 / %x23-5B / %x5D-7E), as Write,
// Challenge and RedirectQuery send it: a double quote becomes an apostrophe,
// a backslash becomes a slash, control characters and Unicode line breaks
// become spaces, and anything else (non-ASCII, invalid UTF-8) becomes '?'.
// The result is at most 1024 bytes; a
// longer one is cut and ends in "...". It is safe inside a quoted-string of a
// header and inside a JSON string.
func SanitizeDescription(s string) string {
	if len(s) <= maxDescription && isParamValue(s, true) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), maxDescription+1))
	for _, r := range s {
		if b.Len() > maxDescription {
			break
		}
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r >= 0x20 && r <= 0x7e:
			b.WriteByte(byte(r))
		case r < 0x20 || r == 0x85 || r == 0x2028 || r == 0x2029:
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	out := b.String()
	if len(out) > maxDescription {
		out = out[:maxDescription-3] + "..."
	}
	return out
}

// isParamValue reports whether s uses only the characters RFC 6749 §5.2 allows
// in error and error_description (%x20-21 / %x23-5B / %x5D-7E) or, with
// space false, in error_uri (the same without %x20).
func isParamValue(s string, space bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			if !space {
				return false
			}
		case c < 0x21 || c > 0x7e || c == '"' || c == '\\':
			return false
		}
	}
	return true
}

// isToken reports whether s is a non-empty RFC 9110 §5.6.2 token, the syntax of
// an authentication scheme.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
