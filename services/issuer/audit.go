package issuer

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// AuditPublisher publishes a batch of events, pipelined, and returns nil
// once every one is durable ((*bus.Publisher).PublishBatch).
type AuditPublisher interface {
	PublishBatch(ctx context.Context, evs []events.Event) error
}

var _ AuditPublisher = (*bus.Publisher)(nil)

// Bounds of the audit queue.
const (
	// auditQueueLen is how many audit events may wait; beyond it they are
	// dropped and counted rather than slowing a token response.
	auditQueueLen = 4096
	// auditBatch is the most events one PublishBatch carries.
	auditBatch = 256
	// auditTimeout bounds one batch's acknowledgements.
	auditTimeout = 5 * time.Second
)

// auditQueue publishes family.created and family.rotated best effort, off
// the request path. One drainer goroutine, started on demand and gone when
// the queue is empty, sends what has accumulated as one pipelined batch:
// under load a rotation costs a channel send instead of a goroutine and a
// synchronous acknowledgement of its own. These events are an audit trail,
// not security state (revocations never go through here), so a full queue or
// a NATS error drops them and counts them.
type auditQueue struct {
	pub     AuditPublisher
	source  string
	now     func() time.Time
	dropped prometheus.Counter

	ch      chan events.Payload
	running atomic.Bool
}

func newAuditQueue(pub AuditPublisher, source string, now func() time.Time, dropped prometheus.Counter) *auditQueue {
	return &auditQueue{pub: pub, source: source, now: now, dropped: dropped, ch: make(chan events.Payload, auditQueueLen)}
}

// publish queues p; it never blocks.
func (q *auditQueue) publish(p events.Payload) {
	if q == nil || q.pub == nil {
		return
	}
	select {
	case q.ch <- p:
	default:
		q.dropped.Inc()
		return
	}
	if q.running.CompareAndSwap(false, true) {
		go q.drain()
	}
}

// drain publishes batches until the queue is empty. A publish racing the
// end of the drain either sees running still true (and its event is found
// by the re-check below) or starts a new drainer.
func (q *auditQueue) drain() {
	batch := make([]events.Event, 0, auditBatch)
	for {
		batch = batch[:0]
	collect:
		for len(batch) < auditBatch {
			select {
			case p := <-q.ch:
				e, err := events.New(events.NewID(), q.source, q.now(), p)
				if err != nil {
					q.dropped.Inc()
					continue
				}
				batch = append(batch, e)
			default:
				break collect
			}
		}
		if len(batch) == 0 {
			q.running.Store(false)
			if len(q.ch) == 0 || !q.running.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), auditTimeout)
		if err := q.pub.PublishBatch(ctx, batch); err != nil {
			// Some of the batch may be stored; which is unknown, so all of
			// it counts as dropped (the counter is an upper bound).
			q.dropped.Add(float64(len(batch)))
		}
		cancel()
	}
}
