package revoke

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Relay re-publishes outbox entries left behind by a crash between the store
// step and the PubAck, or by a NATS outage. Every service that revokes runs
// one; several relays at once are safe (de-duplication by event id).
type Relay struct {
	rev      *Revoker
	interval time.Duration
	// minAge leaves fresh entries to the request that wrote them.
	minAge time.Duration
	batch  int

	published prometheus.Counter
	failures  prometheus.Counter
	backlog   prometheus.Gauge
}

// NewRelay returns a relay that scans the outbox every interval.
func NewRelay(rev *Revoker, interval time.Duration, reg prometheus.Registerer) *Relay {
	if interval <= 0 {
		interval = time.Second
	}
	r := &Relay{rev: rev, interval: interval, minAge: interval, batch: 256,
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_outbox_relayed_total",
			Help: "Outbox events the relay published after their writer could not.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_outbox_relay_failures_total",
			Help: "Relay passes that could not publish or read the outbox.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valet_outbox_pending",
			Help: "Revocation events older than the relay interval still unpublished after the last relay pass (a lower bound while NATS is down).",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.published, r.failures, r.backlog)
	}
	return r
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.failures.Inc()
				r.rev.log.Warn("outbox relay pass incomplete", zap.Error(err))
			}
		}
	}
}

// Once publishes every entry older than the relay's minimum age, oldest
// first, and stops at the first failure (order is kept). It returns how many
// it published.
func (r *Relay) Once(ctx context.Context) (int, error) {
	n := 0
	for {
		entries, err := r.rev.store.PendingOutbox(ctx, r.rev.now().Add(-r.minAge), r.batch)
		if err != nil {
			return n, err
		}
		for i, e := range entries {
			if err := r.rev.Flush(ctx, e); err != nil {
				r.backlog.Set(float64(len(entries) - i))
				return n, err
			}
			n++
			r.published.Inc()
		}
		if len(entries) < r.batch {
			r.backlog.Set(0)
			return n, nil
		}
	}
}
