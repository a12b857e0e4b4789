package bus

import (
	"context"
	"errors"
	"time"

	"github.com/valetauth/valet/events"
)

// DefaultHeartbeatInterval is how often a Heartbeater publishes. An edge's
// staleness bound must allow a few missed beats on top of it.
const DefaultHeartbeatInterval = 5 * time.Second

// EventPublisher is the part of Publisher a Heartbeater calls.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event) (PubAck, error)
}

var _ EventPublisher = (*Publisher)(nil)

// HeartbeaterOption configures a Heartbeater.
type HeartbeaterOption func(*Heartbeater)

// WithHeartbeatInterval sets the time between heartbeats. Default
// DefaultHeartbeatInterval.
func WithHeartbeatInterval(d time.Duration) HeartbeaterOption {
	return func(h *Heartbeater) { h.interval = d }
}

// WithHeartbeatErrorHook sets a func told about every heartbeat that could
// not be published; it must not block.
func WithHeartbeatErrorHook(fn func(error)) HeartbeaterOption {
	return func(h *Heartbeater) { h.onError = fn }
}

// Heartbeater publishes a heartbeat on the revocation stream at a fixed
// interval, so that a consumer which applied one recently can prove it is
// current even when no revocation happens.
type Heartbeater struct {
	pub      EventPublisher
	source   string
	beat     events.Heartbeat
	interval time.Duration
	onError  func(error)
}

// NewHeartbeater returns a Heartbeater publishing beat (Service, Instance)
// with source (the cluster's issuer identifier) through pub, or an error for
// a missing argument or a non-positive interval.
func NewHeartbeater(pub EventPublisher, source string, beat events.Heartbeat, opts ...HeartbeaterOption) (*Heartbeater, error) {
	if pub == nil {
		return nil, errors.New("bus: NewHeartbeater needs a publisher")
	}
	if source == "" {
		return nil, errors.New("bus: NewHeartbeater needs a source")
	}
	if beat.Instance == "" {
		return nil, errors.New("bus: NewHeartbeater needs an instance id")
	}
	h := &Heartbeater{pub: pub, source: source, beat: beat, interval: DefaultHeartbeatInterval}
	for _, o := range opts {
		o(h)
	}
	if h.interval <= 0 {
		return nil, errors.New("bus: heartbeat interval must be positive")
	}
	return h, nil
}

// Beat publishes one heartbeat now and returns the publish error, if any.
func (h *Heartbeater) Beat(ctx context.Context) error {
	beat := h.beat
	e, err := events.New(events.NewID(), h.source, time.Now(), &beat)
	if err != nil {
		return err
	}
	_, err = h.pub.Publish(ctx, e)
	return err
}

// Run publishes a heartbeat at once and then every interval until ctx ends,
// and returns nil. A failed heartbeat goes to the error hook and never stops
// it; each attempt is bounded by the interval so a hung publish cannot delay
// the next.
func (h *Heartbeater) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		bctx, cancel := context.WithTimeout(ctx, h.interval)
		err := h.Beat(bctx)
		cancel()
		if err != nil && ctx.Err() == nil && h.onError != nil {
			h.onError(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
