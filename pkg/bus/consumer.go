package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
)

// Consumer defaults.
const (
	// DefaultPullBatch is how many messages one pull request asks for: large
	// enough that a replay of a million events is not bound by round trips.
	DefaultPullBatch = 2048
	// DefaultPullMaxBytes caps the bytes one pull request may bring, which
	// bounds the consumer's buffer whatever the events' size. It must stay
	// above a stream's MaxMsgSize.
	DefaultPullMaxBytes = 8 << 20
)

// Backoff between attempts to (re)open the server-side consumer.
const (
	minReopenWait = 100 * time.Millisecond
	maxReopenWait = 5 * time.Second
)

// OrderedConsumers is the part of jetstream.JetStream a Consumer calls.
type OrderedConsumers interface {
	OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error)
}

var _ OrderedConsumers = jetstream.JetStream(nil)

// Handler applies one event to a projection. It is called from one goroutine
// at a time, in stream order, at most once per stream sequence. An error is
// terminal: the Consumer turns stale rather than skip the event, so a handler
// that can fail transiently retries inside itself (within ctx).
type Handler func(ctx context.Context, e events.Event, m Meta) error

// Meta is where an event sits in its stream.
type Meta struct {
	// Subject is the subject the event was published on.
	Subject string
	// Seq is its stream sequence.
	Seq uint64
	// Pending is how many events after it the stream held for this
	// consumer when it was delivered; 0 means the consumer is caught up.
	Pending uint64
	// Published is when the stream stored it.
	Published time.Time
}

// Position is a consumer's progress, for readiness, staleness checks and
// metrics. The zero value is a consumer that has applied nothing.
type Position struct {
	// Stream is the stream consumed.
	Stream string
	// Seq is the stream sequence of the last event applied.
	Seq uint64
	// Applied counts the events applied since the Consumer was built.
	Applied uint64
	// EventTime is the envelope time of the last event applied; the lag of
	// a projection behind the state changes it reflects.
	EventTime time.Time
	// Published is when the stream stored the last event applied.
	Published time.Time
	// Heartbeat is the envelope time of the last heartbeat applied.
	Heartbeat time.Time
	// HeartbeatApplied is the local time that heartbeat was applied.
	HeartbeatApplied time.Time
	// Pending is how many events the stream held beyond the last one
	// applied, as of its delivery (or of the consumer's creation).
	Pending uint64
	// CaughtUp is true once the initial replay is done: an event with
	// nothing pending behind it was applied, or there was nothing to replay.
	CaughtUp bool
	// Stale is true once the consumer met an event it could not apply; it
	// applies nothing more. Err says which and why.
	Stale bool
	// Err is the stale error (wrapping ErrStale), or nil.
	Err error
}

// Current reports whether a projection at p may be trusted at now: not stale,
// caught up, and the last heartbeat applied (envelope time) no older than
// bound. A consumer cut off from the stream stops applying heartbeats and so
// stops being current within bound, which is how an edge fails closed.
func (p Position) Current(now time.Time, bound time.Duration) bool {
	return !p.Stale && p.CaughtUp && !p.Heartbeat.IsZero() && now.Sub(p.Heartbeat) <= bound
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	deliver   jetstream.DeliverPolicy
	startTime time.Time
	startSeq  uint64
	filters   []string
	batch     int
	maxBytes  int
	decoders  int
	onError   func(error)
}

// WithStartTime replays from the first event the stream stored at or after t
// (a revocation consumer starts at now minus the maximum token lifetime).
func WithStartTime(t time.Time) ConsumerOption {
	return func(c *consumerConfig) { c.deliver, c.startTime = jetstream.DeliverByStartTimePolicy, t }
}

// WithStartSequence replays from stream sequence seq, for a consumer that
// restores a snapshot taken at seq-1.
func WithStartSequence(seq uint64) ConsumerOption {
	return func(c *consumerConfig) { c.deliver, c.startSeq = jetstream.DeliverByStartSequencePolicy, seq }
}

// WithLastPerSubject replays only the latest event of each subject — every
// kid's current state on the key stream — and then follows live.
func WithLastPerSubject() ConsumerOption {
	return func(c *consumerConfig) { c.deliver = jetstream.DeliverLastPerSubjectPolicy }
}

