package edge

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// Backoff before a stale stream is followed again by a new consumer.
const (
	minRestartWait = time.Second
	maxRestartWait = time.Minute
)

// run is one bus.Consumer's lifetime on a stream, and what Verify reads to
// decide whether the projection it feeds is current.
type run struct {
	c *bus.Consumer
	// ready is set once the consumer caught up (nothing left to replay).
	ready atomic.Bool
	// stale is set when the consumer met an event it cannot apply.
	stale atomic.Bool
	// lastCurrent is when (edge clock, Unix nanoseconds) the consumer last
	// applied an event with nothing pending behind it: at that moment the
	// projection held every event the stream held. 0 means never.
	lastCurrent atomic.Int64
	// started is set by the applier once it applied this run's first
	// event; only the applier reads it.
	started bool
}

// follower keeps one stream's projection fed: it runs a bus.Consumer, and
// when that consumer turns stale (an event it cannot apply), it waits and
// follows again with a new consumer from the event it stopped at, so that a
// repaired stream (or an upgraded edge) recovers without a restart. Until the
// new consumer is current, Verify fails closed.
type follower struct {
	stream string
	js     bus.OrderedConsumers
	// start returns the start options of a consumer that has nothing
	// applied yet.
	start func() []bus.ConsumerOption
	// resume reports whether a new consumer resumes after the last event
	// applied (WithStartSequence) rather than from start again.
	resume bool
	apply  func(e events.Event, m bus.Meta, r *run)
	now    func() time.Time
	obs    *Observer

	state atomic.Pointer[run]
}

// loop follows the stream until ctx ends.
func (f *follower) loop(ctx context.Context) {
	opts := f.start()
	wait := minRestartWait
	for {
		r := &run{}
		hook := func(err error) {
			if f.obs.OnStreamError != nil {
				f.obs.OnStreamError(f.stream, err)
			}
		}
		h := func(_ context.Context, e events.Event, m bus.Meta) error {
			f.apply(e, m, r)
			if m.Pending == 0 {
				r.lastCurrent.Store(f.now().UnixNano())
				r.ready.Store(true)
			}
			return nil
		}
		c, err := bus.NewConsumer(f.js, f.stream, h, append(opts, bus.WithConsumeErrorHook(hook))...)
		if err != nil {
			// Only a programming error gets here (New validated the
			// options); stay stale and say why.
			r.stale.Store(true)
			f.state.Store(r)
			hook(err)
			return
		}
		r.c = c
		f.state.Store(r)
		done := make(chan struct{})
		go func() {
			select {
			case <-c.Ready():
				r.ready.Store(true)
			case <-done:
			}
		}()
		runErr := c.Run(ctx)
		close(done)
		if ctx.Err() != nil {
			return
		}
		// Run returns before ctx ends only when the consumer is stale; the
		// hook already reported why.
		_ = runErr
		r.stale.Store(true)
		if pos := c.Position(); f.resume && pos.Seq > 0 {
			opts = []bus.ConsumerOption{bus.WithStartSequence(pos.Seq + 1)}
		} else {
			opts = f.start()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRestartWait)
	}
}

// StreamStatus is one stream consumer's progress, for readiness probes,
// metrics and the stale runbook.
type StreamStatus struct {
	// Stream is the JetStream stream name.
	Stream string
	// Current is true when this stream does not hold the edge back.
	Current bool
	// CaughtUp is true once the initial replay is done.
	CaughtUp bool
	// Stale is true when the consumer met an event it cannot apply; Err
	// says which. The edge follows again after a backoff.
	Stale bool
	// Err is the stale error, or nil.
	Err error
	// Seq is the stream sequence of the last event applied.
	Seq uint64
	// Applied counts the events the current consumer applied.
	Applied uint64
	// Pending is how many events the stream held beyond the last applied,
	// as of its delivery.
	Pending uint64
	// LastEvent is the envelope time of the last event applied, and Lag is
	// now minus it.
	LastEvent time.Time
	Lag       time.Duration
	// LastHeartbeat is the envelope time of the last heartbeat applied, and
	// HeartbeatAge is now minus it (revocation stream only).
	LastHeartbeat time.Time
	HeartbeatAge  time.Duration
	// LastCurrent is when (edge clock) the consumer last applied an event
	// with nothing pending behind it; the edge is stale once it is older
	// than the staleness bound (revocation stream only).
	LastCurrent time.Time
}

func (f *follower) status(now time.Time) StreamStatus {
	st := StreamStatus{Stream: f.stream}
	r := f.state.Load()
	if r == nil {
		return st
	}
	st.CaughtUp = r.ready.Load()
	st.Stale = r.stale.Load()
	if lc := r.lastCurrent.Load(); lc != 0 {
		st.LastCurrent = time.Unix(0, lc)
	}
	if r.c == nil {
		return st
	}
	p := r.c.Position()
	st.Err = p.Err
	st.Seq, st.Applied, st.Pending = p.Seq, p.Applied, p.Pending
	if !p.EventTime.IsZero() {
		st.LastEvent, st.Lag = p.EventTime, now.Sub(p.EventTime)
	}
	if !p.Heartbeat.IsZero() {
		st.LastHeartbeat, st.HeartbeatAge = p.Heartbeat, now.Sub(p.Heartbeat)
	}
	return st
}
