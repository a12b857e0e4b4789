// Package store holds the contracts of Valet's shared token state and the
// sentinel errors every backend returns. Backends live in subpackages (redis,
// and the embedded default) and all pass the one suite in store/conformance.
//
// Consumers declare the narrower interfaces they need in their own packages;
// the interfaces here exist because several backends implement them.
//
// Every atomic step (code redemption, refresh rotation, device-code polling,
// revocation) is one operation of the store, so that concurrent misuse — 50
// redeemers of one code, 50 rotations of one refresh token — has exactly one
// winner in every backend.
package store

import (
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: no such record (never existed, or expired and gone).
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: a create found the id taken.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict: an update lost a compare-and-set on the record's version.
	ErrConflict = errors.New("store: version conflict")
	// ErrExpired: the record exists but its lifetime is over.
	ErrExpired = errors.New("store: expired")
	// ErrRevoked: the record was revoked, directly or by a subject or client
	// cut-off.
	ErrRevoked = errors.New("store: revoked")
	// ErrReused: a single-use credential (authorization code, device code,
	// superseded refresh token) was presented again. The store has revoked
	// the grant's family and queued its family.revoked event in the same
	// atomic step.
	ErrReused = errors.New("store: reused")
	// ErrClientMismatch: the credential belongs to another client.
	ErrClientMismatch = errors.New("store: credential bound to another client")
	// ErrInvalidScope: a rotation asked for scopes the family was not
	// granted (RFC 6749 §6: a refresh may narrow the scopes, never widen
	// them). Nothing was changed.
	ErrInvalidScope = errors.New("store: scope not granted")
	// ErrUnavailable: the backend cannot be reached or answered with an
	// error. The HTTP layer maps it to 503 temporarily_unavailable, never to
	// a negative answer.
	ErrUnavailable = errors.New("store: unavailable")
)

// Hash is the SHA-256 of an opaque token (refresh token, authorization code,
// device code, session id). Stores keep only hashes, never the tokens.
type Hash = [32]byte

// Cutoffs are the clock-skew-adjusted subject and client cut-offs a
// redemption checks with its step: a grant created at or before a cut-off
// plus Skew is dead, and the step hands nothing out. The embedded store reads
// them in the step's transaction; the Redis store, whose cut-offs live in
// other Cluster slots than the grant, reads them in the same round trip as
// the step's script and revokes the grant when they cover it
// (docs/redis.md, "The cut-off check").
//
// The store always checks the cut-offs of the grant's own subject and client,
// as stored with the grant. SubjectType, Subject and ClientID are hints that
// let it name those cut-offs before reading the grant: the caller of a
// redemption often does not know the subject yet. A missing or wrong hint
// costs the store one more round trip, never a wrong answer.
type Cutoffs struct {
	// SubjectType is "user" or "client" (events.SubjectUser/SubjectClient).
	SubjectType string
	Subject     string
	ClientID    string
	// Skew is the configured clock-skew allowance.
	Skew time.Duration
}
