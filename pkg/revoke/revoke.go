// Package revoke is the revoke primitive every service that revokes uses,
// including reuse detection in the issuer (MISSION §0.2, §0.7).
//
// One store step writes the deny state and an outbox entry carrying the
// event with a deterministic id; the event is then published; the outbox
// entry is cleared on PubAck. The caller's success comes only after the
// PubAck. While NATS is down the caller gets ErrPending (503 with
// Retry-After at the HTTP layer) and the Relay completes the revocation once
// NATS returns; JetStream's de-duplication by event id makes re-publishing
// safe. The deny state is written first, so a revocation is enforced by the
// store from the moment it is attempted, and it is never lost.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/store"
)

// ErrPending is returned when the deny state is written but its event is not
// yet durable in the stream (NATS unavailable). The revocation will complete:
// the relay publishes it. HTTP layers answer 503 with Retry-After.
var ErrPending = errors.New("revoke: revocation recorded, event not yet durable")

// Store is what the primitive needs of the token store.
type Store interface {
	Revoke(ctx context.Context, r store.Revocation, e store.OutboxEntry) error
	PendingOutbox(ctx context.Context, olderThan time.Time, limit int) ([]store.OutboxEntry, error)
	AckOutbox(ctx context.Context, id string) error
}

// Config configures a Revoker.
type Config struct {
	// Source is the issuer identifier, the events' source.
	Source string
	// Prefix is the NATS subject prefix.
	Prefix string
	// Retain is how long deny state must outlive a revocation: the maximum
	// access-token lifetime plus the clock-skew allowance.
	Retain time.Duration
	// RetryAfter is what callers advise clients while NATS is down.
	RetryAfter time.Duration
}

// Revoker revokes tokens, families, subjects and clients.
type Revoker struct {
	cfg   Config
	store Store
	pub   bus.EventPublisher
	now   func() time.Time
	log   *zap.Logger

	revocations *prometheus.CounterVec
	pending     prometheus.Counter
}

// Option configures New.
type Option func(*Revoker)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(r *Revoker) { r.now = now } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(r *Revoker) { r.log = l } }

// WithRegisterer registers the primitive's metrics on reg; nil registers
// nothing, as for NewRelay and the client cache.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(r *Revoker) {
		if reg != nil {
			reg.MustRegister(r.revocations, r.pending)
		}
	}
}

// New returns a Revoker.
// pub is pkg/bus's Publisher: it returns once JetStream has acknowledged the
// event, and a duplicate id is success.
func New(cfg Config, st Store, pub bus.EventPublisher, opts ...Option) (*Revoker, error) {
	if cfg.Source == "" || cfg.Prefix == "" || cfg.Retain <= 0 {
		return nil, errors.New("revoke: Source, Prefix and a positive Retain are required")
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	r := &Revoker{cfg: cfg, store: st, pub: pub, now: time.Now, log: zap.NewNop(),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_revocations_total",
			Help: "Revocations by kind and outcome (durable: event acknowledged; pending: recorded, event queued for the relay).",
		}, []string{"kind", "outcome"}),
		pending: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_revocation_publish_failures_total",
			Help: "Revocation events that could not be published at once and were left to the relay.",
		}),
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// RetryAfter is the delay to advise clients after ErrPending.
func (r *Revoker) RetryAfter() time.Duration { return r.cfg.RetryAfter }

// Token revokes one access token by jti until exp.
func (r *Revoker) Token(ctx context.Context, jti string, exp time.Time, clientID, reason, actor string) error {
	p := &events.TokenRevoked{JTI: jti, Exp: exp.Unix(), ClientID: clientID, Reason: reason}
	id := events.DeterministicID(events.TypeTokenRevoked, jti)
	return r.revoke(ctx, store.Revocation{Kind: store.RevokeToken, JTI: jti, Expires: exp, Reason: reason}, id, p, actor)
}

// Family revokes a refresh family and, through its fid, every access token
// minted from it.
func (r *Revoker) Family(ctx context.Context, fid, subject, clientID, reason, actor string) error {
	p := &events.FamilyRevoked{FID: fid, Subject: subject, ClientID: clientID, Reason: reason}
	id := events.DeterministicID(events.TypeFamilyRevoked, fid)
	return r.revoke(ctx, store.Revocation{Kind: store.RevokeFamily, FID: fid, Reason: reason}, id, p, actor)
}

