package bus

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
)

// Messages travel from the NATS client to the handler in batches, so that a
// replay pays each hand-off between goroutines once per batch rather than
// once per event.
const (
	// batchSize is the most messages one batch carries.
	batchSize = 64
	// minBatches and maxBatches bound the batches a pipeline owns (two per
	// decoder, plus the one being filled and the one being applied). With
	// the pull buffer they bound a consumer's memory: at most
	// maxBatches × batchSize = 512 messages are held ahead of the one
	// being applied, whatever the number of cores.
	minBatches = 4
	maxBatches = 8
	// flushAfter bounds how long a message may wait in a batch that is not
	// full. A batch is sent on at once when its last message has nothing
	// pending behind it, which is every live event; this only covers a
	// stream whose pending count overstated what was left (messages
	// deleted meanwhile).
	flushAfter = 2 * time.Millisecond
)

// job is one message on its way from the NATS client to the handler.
type job struct {
	msg     jetstream.Msg
	meta    Meta
	metaErr error
	ev      events.Event
	err     error
}

// batch is a run of consecutive messages. Batches are recycled, so a steady
// replay allocates none of them.
type batch struct {
	jobs []job
	// ready receives one token when every job is decoded.
	ready chan struct{}
}

// pipeline decodes messages on several goroutines and hands them to one
// applier in the order they were delivered. The NATS client calls receive
// with each message, in stream order; receive adds it to a batch and sends
// each full batch (or one whose last message has nothing pending behind it)
// to the decoders (any order) and to ordered (stream order); the applier
// waits on each batch's ready in turn. No more batches exist than either
// channel holds, so neither send blocks, and none of the channels is ever
// closed: every goroutine ends on quit.
type pipeline struct {
	free    chan *batch
	work    chan *batch
	ordered chan *batch
	quit    chan struct{}
	// stopped is set when the pipeline stops: receive, the decoders and
	// the applier then drop what is left.
	stopped  atomic.Bool
	stopOnce sync.Once
	// failed receives the first reason the session must end while the
	// NATS client still delivers.
	failed chan error

	// mu guards what follows: receive runs on the NATS client's delivery
	// goroutines, the flush timer on its own.
	mu sync.Mutex
	// consumer is the server-side consumer whose messages the pipeline
	// takes; ended is set once another one delivered.
	consumer string
	ended    bool
	cur      *batch
	armed    bool
	timer    *time.Timer
}

func newPipeline(decoders int) *pipeline {
	n := min(max(minBatches, 2*decoders+2), maxBatches)
	p := &pipeline{
		free:    make(chan *batch, n),
		work:    make(chan *batch, n),
		ordered: make(chan *batch, n),
		quit:    make(chan struct{}),
		failed:  make(chan error, 1),
	}
	for range n {
		p.free <- &batch{jobs: make([]job, 0, batchSize), ready: make(chan struct{}, 1)}
	}
	p.timer = time.AfterFunc(time.Hour, p.flushLate)
	p.timer.Stop()
	return p
}

// stop ends the pipeline: receive drops what it is handed, decoders skip
// what is left, and every goroutine returns. It is safe to call more than
// once.
func (p *pipeline) stop() {
	p.stopOnce.Do(func() {
		p.stopped.Store(true)
		close(p.quit)
		p.timer.Stop()
	})
}

// errConsumerReset ends a session whose ordered consumer re-created its
// server-side consumer.
var errConsumerReset = errors.New("ordered consumer re-created its server-side consumer")

// fail ends the session with err unless it is ending already. It never
// blocks.
func (p *pipeline) fail(err error) {
	select {
	case p.failed <- err:
	default:
	}
}

// receive is the ordered consumer's message handler. It reads the
// message's stream metadata and adds it to the batch being filled, waiting
// for a free batch when the applier is behind (which holds back the NATS
// client, and so the pull requests).
//
// It takes the messages of one server-side consumer only. nats.go calls
// the handler from one goroutine per server-side consumer, and advances the
// ordered consumer's position before the call: when it re-creates its
// server-side consumer (after a reconnect or a missed heartbeat), the first
// message of the new one may reach receive before the last message of the
// old one, which would then be skipped as already applied. So the first
// message of another consumer ends the session instead, and the next one
// resumes after the last event applied: in order, none lost.
func (p *pipeline) receive(msg jetstream.Msg) {
	if p.stopped.Load() {
		// A message still in the NATS client's buffer after the session
		// ended.
		return
	}
	j := job{msg: msg}
	var consumer string
	j.meta, consumer, j.metaErr = metaOf(msg)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	if j.metaErr == nil {
		switch {
		case p.consumer == "":
			p.consumer = consumer
		case consumer != p.consumer:
			p.ended = true
			p.fail(errConsumerReset)
			return
		}
	}
	if p.cur == nil {
		select {
		case p.cur = <-p.free:
		case <-p.quit:
			return
		}
	}
	p.cur.jobs = append(p.cur.jobs, j)
	switch {
	case len(p.cur.jobs) == cap(p.cur.jobs) || j.metaErr != nil || j.meta.Pending == 0:
		p.flushLocked()
	case !p.armed:
		p.armed = true
		p.timer.Reset(flushAfter)
	}
}

// flushLate sends on a batch that waited flushAfter without filling up.
func (p *pipeline) flushLate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.cur != nil && len(p.cur.jobs) > 0 {
		p.flushLocked()
	}
}

// flushLocked sends the batch being filled to the decoders and the applier.
// Neither send blocks: no more batches exist than either channel holds.
func (p *pipeline) flushLocked() {
	b := p.cur
	p.cur = nil
	p.work <- b
	p.ordered <- b
}

// recycle returns an applied batch to the pool.
func (p *pipeline) recycle(b *batch) {
	clear(b.jobs)
	b.jobs = b.jobs[:0]
	p.free <- b
}

// next returns the next batch in stream order, decoded, or nil once the
// pipeline stopped.
func (p *pipeline) next() *batch {
	select {
	case b := <-p.ordered:
		select {
		case <-b.ready:
			return b
		case <-p.quit:
			return nil
		}
	case <-p.quit:
		return nil
	}
}

// decode decodes batches until the pipeline stops; once it is stopped it
// only marks them ready.
func (p *pipeline) decode() {
	for {
		select {
		case b := <-p.work:
			if !p.stopped.Load() {
				for i := range b.jobs {
					j := &b.jobs[i]
					if j.metaErr == nil {
						j.ev, j.err = events.Decode(j.msg.Data())
					}
				}
			}
			b.ready <- struct{}{}
		case <-p.quit:
			return
		}
	}
}