// WithFilterSubjects limits the consumer to events on subjects (wildcards
// allowed), e.g. events.StreamSubjects of a subset.
func WithFilterSubjects(subjects ...string) ConsumerOption {
	return func(c *consumerConfig) { c.filters = append([]string(nil), subjects...) }
}

// WithPullBatch sets how many messages, and at most how many bytes, one pull
// request brings. Defaults DefaultPullBatch and DefaultPullMaxBytes.
func WithPullBatch(msgs, maxBytes int) ConsumerOption {
	return func(c *consumerConfig) { c.batch, c.maxBytes = msgs, maxBytes }
}

// WithDecoders sets how many goroutines decode events ahead of the one
// goroutine that applies them in order; decoding is most of a replay's cost.
// Default GOMAXPROCS.
func WithDecoders(n int) ConsumerOption {
	return func(c *consumerConfig) { c.decoders = n }
}

// WithConsumeErrorHook sets a func told about every error the consumer meets:
// transient ones it recovers from (reconnects, re-creating its server-side
// consumer) and the stale error. It must not block.
func WithConsumeErrorHook(fn func(error)) ConsumerOption {
	return func(c *consumerConfig) { c.onError = fn }
}

// Consumer applies a stream's events to a Handler in order: it replays from
// its start, then follows live, and across reconnects and server restarts
// resumes after the last event applied — none lost, none applied twice.
type Consumer struct {
	js      OrderedConsumers
	stream  string
	handler Handler
	cfg     consumerConfig

	running   atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once

	// applyMu is held while an event is applied; it guards lastSeq and the
	// stopped flag of each session.
	applyMu sync.Mutex
	lastSeq uint64

	posMu sync.Mutex
	pos   Position
}

// NewConsumer returns a Consumer of stream (see StreamName) applying events
// to h, or an error for a missing argument or invalid option. It does no I/O
// until Run.
func NewConsumer(js OrderedConsumers, stream string, h Handler, opts ...ConsumerOption) (*Consumer, error) {
	if js == nil {
		return nil, errors.New("bus: NewConsumer needs a JetStream")
	}
	if stream == "" {
		return nil, errors.New("bus: NewConsumer needs a stream name")
	}
	if h == nil {
		return nil, errors.New("bus: NewConsumer needs a handler")
	}
	cfg := consumerConfig{
		deliver:  jetstream.DeliverAllPolicy,
		batch:    DefaultPullBatch,
		maxBytes: DefaultPullMaxBytes,
		decoders: runtime.GOMAXPROCS(0),
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.deliver == jetstream.DeliverByStartTimePolicy && cfg.startTime.IsZero():
		return nil, errors.New("bus: WithStartTime needs a time")
	case cfg.deliver == jetstream.DeliverByStartSequencePolicy && cfg.startSeq == 0:
		return nil, errors.New("bus: WithStartSequence needs a sequence of 1 or more")
	case cfg.decoders < 1:
		return nil, errors.New("bus: at least one decoder")
	case cfg.batch < 1:
		return nil, errors.New("bus: pull batch must be at least 1 message")
	case cfg.maxBytes <= events.MaxEventBytes+headerAllowance:
		return nil, fmt.Errorf("bus: pull max bytes must exceed the largest message (%d bytes)", events.MaxEventBytes+headerAllowance)
	}
	for _, f := range cfg.filters {
		if f == "" {
			return nil, errors.New("bus: empty filter subject")
		}
	}
	return &Consumer{
		js:      js,
		stream:  stream,
		handler: h,
		cfg:     cfg,
		ready:   make(chan struct{}),
		pos:     Position{Stream: stream},
	}, nil
}

// Ready returns a channel closed once the initial replay is done
// (Position().CaughtUp). A consumer that turns stale before that never closes
// it: wait on it together with Run's return.
func (c *Consumer) Ready() <-chan struct{} { return c.ready }

// Position returns the consumer's progress. It is safe to call concurrently
// with Run, and cheap enough for a request path.
func (c *Consumer) Position() Position {
	c.posMu.Lock()
	defer c.posMu.Unlock()
	return c.pos
}