// Subject revokes every token of a subject issued at or before cutoff, and
// every grant that could mint new ones.
func (r *Revoker) Subject(ctx context.Context, subjectType, subject string, cutoff time.Time, reason, actor string) error {
	p := &events.SubjectRevoked{Subject: subject, SubjectType: subjectType, Cutoff: cutoff.Unix(), Reason: reason}
	id := events.DeterministicID(events.TypeSubjectRevoked, subjectType, subject, strconv.FormatInt(cutoff.UnixMilli(), 10))
	return r.revoke(ctx, store.Revocation{Kind: store.RevokeSubject, SubjectType: subjectType, Subject: subject, Cutoff: cutoff, Reason: reason}, id, p, actor)
}

// Client revokes every token of a client issued at or before cutoff.
func (r *Revoker) Client(ctx context.Context, clientID string, cutoff time.Time, reason, actor string) error {
	p := &events.ClientRevoked{ClientID: clientID, Cutoff: cutoff.Unix(), Reason: reason}
	id := events.DeterministicID(events.TypeClientRevoked, clientID, strconv.FormatInt(cutoff.UnixMilli(), 10))
	return r.revoke(ctx, store.Revocation{Kind: store.RevokeClient, ClientID: clientID, Cutoff: cutoff, Reason: reason}, id, p, actor)
}

// FamilyEvent returns the outbox entry of a family.revoked event. The issuer
// hands it to the store's redemption and rotation steps, which queue it in
// the same atomic step that detects reuse; Flush then publishes it.
func (r *Revoker) FamilyEvent(fid, subject, clientID, reason, actor string) (store.OutboxEntry, error) {
	p := &events.FamilyRevoked{FID: fid, Subject: subject, ClientID: clientID, Reason: reason}
	e, _, err := r.entry(events.DeterministicID(events.TypeFamilyRevoked, fid), p, actor)
	return e, err
}

func (r *Revoker) revoke(ctx context.Context, rev store.Revocation, id string, p events.Payload, actor string) error {
	e, ev, err := r.entry(id, p, actor)
	if err != nil {
		return err
	}
	rev.Retain = r.cfg.Retain
	if err := r.store.Revoke(ctx, rev, e); err != nil {
		r.revocations.WithLabelValues(string(rev.Kind), "failed").Inc()
		return fmt.Errorf("revoke %s: record deny state: %w", rev.Kind, err)
	}
	if err := r.publish(ctx, e.ID, ev); err != nil {
		r.revocations.WithLabelValues(string(rev.Kind), "pending").Inc()
		return err
	}
	r.revocations.WithLabelValues(string(rev.Kind), "durable").Inc()
	return nil
}

// Flush publishes a queued outbox entry and clears it on PubAck. It returns
// ErrPending (wrapping the cause) when the event is not durable yet; the
// entry then stays for the relay.
func (r *Revoker) Flush(ctx context.Context, e store.OutboxEntry) error {
	ev, err := events.Decode(e.Data)
	if err != nil {
		return fmt.Errorf("revoke: outbox entry %s: %w", e.ID, err)
	}
	return r.publish(ctx, e.ID, ev)
}

func (r *Revoker) publish(ctx context.Context, id string, ev events.Event) error {
	if _, err := r.pub.Publish(ctx, ev); err != nil {
		r.pending.Inc()
		r.log.Warn("revocation event not yet durable; the relay will publish it", zap.String("event_id", id), zap.String("type", string(ev.Type)), zap.Error(err))
		return fmt.Errorf("%w: %v", ErrPending, err)
	}
	// The event is durable; a failed ack only means the relay publishes it
	// again, which JetStream de-duplicates.
	if err := r.store.AckOutbox(ctx, id); err != nil {
		r.log.Warn("outbox ack failed; the relay will re-publish (deduplicated)", zap.String("event_id", id), zap.Error(err))
	}
	return nil
}

// entry builds the event and its outbox entry.
func (r *Revoker) entry(id string, p events.Payload, actor string) (store.OutboxEntry, events.Event, error) {
	now := r.now()
	ev, err := events.New(id, r.cfg.Source, now, p)
	if err != nil {
		return store.OutboxEntry{}, events.Event{}, fmt.Errorf("revoke: build event: %w", err)
	}
	ev = ev.WithActor(actor)
	subject, err := events.Subject(r.cfg.Prefix, ev)
	if err != nil {
		return store.OutboxEntry{}, events.Event{}, fmt.Errorf("revoke: event subject: %w", err)
	}
	data, err := ev.Encode()
	if err != nil {
		return store.OutboxEntry{}, events.Event{}, err
	}
	return store.OutboxEntry{ID: id, Subject: subject, Data: data, CreatedAt: now}, ev, nil
}
