package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
)

// Publisher defaults.
const (
	// DefaultAckTimeout bounds a publish whose ctx has no deadline, and each
	// wait for the next acknowledgement in PublishBatch.
	DefaultAckTimeout = 5 * time.Second
	// DefaultBatchWindow is how many PublishBatch messages may await their
	// acknowledgement at once. It stays below nats.go's default
	// PublishAsyncMaxPending (4000) so a batch never stalls on it.
	DefaultBatchWindow = 2048
)

// AckPublisher is the part of jetstream.Publisher the Publisher calls: a
// synchronous publish that waits for the PubAck, and an asynchronous one for
// batches.
type AckPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

var _ AckPublisher = jetstream.Publisher(nil)

// PubAck is the stream's acknowledgement of a published event: once a caller
// has it, the event is durable in Stream at Sequence.
type PubAck struct {
	// Stream is the stream that stored the event.
	Stream string
	// Sequence is the event's stream sequence (the original one for a
	// duplicate).
	Sequence uint64
	// Duplicate is true when the stream already held an event with this id
	// within its de-duplication window and did not store it again.
	Duplicate bool
}

// PublishObserver is told the outcome of every event published, for metrics
// and logs without a dependency on either: took runs from sending to the
// acknowledgement (or the failure); err is nil on success.
type PublishObserver func(t events.Type, took time.Duration, err error)

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithAckTimeout bounds a Publish whose ctx has no deadline, and each wait
// for an acknowledgement in PublishBatch. Default DefaultAckTimeout.
func WithAckTimeout(d time.Duration) PublisherOption {
	return func(p *Publisher) { p.ackTimeout = d }
}

// WithBatchWindow sets how many PublishBatch messages may be unacknowledged
// at once. Keep it at or below the JetStream context's
// PublishAsyncMaxPending. Default DefaultBatchWindow.
func WithBatchWindow(n int) PublisherOption {
	return func(p *Publisher) { p.window = n }
}

// WithPublishObserver sets the observer told about every published event.
func WithPublishObserver(o PublishObserver) PublisherOption {
	return func(p *Publisher) { p.observe = o }
}

// Publisher publishes events on their stream's subject with their id as
// Nats-Msg-Id, and returns only once JetStream acknowledged them.
type Publisher struct {
	js         AckPublisher
	prefix     string
	streams    [3]string // by events.Stream - 1
	ackTimeout time.Duration
	window     int
	observe    PublishObserver
}

// NewPublisher returns a Publisher publishing under the subject prefix
// through js, or an error for an invalid prefix or option.
func NewPublisher(js AckPublisher, prefix string, opts ...PublisherOption) (*Publisher, error) {
	if js == nil {
		return nil, errors.New("bus: NewPublisher needs a JetStream publisher")
	}
	if !validToken(prefix) {
		return nil, fmt.Errorf("bus: subject prefix %q must be one token of [A-Za-z0-9_-]", prefix)
	}
	p := &Publisher{js: js, prefix: prefix, ackTimeout: DefaultAckTimeout, window: DefaultBatchWindow}
	for _, o := range opts {
		o(p)
	}
	if p.ackTimeout <= 0 {
		return nil, errors.New("bus: ack timeout must be positive")
	}
	if p.window < 1 {
		return nil, errors.New("bus: batch window must be at least 1")
	}
	for _, s := range []events.Stream{events.StreamRevocations, events.StreamKeys, events.StreamAudit} {
		p.streams[s-1] = StreamName(prefix, s)
	}
	return p, nil
}

// message encodes e for publishing and returns the stream that must store
// it. It refuses, without ErrUnavailable, an event that every consumer would
// refuse — one such event on the stream would make every edge stale: Encode
// decodes its own output and fails rather than return bytes Decode rejects.
//
// The message carries one header, Nats-Msg-Id. The stream that stored it is
// checked on the acknowledgement rather than with Nats-Expected-Stream: that
// header would be stored with, and parsed again for, every event of every
// replay.
func (p *Publisher) message(e events.Event) (*nats.Msg, string, error) {
	data, err := e.Encode()
	if err != nil {
		return nil, "", fmt.Errorf("bus: publish %s: %w", e.Type, err)
	}
	wire := e
	if events.StreamOf(e.Type) == events.StreamKeys {
		// The key stream keeps the latest event per kid subject: take the
		// kid from the bytes published, not from a Payload that may have
		// been edited after New.
		if wire, err = events.Decode(data); err != nil {
			return nil, "", fmt.Errorf("bus: publish %s: %w", e.Type, err)
		}
	}
	subject, err := events.Subject(p.prefix, wire)
	if err != nil {
		return nil, "", fmt.Errorf("bus: publish %s: %w", e.Type, err)
	}
	stream := events.StreamOf(e.Type)
	if stream < 1 || int(stream) > len(p.streams) {
		return nil, "", fmt.Errorf("bus: publish %s: %w: no stream", e.Type, events.ErrUnknownType)
	}
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{e.ID}}}
	return m, p.streams[stream-1], nil
}

