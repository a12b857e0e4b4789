package store

import (
	"context"
	"time"
)

// RevocationKind says what a Revocation kills.
type RevocationKind string

// Revocation kinds, one per event type of the revocation stream.
const (
	RevokeToken   RevocationKind = "token"   // one access token by jti
	RevokeFamily  RevocationKind = "family"  // a refresh family and its tokens
	RevokeSubject RevocationKind = "subject" // every token of a subject up to a cut-off
	RevokeClient  RevocationKind = "client"  // every token of a client up to a cut-off
)

// Revocation is the deny state to write. Only the fields of its Kind are
// used.
type Revocation struct {
	Kind RevocationKind
	// JTI and Expires for RevokeToken: the mark lives until the token's exp.
	JTI     string
	Expires time.Time
	// FID for RevokeFamily.
	FID    string
	Reason string
	// SubjectType ("user" or "client") and Subject for RevokeSubject.
	SubjectType string
	Subject     string
	// ClientID for RevokeClient.
	ClientID string
	// Cutoff for RevokeSubject and RevokeClient: tokens and grants issued at
	// or before it (plus skew) die. A later cut-off replaces an earlier one,
	// never the reverse.
	Cutoff time.Time
	// Retain is how long the deny state must outlive the revocation: the
	// maximum access-token lifetime plus skew. Family marks and jti marks
	// expire after it (jti marks at Expires plus Retain). A cut-off also
	// kills the refresh families created before it, which may live far
	// longer: backends keep cut-offs at least as long as the longest grant.
	Retain time.Duration
}

// OutboxEntry is an encoded event waiting for its PubAck. The revoke
// primitive writes it in the same atomic step as the deny state and deletes
// it once JetStream has acknowledged the event; a relay re-publishes entries
// left behind (JetStream de-duplicates by ID).
type OutboxEntry struct {
	// ID is the event id (Nats-Msg-Id).
	ID string
	// Subject is the NATS subject to publish on.
	Subject string
	// Data is the encoded event.
	Data []byte
	// CreatedAt orders the relay's work.
	CreatedAt time.Time
}

// IsZero reports whether e is the zero entry: no id, no subject, no data.
func (e OutboxEntry) IsZero() bool {
	return e.ID == "" && e.Subject == "" && len(e.Data) == 0 && e.CreatedAt.IsZero()
}

// Deny is the deny state relevant to one access token, read in one round
// trip by introspection.
type Deny struct {
	JTIRevoked    bool
	FamilyRevoked bool
	// SubjectCutoff and ClientCutoff are zero when none is set.
	SubjectCutoff time.Time
	ClientCutoff  time.Time
}

// Revoked reports whether d kills an access token issued at iat: its jti or
// family is revoked, or a subject or client cut-off plus skew is at or after
// iat (MISSION §0.1; the edge's rule, docs/gateway.md).
func (d Deny) Revoked(iat time.Time, skew time.Duration) bool {
	if d.JTIRevoked || d.FamilyRevoked {
		return true
	}
	if !d.SubjectCutoff.IsZero() && !iat.After(d.SubjectCutoff.Add(skew)) {
		return true
	}
	return !d.ClientCutoff.IsZero() && !iat.After(d.ClientCutoff.Add(skew))
}

// DenyQuery names what to look up for one access token.
type DenyQuery struct {
	JTI string
	FID string
	// SubjectType is "user" or "client"; empty with a Subject means either:
	// the later of the two cut-offs is returned. An access token does not
	// say which namespace its sub is in, so readers that cannot tell apply
	// both, as edges do (fail closed, docs/events.md).
	SubjectType string
	Subject     string
	ClientID    string
}

// RevocationStore keeps deny state and the outbox.
type RevocationStore interface {
	// Revoke writes r's deny state and queues e in the outbox, atomically.
	// A revocation without its event (a zero e) is refused: it would never
	// reach the edges.
	// Revoking what is already revoked succeeds (and queues e again: its id
	// is deterministic, so JetStream drops the copy).
	Revoke(ctx context.Context, r Revocation, e OutboxEntry) error
	// Replay writes r's deny state without queueing any event. It exists for
	// rebuilding deny state from the stream (valet replay), whose events are
	// durable already; everything else revokes through Revoke.
	Replay(ctx context.Context, r Revocation) error
	// DenyState reads everything that could deny the token q describes, in
	// one round trip.
	DenyState(ctx context.Context, q DenyQuery) (Deny, error)
	// PendingOutbox returns up to limit entries created at or before
	// olderThan, oldest first.
	PendingOutbox(ctx context.Context, olderThan time.Time, limit int) ([]OutboxEntry, error)
	// AckOutbox removes an entry once its event is durable. Acking an
	// unknown id succeeds.
	AckOutbox(ctx context.Context, id string) error
}