// Run consumes until ctx ends, then returns nil, or until the consumer turns
// stale, then returns the stale error (wrapping ErrStale). Transient failures
// — NATS down, the server restarting — never end it: it reports them to the
// error hook and resumes after the last event applied. Run may be called
// again after it returned nil, and resumes where it stopped; a stale consumer
// stays stale. It returns an error at once if called while running.
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("bus: Consumer.Run is already running")
	}
	defer c.running.Store(false)
	wait := minReopenWait
	for {
		if err := c.staleErr(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		before := c.Position().Applied
		err := c.session(ctx)
		if err == nil || ctx.Err() != nil {
			continue
		}
		if errors.Is(err, ErrStale) {
			return err
		}
		c.report(err)
		if c.Position().Applied != before {
			wait = minReopenWait
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, maxReopenWait)
	}
}

// errSessionEnded says the ordered consumer stopped; Run opens a new one.
var errSessionEnded = errors.New("ordered consumer closed")

// session opens an ordered consumer where the last one left off and applies
// its messages until ctx ends (nil), the consumer turns stale (the stale
// error) or the ordered consumer fails or ends (another error).
func (c *Consumer) session(ctx context.Context) error {
	cons, err := c.js.OrderedConsumer(ctx, c.stream, c.orderedConfig())
	if err != nil {
		return classify("open consumer on "+c.stream, err)
	}
	if info := cons.CachedInfo(); info != nil {
		c.noteStart(info.NumPending)
	}
	p := newPipeline(c.cfg.decoders)
	defer p.stop()
	// Any error the ordered consumer meets ends the session: the next one
	// opens a new ordered consumer after the last event applied, so that
	// recovery never depends on the ordered consumer's own.
	onErr := func(_ jetstream.ConsumeContext, err error) {
		p.fail(err)
	}
	// The NATS client hands messages to receive on its own delivery
	// goroutine; each pull request brings at most batch messages or
	// maxBytes bytes.
	cc, err := cons.Consume(p.receive,
		jetstream.PullMaxMessagesWithBytesLimit(c.cfg.batch, c.cfg.maxBytes),
		jetstream.ConsumeErrHandler(onErr))
	if err != nil {
		return classify("consume "+c.stream, err)
	}
	for range c.cfg.decoders {
		go p.decode()
	}
	s := &session{}
	done := make(chan error, 1)
	go func() { done <- c.applyInOrder(ctx, p, s) }()
	var result error
	select {
	case result = <-done:
		// Stale, or stopped by ctx within the handler: nothing more is
		// applied.
	case <-ctx.Done():
	case err := <-p.failed:
		// What was delivered but not applied is delivered again to the
		// next session, which resumes after the last event applied.
		result = classify("consume "+c.stream, err)
	case <-cc.Closed():
		result = classify("consume "+c.stream, errSessionEnded)
	}
	// The applier stops at the next event once the pipeline is stopped,
	// so applyMu is not held long.
	p.stop()
	c.applyMu.Lock()
	s.stopped = true
	c.applyMu.Unlock()
	// Stop waits while the ordered consumer re-creates its server-side
	// consumer (up to its retry interval when NATS is down); nothing is
	// applied after this point, so Run need not wait for it.
	go cc.Stop()
	return result
}

// session is one ordered consumer's lifetime; stopped is guarded by applyMu.
type session struct{ stopped bool }

// orderedConfig starts after the last event applied, or at the configured
// start when nothing was applied yet.
func (c *Consumer) orderedConfig() jetstream.OrderedConsumerConfig {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: c.cfg.filters,
		DeliverPolicy:  c.cfg.deliver,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
	}
	c.applyMu.Lock()
	last := c.lastSeq
	c.applyMu.Unlock()
	switch {
	case last > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = last + 1
	case c.cfg.deliver == jetstream.DeliverByStartTimePolicy:
		t := c.cfg.startTime
		cfg.OptStartTime = &t
	case c.cfg.deliver == jetstream.DeliverByStartSequencePolicy:
		cfg.OptStartSeq = c.cfg.startSeq
	}
	return cfg
}

