package events

import (
	"fmt"
	"strings"
)

// Stream identifies which JetStream stream an event belongs in.
type Stream int

const (
	// StreamRevocations holds revocations, client lifecycle and heartbeats:
	// everything an edge or cache must replay to rebuild deny state. It keeps
	// events at least the maximum access-token lifetime.
	StreamRevocations Stream = iota + 1
	// StreamKeys holds key lifecycle events, the latest one per kid, kept
	// without age limit so that a consumer started at any time learns every
	// live key.
	StreamKeys
	// StreamAudit holds high-volume lifecycle records (family created and
	// rotated) that no deny-state projection needs.
	StreamAudit
)

// Streams returns every stream, in the order of their constants.
func Streams() []Stream {
	return []Stream{StreamRevocations, StreamKeys, StreamAudit}
}

// String returns the stream's short name ("revocations", "keys", "audit"),
// or "Stream(n)" for a value that is not a stream.
func (s Stream) String() string {
	switch s {
	case StreamRevocations:
		return "revocations"
	case StreamKeys:
		return "keys"
	case StreamAudit:
		return "audit"
	}
	return fmt.Sprintf("Stream(%d)", int(s))
}

// StreamOf returns the stream events of type t are published to, or 0 (no
// stream) for a type this package does not know.
func StreamOf(t Type) Stream {
	switch {
	case !Known(t):
		return 0
	case strings.HasPrefix(string(t), "key."):
		return StreamKeys
	case t == TypeFamilyCreated || t == TypeFamilyRotated:
		return StreamAudit
	default:
		return StreamRevocations
	}
}

// Subject returns the NATS subject e is published on under prefix (one
// subject token, "valet" by default): "<prefix>.key.<kid>" for key events, so
// the key stream can keep the latest per kid, and "<prefix>.<type>" otherwise.
// It returns an error for a bad prefix, a type this package does not know, a
// payload that does not match the type, or a kid unusable as a subject token.
func Subject(prefix string, e Event) (string, error) {
	if !validToken(prefix) {
		return "", fmt.Errorf("events: subject prefix %q must be 1..128 characters of [A-Za-z0-9_-]", prefix)
	}
	if !Known(e.Type) {
		return "", fmt.Errorf("%w: %q has no subject", ErrUnknownType, e.Type)
	}
	if e.Payload == nil || e.Payload.EventType() != e.Type {
		return "", fmt.Errorf("%w: %s event without a %s payload", ErrMalformed, e.Type, e.Type)
	}
	if StreamOf(e.Type) == StreamKeys {
		kid := KeyID(e.Payload)
		if err := validKID(e.Type, kid); err != nil {
			return "", err
		}
		return prefix + ".key." + kid, nil
	}
	return prefix + "." + string(e.Type), nil
}

// KeyID returns the kid of a key event payload, or "" for any other payload.
func KeyID(p Payload) string {
	switch k := p.(type) {
	case *KeyPublished:
		return k.KID
	case *KeyActivated:
		return k.KID
	case *KeyRetired:
		return k.KID
	case *KeyRevoked:
		return k.KID
	}
	return ""
}

// StreamSubjects returns the subject filters of stream s under prefix, for
// stream configuration and consumer filters, or nil when s is not a stream.
// Every subject Subject returns matches the filters of exactly one stream,
// StreamOf its type. prefix must be one that Subject accepts.
func StreamSubjects(prefix string, s Stream) []string {
	switch s {
	case StreamKeys:
		return []string{prefix + ".key.>"}
	case StreamAudit:
		return []string{prefix + "." + string(TypeFamilyCreated), prefix + "." + string(TypeFamilyRotated)}
	case StreamRevocations:
		return []string{
			prefix + ".token.>",
			prefix + "." + string(TypeFamilyRevoked),
			prefix + ".subject.>",
			prefix + ".client.>",
			prefix + ".stream.>",
		}
	}
	return nil
}
