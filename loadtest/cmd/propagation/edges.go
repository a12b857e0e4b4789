package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/edge"
)

// phase is the set of tokens one measurement revokes, shared by every edge.
type phase struct {
	toks  []string
	index map[string]int // jti → index in toks
	// sent is when each token's /revoke was sent, ok when its 200 arrived
	// (Unix ns; 0: none).
	sent, ok []atomic.Int64
}

func newPhase(toks, jtis []string) *phase {
	p := &phase{toks: toks, index: make(map[string]int, len(jtis)), ok: make([]atomic.Int64, len(toks)), sent: make([]atomic.Int64, len(toks))}
	for i, j := range jtis {
		p.index[j] = i
	}
	return p
}

// gateway is one edge-library Verifier with its own NATS connection, as a
// separate gateway process would have, and a watcher that records the
// instant its Verify first rejects each revoked token of the phase.
//
// How the instant is found without polling every token all the time: the
// edge's JetStream is wrapped so that each revocation message the edge's
// consumer receives names its jti (seen before the edge applies it); the
// watcher then calls Verify on that token until it returns ErrRevoked,
// woken by Observer.OnRevocationApplied (called right after the deny state
// changed) or every 200 µs. The instant recorded is the one just after Verify
// returned ErrRevoked: the measured quantity is when the edge rejects.
type gateway struct {
	v     *edge.Verifier
	nc    *nats.Conn
	wake  chan struct{}
	recv  chan int
	phase atomic.Pointer[phase]
	rej   []atomic.Int64 // per token of the phase: when Verify first rejected it
	done  atomic.Int64   // tokens of the phase rejected
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startGateway(ctx context.Context, c *cluster, opts ...edge.Option) (*gateway, error) {
	nc, err := nats.Connect(c.natsURL, nats.Name("valet-edge"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	g := &gateway{nc: nc, wake: make(chan struct{}, 1), recv: make(chan int, 1<<16), stop: make(chan struct{})}
	opts = append([]edge.Option{
		edge.WithSubjectPrefix(c.prefix),
		edge.WithStalenessBound(30 * time.Second),
		edge.WithObserver(edge.Observer{OnRevocationApplied: func(events.Type, time.Time, bool) {
			select {
			case g.wake <- struct{}{}:
			default:
			}
		}}),
	}, opts...)
	g.v, err = edge.New(edge.Config{
		Issuer: issuer, Audience: audience, JWKSURL: c.jwksURL,
		JetStream: tapJS{js: js, onMsg: g.onMsg}, MaxTokenLifetime: c.maxLife,
	}, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := g.v.Start(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := g.v.WaitCurrent(wctx); err != nil {
		g.close()
		return nil, fmt.Errorf("edge not current: %w", err)
	}
	g.wg.Add(1)
	go g.watch()
	return g, nil
}

func (g *gateway) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
	_ = g.v.Close()
	g.nc.Close()
}

// setPhase points the watcher at p's tokens.
func (g *gateway) setPhase(p *phase) {
	g.rej = make([]atomic.Int64, len(p.toks))
	g.done.Store(0)
	g.phase.Store(p)
}

var jtiKey = []byte(`"jti":"`)

// onMsg runs in the edge's consumer for every message it receives.
func (g *gateway) onMsg(data []byte) {
	p := g.phase.Load()
	if p == nil {
		return
	}
	i := bytes.Index(data, jtiKey)
	if i < 0 {
		return
	}
	rest := data[i+len(jtiKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return
	}
	if idx, ok := p.index[string(rest[:j])]; ok {
		g.recv <- idx
	}
}

func (g *gateway) watch() {
	defer g.wg.Done()
	ctx := context.Background()
	var watch []int
	t := time.NewTimer(time.Hour)
	for {
		if len(watch) == 0 {
			select {
			case i := <-g.recv:
				watch = append(watch, i)
			case <-g.stop:
				return
			}
		}
	drain:
		for {
			select {
			case i := <-g.recv:
				watch = append(watch, i)
			default:
				break drain
			}
		}
		p := g.phase.Load()
		keep := watch[:0]
		for _, i := range watch {
			_, err := g.v.Verify(ctx, p.toks[i])
			if errors.Is(err, edge.ErrRevoked) {
				g.rej[i].Store(time.Now().UnixNano())
				g.done.Add(1)
				continue
			}
			keep = append(keep, i)
		}
		watch = keep
		if len(watch) == 0 {
			continue
		}
		t.Reset(200 * time.Microsecond)
		select {
		case <-g.wake:
		case i := <-g.recv:
			watch = append(watch, i)
		case <-t.C:
		case <-g.stop:
			return
		}
		t.Stop()
	}
}

// warm verifies every token of p on every gateway (caching them), with one
// worker per CPU, and fails if any does not verify.
func warm(ctx context.Context, gws []*gateway, p *phase) error {
	type job struct{ g, i int }
	jobs := make(chan job, 1024)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if _, err := gws[j.g].v.Verify(ctx, p.toks[j.i]); err != nil {
					e := fmt.Errorf("edge %d: token %d does not verify: %w", j.g, j.i, err)
					firstErr.CompareAndSwap(nil, &e)
				}
			}
		}()
	}
	for i := range p.toks {
		for g := range gws {
			jobs <- job{g, i}
		}
	}
	close(jobs)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

// tapJS hands the edge ordered consumers that report each message's data
// to onMsg before the edge sees it, whether it consumes with Consume (the
// bus consumer) or Messages.
type tapJS struct {
	js    jetstream.JetStream
	onMsg func([]byte)
}

func (t tapJS) OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	c, err := t.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}
	return tapConsumer{Consumer: c, onMsg: t.onMsg}, nil
}

type tapConsumer struct {
	jetstream.Consumer
	onMsg func([]byte)
}

func (c tapConsumer) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return c.Consumer.Consume(func(m jetstream.Msg) {
		c.onMsg(m.Data())
		h(m)
	}, opts...)
}

func (c tapConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	return tapIter{MessagesContext: it, onMsg: c.onMsg}, nil
}

type tapIter struct {
	jetstream.MessagesContext
	onMsg func([]byte)
}

func (it tapIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	m, err := it.MessagesContext.Next(opts...)
	if err == nil {
		it.onMsg(m.Data())
	}
	return m, err
}