// applyInOrder applies decoded batches in stream order until the session
// stops (nil) or the consumer turns stale (the stale error).
func (c *Consumer) applyInOrder(ctx context.Context, p *pipeline, s *session) error {
	for {
		b := p.next()
		if b == nil {
			return nil
		}
		stop, err := c.applyBatch(ctx, p, s, b)
		p.recycle(b)
		if stop {
			return err
		}
	}
}

// applyBatch hands a batch of decoded messages to the handler, holding
// applyMu for the batch rather than taking it for every event. It returns
// stop when the session must end: the session or its pipeline was stopped
// (nil error) or the consumer turned stale (the stale error).
func (c *Consumer) applyBatch(ctx context.Context, p *pipeline, s *session, b *batch) (stop bool, err error) {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	for i := range b.jobs {
		if p.stopped.Load() {
			// The session is ending: what is left is applied by the
			// next one.
			return true, nil
		}
		if stop, err := c.apply(ctx, s, &b.jobs[i]); stop {
			return true, err
		}
	}
	return false, nil
}

// apply hands one decoded message to the handler; applyMu is held. It
// returns stop as applyBatch does.
func (c *Consumer) apply(ctx context.Context, s *session, j *job) (stop bool, err error) {
	if s.stopped {
		return true, nil
	}
	if j.metaErr != nil {
		// Not a stream message; the ordered consumer re-synchronises on
		// the next one.
		c.report(fmt.Errorf("bus: consume %s: %w", c.stream, j.metaErr))
		return false, nil
	}
	if j.meta.Seq <= c.lastSeq {
		// A redelivery after a reset: already applied.
		return false, nil
	}
	if j.err != nil {
		return true, c.markStale(j.meta, fmt.Errorf("decode: %w", j.err))
	}
	if err := c.handler(ctx, j.ev, j.meta); err != nil {
		if ctx.Err() != nil {
			// Shutting down: not applied, and the next Run starts here.
			return true, nil
		}
		return true, c.markStale(j.meta, fmt.Errorf("handler: %w", err))
	}
	c.lastSeq = j.meta.Seq
	c.advance(j.ev, j.meta)
	return false, nil
}

// advance records e as applied.
func (c *Consumer) advance(e events.Event, m Meta) {
	c.posMu.Lock()
	c.pos.Seq = m.Seq
	c.pos.Applied++
	c.pos.EventTime = e.Time
	c.pos.Published = m.Published
	c.pos.Pending = m.Pending
	if e.Type == events.TypeHeartbeat {
		c.pos.Heartbeat = e.Time
		c.pos.HeartbeatApplied = time.Now()
	}
	caughtUp := !c.pos.CaughtUp && m.Pending == 0
	if caughtUp {
		c.pos.CaughtUp = true
	}
	c.posMu.Unlock()
	if caughtUp {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

// noteStart records the pending count of a freshly opened consumer; with
// nothing to replay, the consumer is caught up at once.
func (c *Consumer) noteStart(pending uint64) {
	c.posMu.Lock()
	c.pos.Pending = pending
	caughtUp := !c.pos.CaughtUp && pending == 0
	if caughtUp {
		c.pos.CaughtUp = true
	}
	c.posMu.Unlock()
	if caughtUp {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

// markStale records why the event at m cannot be applied and returns the
// stale error.
func (c *Consumer) markStale(m Meta, cause error) error {
	err := &staleError{stream: c.stream, meta: m, cause: cause}
	c.posMu.Lock()
	c.pos.Stale = true
	c.pos.Err = err
	c.posMu.Unlock()
	c.report(err)
	return err
}

func (c *Consumer) staleErr() error {
	c.posMu.Lock()
	defer c.posMu.Unlock()
	return c.pos.Err
}

func (c *Consumer) report(err error) {
	if c.cfg.onError != nil {
		c.cfg.onError(err)
	}
}

// staleError names the event a consumer stopped at.
type staleError struct {
	stream string
	meta   Meta
	cause  error
}

func (e *staleError) Error() string {
	return fmt.Sprintf("bus: consumer of %s stale at seq %d (%s): %v", e.stream, e.meta.Seq, e.meta.Subject, e.cause)
}

func (e *staleError) Unwrap() []error { return []error{ErrStale, e.cause} }
