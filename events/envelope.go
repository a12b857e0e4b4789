package events

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents specification version the envelope follows.
const SpecVersion = "1.0"

// SchemaVersion is the version of Valet's payload schemas written by this
// package, as "major.minor". Consumers accept any minor of SchemaMajor: a minor
// bump only adds fields.
const SchemaVersion = "1.0"

// SchemaMajor is the only major schema version this package decodes.
const SchemaMajor = 1

// MaxEventBytes bounds an encoded event; Decode refuses anything larger before
// parsing it, so a hostile or corrupt message cannot make a consumer allocate
// without limit.
const MaxEventBytes = 64 << 10

// Errors returned by Decode. Every one of them means the consumer cannot apply
// the event and must consider itself stale.
var (
	// ErrMalformed is returned for bytes that are not a well-formed envelope or
	// whose payload lacks what its type requires.
	ErrMalformed = errors.New("events: malformed event")
	// ErrUnknownType is returned for a type this version of the package does
	// not know: a newer producer is ahead of this consumer.
	ErrUnknownType = errors.New("events: unknown event type")
	// ErrUnsupportedVersion is returned for a schema major version other than
	// SchemaMajor.
	ErrUnsupportedVersion = errors.New("events: unsupported schema version")
)

// Envelope is the CloudEvents-compatible wrapper every event travels in
// (JSON event format). Data holds the type's payload.
type Envelope struct {
	// SpecVersion is the CloudEvents version, "1.0".
	SpecVersion string `json:"specversion"`
	// ID is unique per event and is the JetStream de-duplication id
	// (Nats-Msg-Id), so re-publishing the same event is harmless.
	ID string `json:"id"`
	// Source is the issuer identifier of the Valet cluster that produced it.
	Source string `json:"source"`
	// Type says which payload Data holds.
	Type Type `json:"type"`
	// SchemaVersion is the payload schema version, "major.minor".
	SchemaVersion string `json:"schemaversion"`
	// Time is when the state change happened. Edges measure revocation
	// propagation from it.
	Time time.Time `json:"time"`
	// Actor names who caused the change (an admin client id, "system"), for
	// audit; empty for automatic events.
	Actor string `json:"actor,omitempty"`
	// DataContentType is always "application/json".
	DataContentType string `json:"datacontenttype,omitempty"`
	// Data is the JSON payload.
	Data json.RawMessage `json:"data"`
}

// Event is a decoded envelope with its typed payload.
type Event struct {
	Envelope
	// Payload is one of the payload types of this package, matching Type.
	Payload Payload
}

// Payload is implemented by every event payload type.
type Payload interface {
	// EventType returns the type the payload is published as.
	EventType() Type
	// validate reports what a payload lacks; producers and consumers both
	// run it so that an event that would be refused is never published.
	validate() error
}

// New wraps p in an envelope with the given id, source and time. It returns an
// error when p is incomplete, so that no producer publishes an event every
// consumer would refuse. Use NewID or DeterministicID for id.
func New(id, source string, at time.Time, p Payload) (Event, error) {
	if p == nil {
		return Event{}, fmt.Errorf("%w: nil payload", ErrMalformed)
	}
	if err := p.validate(); err != nil {
		return Event{}, err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return Event{}, fmt.Errorf("events: encode %s payload: %w", p.EventType(), err)
	}
	env := Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          source,
		Type:            p.EventType(),
		SchemaVersion:   SchemaVersion,
		Time:            at.UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
	if err := env.validate(); err != nil {
		return Event{}, err
	}
	return Event{Envelope: env, Payload: p}, nil
}

// WithActor returns a copy of e attributed to actor.
func (e Event) WithActor(actor string) Event {
	e.Actor = actor
	return e
}

// Encode returns the JSON form of the envelope, as published.
func (e Event) Encode() ([]byte, error) {
	b, err := json.Marshal(e.Envelope)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s envelope: %w", e.Type, err)
	}
	return b, nil
}

func (e *Envelope) validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q", ErrMalformed, e.SpecVersion)
	case e.ID == "" || len(e.ID) > 256:
		return fmt.Errorf("%w: id must be 1..256 characters", ErrMalformed)
	case e.Source == "":
		return fmt.Errorf("%w: source is empty", ErrMalformed)
	case e.Time.IsZero():
		return fmt.Errorf("%w: time is missing", ErrMalformed)
	}
	return checkVersion(e.SchemaVersion)
}

func checkVersion(v string) error {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil || n < 0 {
		return fmt.Errorf("%w: schemaversion %q", ErrMalformed, v)
	}
	if n != SchemaMajor {
		return fmt.Errorf("%w: schemaversion %q, this consumer reads major %d", ErrUnsupportedVersion, v, SchemaMajor)
	}
	return nil
}

// Decode parses an encoded event. It tolerates fields it does not know, and
// returns ErrMalformed, ErrUnknownType or ErrUnsupportedVersion (wrapped, test
// with errors.Is) for anything it cannot apply faithfully.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxEventBytes)
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := env.validate(); err != nil {
		return Event{}, err
	}
	newPayload, ok := registry[env.Type]
	if !ok {
		return Event{}, fmt.Errorf("%w: %q", ErrUnknownType, env.Type)
	}
	p := newPayload()
	data := bytes.TrimSpace(env.Data)
	if len(data) == 0 || data[0] != '{' {
		return Event{}, fmt.Errorf("%w: %s data must be a JSON object", ErrMalformed, env.Type)
	}
	if err := json.Unmarshal(data, p); err != nil {
		return Event{}, fmt.Errorf("%w: %s data: %v", ErrMalformed, env.Type, err)
	}
	if err := p.validate(); err != nil {
		return Event{}, err
	}
	return Event{Envelope: env, Payload: p}, nil
}

// NewID returns a random event id (128 bits, base64url) for events that are
// not the deterministic outcome of one state change.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms; an id we cannot
		// make is not an event we may publish.
		panic("events: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DeterministicID derives an event id from the parts that identify one state
// change (for example the type, the jti and the revocation time), so that a
// relay re-publishing it after a crash produces the same id and JetStream's
// de-duplication drops the copy.
func DeterministicID(t Type, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(t))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}