// checkStream returns an error when ack shows the event went to another
// stream than want: a subject captured by a foreign stream is a
// configuration error, never a place a revocation may be acknowledged from.
func checkStream(t events.Type, ack *jetstream.PubAck, want string) error {
	if ack.Stream != want {
		return fmt.Errorf("bus: publish %s: stored in stream %q, want %q: check the stream configuration", t, ack.Stream, want)
	}
	return nil
}

// bound applies the ack timeout to a ctx without deadline.
func (p *Publisher) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, p.ackTimeout)
}

func (p *Publisher) observed(t events.Type, took time.Duration, err error) {
	if p.observe != nil {
		p.observe(t, took, err)
	}
}

// Publish publishes e and returns the stream's acknowledgement once e is
// durable. A duplicate (same id within the window) is a success with
// Duplicate set. Errors matching ErrUnavailable mean durability is unknown
// and the caller should answer 503; any other error means e itself is unfit
// (invalid, too large, or its subject is not in the expected stream).
func (p *Publisher) Publish(ctx context.Context, e events.Event) (PubAck, error) {
	m, stream, err := p.message(e)
	if err != nil {
		p.observed(e.Type, 0, err)
		return PubAck{}, err
	}
	ctx, cancel := p.bound(ctx)
	defer cancel()
	start := time.Now()
	ack, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		err = classify("publish "+string(e.Type), err)
	} else {
		err = checkStream(e.Type, ack, stream)
	}
	p.observed(e.Type, time.Since(start), err)
	if err != nil {
		return PubAck{}, err
	}
	return PubAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// inflight is one PublishBatch message awaiting its acknowledgement.
type inflight struct {
	f      jetstream.PubAckFuture
	t      events.Type
	stream string
	sent   time.Time
}

// PublishBatch publishes evs pipelined — up to the batch window await their
// acknowledgement at once — and returns nil only when every one of them is
// durable. On the first failure it stops sending and returns that error
// (ErrUnavailable for a transient one); some events may already be stored,
// and publishing the whole batch again is safe because ids de-duplicate.
// Within a batch, a retried message may be stored out of order.
func (p *Publisher) PublishBatch(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ring := make([]inflight, min(p.window, len(evs)))
	head, n := 0, 0
	timer := time.NewTimer(p.ackTimeout)
	defer timer.Stop()

	// await waits for the oldest message in flight.
	await := func() error {
		fl := ring[head]
		ring[head] = inflight{}
		head = (head + 1) % len(ring)
		n--
		timer.Reset(p.ackTimeout)
		var err error
		select {
		case ack := <-fl.f.Ok():
			if err := checkStream(fl.t, ack, fl.stream); err != nil {
				p.observed(fl.t, time.Since(fl.sent), err)
				return err
			}
		case err = <-fl.f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		case <-timer.C:
			err = jetstream.ErrAsyncPublishTimeout
		}
		if err != nil {
			err = classify("publish "+string(fl.t), err)
		}
		p.observed(fl.t, time.Since(fl.sent), err)
		return err
	}

	for _, e := range evs {
		if err := ctx.Err(); err != nil {
			return classify("publish batch", err)
		}
		m, stream, err := p.message(e)
		if err != nil {
			p.observed(e.Type, 0, err)
			return err
		}
		if n == len(ring) {
			if err := await(); err != nil {
				return err
			}
		}
		f, err := p.js.PublishMsgAsync(m)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && n > 0 {
			// Another user of the JetStream context filled its pending
			// limit: make room by waiting for one of ours.
			if err := await(); err != nil {
				return err
			}
			f, err = p.js.PublishMsgAsync(m)
		}
		if err != nil {
			err = classify("publish "+string(e.Type), err)
			p.observed(e.Type, 0, err)
			return err
		}
		ring[(head+n)%len(ring)] = inflight{f: f, t: e.Type, stream: stream, sent: time.Now()}
		n++
	}
	for n > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}
