package events

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
// without limit, and Encode refuses to produce anything larger.
const MaxEventBytes = 64 << 10

// Limits on envelope attributes, checked by New, Encode and Decode.
const (
	maxIDBytes     = 256  // the id travels as the Nats-Msg-Id header
	maxSourceBytes = 1024 // an issuer identifier URL
	maxActorBytes  = 256  // a client id, a user name or "system"
)

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
	// It is not part of the JSON form: Data is.
	Payload Payload `json:"-"`
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
	if p == nil || reflect.ValueOf(p).IsNil() {
		return Event{}, fmt.Errorf("%w: nil payload", ErrMalformed)
	}
	if err := p.validate(); err != nil {
		return Event{}, err
	}
	data, err := marshal(p)
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

// WithActor returns a copy of e attributed to actor (at most 256 bytes of
// printable text; Encode refuses anything else).
func (e Event) WithActor(actor string) Event {
	e.Actor = actor
	return e
}

// Encode returns the JSON form of the envelope, as published. It returns an
// error, and publishes nothing, when the result is not an event Decode accepts
// (an envelope edited after New, a payload or actor too large): an event every
// consumer refuses would make every consumer stale.
func (e Event) Encode() ([]byte, error) {
	b, err := marshal(e.Envelope)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s envelope: %w", e.Type, err)
	}
	if _, err := Decode(b); err != nil {
		return nil, fmt.Errorf("events: refusing to encode %s event %q that consumers would refuse: %w", e.Type, e.ID, err)
	}
	return b, nil
}

// marshal is json.Marshal without HTML escaping, which would grow "<", ">"
// and "&" sixfold, so that a relay re-encoding an event Decode accepted could
// exceed MaxEventBytes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (e *Envelope) validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("%w: specversion %q", ErrMalformed, e.SpecVersion)
	case !visibleASCII(e.ID, maxIDBytes):
		return fmt.Errorf("%w: id must be 1..%d visible ASCII characters", ErrMalformed, maxIDBytes)
	case !visibleASCII(e.Source, maxSourceBytes):
		return fmt.Errorf("%w: source must be a URI-reference of 1..%d visible ASCII characters", ErrMalformed, maxSourceBytes)
	case e.Type == "":
		return fmt.Errorf("%w: type is missing", ErrMalformed)
	case e.Time.IsZero():
		return fmt.Errorf("%w: time is missing", ErrMalformed)
	case e.Time.Year() < 0 || e.Time.Year() > 9999:
		return fmt.Errorf("%w: time %s is not representable in RFC 3339", ErrMalformed, e.Time)
	case len(e.Actor) > maxActorBytes || !printable(e.Actor):
		return fmt.Errorf("%w: actor must be at most %d bytes of printable UTF-8", ErrMalformed, maxActorBytes)
	case !jsonContentType(e.DataContentType):
		return fmt.Errorf("%w: datacontenttype %q, want application/json", ErrMalformed, e.DataContentType)
	}
	return checkVersion(e.SchemaVersion)
}

// checkVersion accepts "major.minor", both non-empty decimal numbers, with
// major SchemaMajor and any minor.
func checkVersion(v string) error {
	if v == SchemaVersion {
		// What this package writes, hence of major SchemaMajor.
		return nil
	}
	major, minor, ok := strings.Cut(v, ".")
	if !ok || !digits(major) || !digits(minor) {
		return fmt.Errorf("%w: schemaversion %q is not major.minor", ErrMalformed, v)
	}
	if strings.TrimLeft(major, "0") != strconv.Itoa(SchemaMajor) {
		return fmt.Errorf("%w: schemaversion %q, this consumer reads major %d", ErrUnsupportedVersion, v, SchemaMajor)
	}
	return nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// visibleASCII reports whether s is 1..max bytes of ASCII 0x21..0x7e: safe
// in a NATS header and never longer once JSON-encoded.
func visibleASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// printable reports whether s is made of printable characters, which JSON
// encoding never lengthens. U+FFFD is refused too: Decode turns each invalid
// UTF-8 byte into one, three bytes long.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// jsonContentType accepts an absent datacontenttype (the CloudEvents JSON
// format then implies application/json) or application/json with optional
// parameters.
func jsonContentType(ct string) bool {
	if ct == "" || ct == "application/json" {
		return true
	}
	if !visibleASCII(strings.ReplaceAll(ct, " ", "_"), 128) {
		return false
	}
	base, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(base), "application/json")
}

// Decode parses an encoded event. It tolerates fields it does not know, and
// returns ErrMalformed, ErrUnknownType or ErrUnsupportedVersion (wrapped, test
// with errors.Is) for anything it cannot apply faithfully.
//
// Decode first tries decodeFast, a single-pass scanner for the shape Encode
// writes, and falls back to decodeSlow, the encoding/json reference, whenever
// the fast path is not certain of giving the identical result. Every error
// comes from decodeSlow.
func Decode(b []byte) (Event, error) {
	if e, ok := decodeFast(b); ok {
		return e, nil
	}
	return decodeSlow(b)
}

// decodeSlow is the reference decoder, built on encoding/json: it defines the
// language Decode accepts and the errors it returns. decodeFast must agree
// with it on every input it accepts (FuzzDecodeFastMatchesSlow).
func decodeSlow(b []byte) (Event, error) {
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

// DeterministicID derives an event id (144 bits, base64url) from the type and
// the parts that identify one state change (for example the jti, or the
// subject and cut-off), so that a producer or relay re-publishing it after a
// crash or a lost ack produces the same id and JetStream's de-duplication
// drops the copy. Each part is length-prefixed, so no choice of parts (even
// parts holding NUL bytes) collides with another split of the same bytes.
func DeterministicID(t Type, parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	write := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	write(string(t))
	for _, p := range parts {
		write(p)
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}
