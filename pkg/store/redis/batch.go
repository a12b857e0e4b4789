package redis

// The batcher coalesces the round trips of concurrent callers into
// pipelines: under load, one write and one read system call (on each side)
// carry many commands instead of one each, which on a small box is most of
// the cost of a short script (docs/redis.md, "Throughput").
//
// Unlike go-redis's AutoPipeliner, it honours each caller's context: a call
// whose context is done before its batch is written is dropped and answers
// ctx.Err(), so a canceled request sends nothing; a caller whose context ends
// while its batch is in flight gets ctx.Err() at once (the commands may
// still run, exactly as when a plain command is canceled mid-flight). Errors
// stay per command, so the store maps them as before (ErrUnavailable).

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// errClosed answers calls made after Close.
var errClosed = errors.New("redis store: closed")

const (
	// batchFlushers is how many batches may be in flight at once by
	// default: while one waits for Redis, the next fills up. More flushers
	// mean smaller batches and more CPU per operation on both sides
	// (measured: 1 and 2 cost the least, 8 about a third more; docs/redis.md).
	// Two suit scripts, whose run in Redis overlaps the next batch's
	// filling; a store that sends only cheap reads does better with one
	// (WithBatchFlushers).
	batchFlushers = 2
	// batchMaxCmds bounds one pipeline; a burst beyond it waits for the
	// next flush.
	batchMaxCmds = 512
)

// batcher sends groups of commands, each in one piece and in order, in
// shared pipelines.
type batcher struct {
	rdb   goredis.UniversalClient
	calls chan *batchCall // unbuffered: a call is taken only by a flusher ready for it
	quit  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// batchCall is one caller's group of commands.
type batchCall struct {
	ctx  context.Context
	cmds []goredis.Cmder
	err  error
	done chan struct{}
}

var callPool = sync.Pool{New: func() any { return &batchCall{done: make(chan struct{}, 1)} }}

func newBatcher(rdb goredis.UniversalClient, flushers int) *batcher {
	b := &batcher{rdb: rdb, calls: make(chan *batchCall), quit: make(chan struct{})}
	b.wg.Add(flushers)
	for range flushers {
		go b.flusher()
	}
	return b
}

// do sends cmds in the next batch and waits for their replies. It returns
// ctx.Err() when ctx ends first (before the batch is written, cmds are not
// sent), errClosed after close, and nil otherwise: each command then
// carries its own result.
func (b *batcher) do(ctx context.Context, cmds []goredis.Cmder) error {
	c := callPool.Get().(*batchCall)
	c.ctx, c.cmds, c.err = ctx, cmds, nil
	select {
	case b.calls <- c:
	case <-ctx.Done():
		c.release()
		return ctx.Err()
	case <-b.quit:
		c.release()
		return errClosed
	}
	select {
	case <-c.done:
		err := c.err
		c.release()
		return err
	case <-ctx.Done():
		// The flusher still owns c and will signal done, which is
		// buffered; c is left to the garbage collector.
		return ctx.Err()
	}
}

func (c *batchCall) release() {
	c.ctx, c.cmds, c.err = nil, nil, nil
	callPool.Put(c)
}

// flusher takes a call, adds every call already waiting up to batchMaxCmds,
// and sends them all in one pipeline.
func (b *batcher) flusher() {
	defer b.wg.Done()
	pipe := b.rdb.Pipeline()
	batch := make([]*batchCall, 0, 64)
	for {
		var c *batchCall
		select {
		case c = <-b.calls:
		case <-b.quit:
			return
		}
		batch = append(batch[:0], c)
		n := len(c.cmds)
	fill:
		for n < batchMaxCmds {
			select {
			case c = <-b.calls:
				batch = append(batch, c)
				n += len(c.cmds)
			default:
				break fill
			}
		}
		b.flush(pipe, batch)
	}
}

// flush drops the calls whose context is done and sends the others' commands
// in one pipeline. The pipeline runs under its own context: it serves many
// callers, and the client's read and write timeouts bound it.
func (b *batcher) flush(pipe goredis.Pipeliner, batch []*batchCall) {
	ctx := context.Background()
	live := batch[:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			c.done <- struct{}{}
			continue
		}
		for _, cmd := range c.cmds {
			_ = pipe.Process(ctx, cmd)
		}
		live = append(live, c)
	}
	if len(live) > 0 {
		_, _ = pipe.Exec(ctx)
	}
	for _, c := range live {
		c.done <- struct{}{}
	}
}

// close stops the flushers once their batches are answered; calls made
// after it get errClosed.
func (b *batcher) close() {
	b.once.Do(func() { close(b.quit) })
	b.wg.Wait()
}
