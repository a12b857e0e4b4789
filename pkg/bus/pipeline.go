package bus

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
)

// pipelineDepth is how many messages may be read ahead of the one being
// applied; with the pull buffer it bounds a consumer's memory.
const pipelineDepth = 512

// job is one message on its way from the iterator to the handler. Jobs are
// recycled, so a steady replay allocates none of them.
type job struct {
	msg     jetstream.Msg
	meta    Meta
	metaErr error
	ev      events.Event
	err     error
	// ready receives one token when the job is decoded.
	ready chan struct{}
}

// pipeline decodes messages on several goroutines and hands them to one
// applier in the order they were read: a reader sends each job to the
// decoders (any order) and to ordered (stream order); the applier waits on
// each job's ready in turn. The reader alone sends on work and ordered and
// closes both when it ends, so the hot path needs no select.
type pipeline struct {
	free    chan *job
	work    chan *job
	ordered chan *job
	// readErr is why the reader ended, nil when stopped; it is written
	// before ordered is closed.
	readErr  error
	quit     chan struct{}
	stopped  atomic.Bool
	stopOnce sync.Once
}

func newPipeline(decoders int) *pipeline {
	depth := max(pipelineDepth, 2*decoders)
	p := &pipeline{
		free:    make(chan *job, depth),
		work:    make(chan *job, depth),
		ordered: make(chan *job, depth),
		quit:    make(chan struct{}),
	}
	for range depth {
		p.free <- &job{ready: make(chan struct{}, 1)}
	}
	return p
}

// stop ends the reader and makes decoders skip what is left; it is safe to
// call more than once.
func (p *pipeline) stop() {
	p.stopOnce.Do(func() {
		p.stopped.Store(true)
		close(p.quit)
	})
}

// recycle returns an applied job to the pool.
func (p *pipeline) recycle(j *job) {
	*j = job{ready: j.ready}
	p.free <- j
}

// read feeds messages from it into the pipeline until it ends or the
// pipeline stops. Only this goroutine calls it.Next, as the ordered consumer
// requires.
func (p *pipeline) read(it jetstream.MessagesContext) {
	defer close(p.work)
	defer close(p.ordered)
	for {
		var j *job
		select {
		case j = <-p.free:
		case <-p.quit:
			return
		}
		msg, err := it.Next()
		if err != nil {
			if !p.stopped.Load() {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					err = errSessionEnded
				}
				p.readErr = fmt.Errorf("bus: consume: %w", err)
			}
			return
		}
		j.msg = msg
		// Neither send blocks: no more jobs exist than either channel
		// holds.
		p.work <- j
		p.ordered <- j
	}
}

// next returns the next job in stream order, decoded, or nil and the
// reader's error once the reader ended.
func (p *pipeline) next() (*job, error) {
	j, ok := <-p.ordered
	if !ok {
		return nil, p.readErr
	}
	<-j.ready
	return j, nil
}

// decode decodes jobs until the reader ends; once the pipeline is stopped it
// only marks them ready.
func (p *pipeline) decode() {
	for j := range p.work {
		if !p.stopped.Load() {
			if md, err := j.msg.Metadata(); err != nil {
				j.metaErr = err
			} else {
				j.meta = Meta{Subject: j.msg.Subject(), Seq: md.Sequence.Stream, Pending: md.NumPending, Published: md.Timestamp}
				j.ev, j.err = events.Decode(j.msg.Data())
			}
		}
		j.ready <- struct{}{}
	}
}
