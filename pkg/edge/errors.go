package edge

import (
	"errors"
	"net/http"
)

// Reasons label every Verify outcome. They are stable, low-cardinality
// strings meant for a metric label (valet_edge_decisions_total{reason}); the
// SLI "token validation failure rate at edges by reason" is built on them.
const (
	// ReasonOK is the reason of a token that verified.
	ReasonOK = "ok"
	// ReasonMalformed: not a compact JWS, bad base64url or JSON, a critical
	// header, or a required RFC 9068 claim missing.
	ReasonMalformed = "malformed"
	// ReasonWrongType: the header typ is not at+jwt (RFC 9068 §2.1).
	ReasonWrongType = "wrong_type"
	// ReasonBadAlgorithm: alg is none, HMAC or anything outside the
	// allow-list, or it differs from the alg bound to the key in JWKS.
	ReasonBadAlgorithm = "bad_algorithm"
	// ReasonUnknownKID: no key with the header kid in JWKS, even after a
	// refetch.
	ReasonUnknownKID = "unknown_kid"
	// ReasonKeyRevoked: the key that signed the token is revoked as
	// compromised (key.revoked).
	ReasonKeyRevoked = "key_revoked"
	// ReasonBadSignature: the signature does not verify with the key.
	ReasonBadSignature = "bad_signature"
	// ReasonWrongIssuer: iss is not exactly the configured issuer.
	ReasonWrongIssuer = "wrong_issuer"
	// ReasonWrongAudience: aud does not contain the configured audience.
	ReasonWrongAudience = "wrong_audience"
	// ReasonLifetime: exp − iat exceeds the maximum access-token lifetime,
	// beyond which the edge's replay window could not guarantee revocation.
	ReasonLifetime = "lifetime_exceeded"
	// ReasonExpired: exp is past (beyond the clock skew).
	ReasonExpired = "expired"
	// ReasonNotYetValid: nbf or iat is in the future (beyond the skew).
	ReasonNotYetValid = "not_yet_valid"
	// ReasonRevoked: the deny state kills the token (jti, family, subject
	// cut-off or client cut-off).
	ReasonRevoked = "revoked"
	// ReasonInsufficientScope: a required scope is missing (RFC 6750 §3.1).
	ReasonInsufficientScope = "insufficient_scope"
	// ReasonStale: the edge cannot show its deny state or keys are current,
	// so it rejects every token (fail closed).
	ReasonStale = "stale"
	// ReasonError is what ReasonOf returns for an error that is not an
	// *Error, such as a cancelled context.
	ReasonError = "error"
)

// Error is a rejected token: a stable reason and a description. It never
// contains the token or any claim value. Errors compare by reason, so
// errors.Is(err, edge.ErrRevoked) holds for every revocation, whatever its
// detail.
type Error struct {
	reason string
	desc   string
	cause  error
}

// The sentinel errors, one per reason, for errors.Is.
var (
	ErrMalformed         = &Error{reason: ReasonMalformed, desc: "malformed access token"}
	ErrWrongType         = &Error{reason: ReasonWrongType, desc: `token type is not "at+jwt"`}
	ErrBadAlgorithm      = &Error{reason: ReasonBadAlgorithm, desc: "signature algorithm not allowed for this key"}
	ErrUnknownKID        = &Error{reason: ReasonUnknownKID, desc: "unknown signing key"}
	ErrKeyRevoked        = &Error{reason: ReasonKeyRevoked, desc: "signing key revoked"}
	ErrBadSignature      = &Error{reason: ReasonBadSignature, desc: "signature does not verify"}
	ErrWrongIssuer       = &Error{reason: ReasonWrongIssuer, desc: "wrong issuer"}
	ErrWrongAudience     = &Error{reason: ReasonWrongAudience, desc: "audience not accepted"}
	ErrLifetime          = &Error{reason: ReasonLifetime, desc: "token lifetime exceeds the maximum"}
	ErrExpired           = &Error{reason: ReasonExpired, desc: "token expired"}
	ErrNotYetValid       = &Error{reason: ReasonNotYetValid, desc: "token not yet valid"}
	ErrRevoked           = &Error{reason: ReasonRevoked, desc: "token revoked"}
	ErrInsufficientScope = &Error{reason: ReasonInsufficientScope, desc: "insufficient scope"}
	ErrStale             = &Error{reason: ReasonStale, desc: "revocation state not current"}
)

// Reason returns the stable reason string, e.g. "revoked".
func (e *Error) Reason() string { return e.reason }

// Error returns "edge: <description>[: <detail>]".
func (e *Error) Error() string {
	if e.cause != nil {
		return "edge: " + e.desc + ": " + e.cause.Error()
	}
	return "edge: " + e.desc
}

// Is reports whether target is an *Error with the same reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.reason == e.reason
}

// Unwrap returns the detail, if any.
func (e *Error) Unwrap() error { return e.cause }

// StatusCode returns the HTTP status a resource server answers with:
// 503 when the edge is stale (it cannot decide, the client should retry),
// 403 for insufficient_scope (RFC 6750 §3.1), 401 otherwise.
func (e *Error) StatusCode() int {
	switch e.reason {
	case ReasonStale:
		return http.StatusServiceUnavailable
	case ReasonInsufficientScope:
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// BearerError returns the RFC 6750 §3.1 error code for the WWW-Authenticate
// header: "insufficient_scope", "invalid_token", or "" when the edge is
// stale (that is not the token's fault; answer 503 without an error code).
func (e *Error) BearerError() string {
	switch e.reason {
	case ReasonStale:
		return ""
	case ReasonInsufficientScope:
		return "insufficient_scope"
	}
	return "invalid_token"
}

// with returns a copy of e carrying detail. The detail is fixed text chosen
// by this package, never token content.
func (e *Error) with(detail string) *Error {
	c := *e
	c.cause = errors.New(detail)
	return &c
}

// wrap returns a copy of e wrapping cause.
func (e *Error) wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// ReasonOf returns the reason label of a Verify result: ReasonOK for nil,
// the *Error's reason, or ReasonError for anything else.
func ReasonOf(err error) string {
	if err == nil {
		return ReasonOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.reason
	}
	return ReasonError
}
