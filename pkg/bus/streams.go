package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
)

// Defaults applied by StreamsConfig where a field is zero.
const (
	// DefaultPrefix is the subject prefix of a production cluster.
	DefaultPrefix = "valet"
	// DefaultRetentionMargin is added to the maximum access-token lifetime
	// to get the revocation stream's MaxAge: it covers clock skew and the
	// time between a token's issue and the revocation that names it.
	DefaultRetentionMargin = time.Hour
	// DefaultDuplicates is the de-duplication window: a re-publish of the
	// same event id within it (a relay retrying after a crash, a client
	// retrying a 503) is acknowledged without being stored twice.
	DefaultDuplicates = 2 * time.Minute
	// DefaultAuditMaxAge is how long family.created/rotated records are kept.
	DefaultAuditMaxAge = 7 * 24 * time.Hour
)

// headerAllowance is room for the Nats-Msg-Id header the Publisher sets (an
// id is at most 256 bytes) on top of events.MaxEventBytes in a stream's
// MaxMsgSize, so that the server refuses what no consumer would decode.
const headerAllowance = 1024

// StreamsConfig is what EnsureStreams declares. Only MaxAccessTokenLifetime
// has no default: retention shorter than the longest-lived access token would
// let a revocation age out while its token still works.
type StreamsConfig struct {
	// Prefix is the subject prefix (one token of [A-Za-z0-9_-]); stream
	// names are derived from it. Default DefaultPrefix.
	Prefix string
	// MaxAccessTokenLifetime is the longest access-token lifetime any issuer
	// may configure. Required.
	MaxAccessTokenLifetime time.Duration
	// RetentionMargin is added to MaxAccessTokenLifetime for the revocation
	// stream's MaxAge. Default DefaultRetentionMargin.
	RetentionMargin time.Duration
	// RevocationsMaxBytes caps the revocation stream's size; 0 means
	// unlimited. With a cap, a full stream refuses new revocations (the
	// publisher gets ErrUnavailable) rather than evicting old ones.
	RevocationsMaxBytes int64
	// Duplicates is the de-duplication window of every stream. Default
	// DefaultDuplicates.
	Duplicates time.Duration
	// AuditMaxAge is the audit stream's retention. Default
	// DefaultAuditMaxAge.
	AuditMaxAge time.Duration
	// Replicas is the number of stream replicas in a NATS cluster, 1..5.
	// Default 1.
	Replicas int
}

// withDefaults returns c with zero fields set to their defaults.
func (c StreamsConfig) withDefaults() StreamsConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.RetentionMargin == 0 {
		c.RetentionMargin = DefaultRetentionMargin
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.AuditMaxAge == 0 {
		c.AuditMaxAge = DefaultAuditMaxAge
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// Validate returns an error naming the first field (after defaults) that
// would make a stream unsafe or invalid.
func (c StreamsConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case !validToken(c.Prefix):
		return fmt.Errorf("bus: stream prefix %q must be one token of [A-Za-z0-9_-]", c.Prefix)
	case c.MaxAccessTokenLifetime <= 0:
		return errors.New("bus: MaxAccessTokenLifetime is required: the revocation stream must outlive every access token")
	case c.RetentionMargin < 0:
		return errors.New("bus: RetentionMargin must not be negative")
	case c.RevocationsMaxBytes < 0:
		return errors.New("bus: RevocationsMaxBytes must be 0 (unlimited) or positive")
	case c.Duplicates < 0:
		return errors.New("bus: Duplicates must not be negative")
	case c.AuditMaxAge < 0:
		return errors.New("bus: AuditMaxAge must not be negative")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("bus: Replicas %d must be 1..5", c.Replicas)
	}
	return nil
}

// RevocationsMaxAge returns how long the revocation stream keeps an event:
// the maximum access-token lifetime plus the margin, so that a consumer
// replaying it sees every revocation whose token can still be presented.
func (c StreamsConfig) RevocationsMaxAge() time.Duration {
	c = c.withDefaults()
	return c.MaxAccessTokenLifetime + c.RetentionMargin
}

// StreamName returns the JetStream stream name of s under prefix, e.g.
// "VALET_REVOCATIONS" for "valet", so that clusters (or tests) with different
// prefixes on one server never share a stream.
func StreamName(prefix string, s events.Stream) string {
	p := strings.ToUpper(prefix)
	switch s {
	case events.StreamKeys:
		return p + "_KEYS"
	case events.StreamAudit:
		return p + "_AUDIT"
	default:
		return p + "_REVOCATIONS"
	}
}

// StreamConfig returns the JetStream configuration of stream s, or the
// Validate error. docs/streams.md explains each choice.
func (c StreamsConfig) StreamConfig(s events.Stream) (jetstream.StreamConfig, error) {
	if err := c.Validate(); err != nil {
		return jetstream.StreamConfig{}, err
	}
	c = c.withDefaults()
	cfg := jetstream.StreamConfig{
		Name:              StreamName(c.Prefix, s),
		Subjects:          events.StreamSubjects(c.Prefix, s),
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        events.MaxEventBytes + headerAllowance,
		Discard:           jetstream.DiscardOld,
	}
	switch s {
	case events.StreamRevocations:
		cfg.Description = "Valet revocations, client lifecycle and heartbeats: replayed to rebuild deny state"
		cfg.MaxAge = c.RevocationsMaxAge()
		// Never evict a revocation to make room: a full stream refuses.
		cfg.Discard = jetstream.DiscardNew
		if c.RevocationsMaxBytes > 0 {
			cfg.MaxBytes = c.RevocationsMaxBytes
		}
	case events.StreamKeys:
		cfg.Description = "Valet signing-key lifecycle: the latest event per kid, kept without age limit"
		cfg.MaxMsgsPerSubject = 1
	case events.StreamAudit:
		cfg.Description = "Valet refresh-family lifecycle records"
		cfg.MaxAge = c.AuditMaxAge
	default:
		return jetstream.StreamConfig{}, fmt.Errorf("bus: unknown stream %d", s)
	}
	// The server refuses a duplicate window longer than MaxAge.
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		cfg.Duplicates = cfg.MaxAge
	}
	return cfg, nil
}

// StreamManager is the part of jetstream.JetStream EnsureStreams calls.
type StreamManager interface {
	CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

var _ StreamManager = jetstream.JetStream(nil)

// EnsureStreams creates the revocation, key and audit streams, or updates
// them to cfg when they exist, so every service may call it at start. It
// returns the Validate error, or the first stream it could not declare
// (ErrUnavailable when JetStream did not answer).
func EnsureStreams(ctx context.Context, m StreamManager, cfg StreamsConfig) error {
	for _, s := range []events.Stream{events.StreamRevocations, events.StreamKeys, events.StreamAudit} {
		sc, err := cfg.StreamConfig(s)
		if err != nil {
			return err
		}
		if _, err := m.CreateOrUpdateStream(ctx, sc); err != nil {
			return classify("declare stream "+sc.Name, err)
		}
	}
	return nil
}

// validToken mirrors the events package's rule for a subject token.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}
