package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// newConsumer builds a consumer of stream s on its own connection.
func (e *env) newConsumer(t testing.TB, s events.Stream, rec *recorder, opts ...bus.ConsumerOption) *bus.Consumer {
	t.Helper()
	c, err := bus.NewConsumer(connect(t, e.srv.URL), e.stream(s), rec.handle, opts...)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	return c
}

func TestConsumerReplaysFromStartTimeThenFollows(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	e.publish(t, revocations(t, "old", 5)...)
	time.Sleep(50 * time.Millisecond) // stream timestamps of old and new must differ
	cut := time.Now()
	newer := revocations(t, "new", 5)
	e.publish(t, newer...)

	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec, bus.WithStartTime(cut)))
	r.ready(t)
	if err := equalStrings(rec.ids(), ids(newer)); err != nil {
		t.Fatalf("applied at Ready: %v; want exactly the events after the start time", err)
	}

	live := revocations(t, "live", 3)
	e.publish(t, live...)
	want := append(ids(newer), ids(live)...)
	waitApplied(t, rec, len(want))
	if err := equalStrings(rec.ids(), want); err != nil {
		t.Fatalf("applied: %v", err)
	}
	pos := r.c.Position()
	if pos.Seq != 13 || pos.Applied != 8 || pos.Pending != 0 || !pos.CaughtUp || pos.Stale {
		t.Fatalf("Position = %+v, want seq 13, 8 applied, caught up", pos)
	}
	if !pos.EventTime.Equal(live[2].Time) {
		t.Fatalf("Position.EventTime = %s, want the last event's time %s", pos.EventTime, live[2].Time)
	}
}

func TestConsumerOnEmptyStreamIsReady(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec))
	r.ready(t)
	if pos := r.c.Position(); !pos.CaughtUp || pos.Seq != 0 {
		t.Fatalf("Position = %+v, want caught up at seq 0", pos)
	}
	e.publish(t, revocation(t, "first"))
	waitApplied(t, rec, 1)
}

func TestConsumerFiltersSubjects(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	token := revocation(t, "j")
	e.publish(t, newEvent(t, &events.FamilyRevoked{FID: "f", Reason: events.ReasonAdmin}), token)
	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec, bus.WithFilterSubjects(e.cfg.Prefix+".token.>")))
	r.ready(t)
	if err := equalStrings(rec.ids(), []string{token.ID}); err != nil {
		t.Fatalf("applied: %v; want only the token revocation", err)
	}
}

func TestKeyStreamKeepsLatestPerKid(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	e.publish(t,
		newEvent(t, keyPublished("k1")),
		newEvent(t, keyActivated("k1")),
		newEvent(t, keyPublished("k2")),
		newEvent(t, &events.KeyRetired{KID: "k1"}),
		newEvent(t, keyActivated("k2")),
		newEvent(t, keyPublished("k3")),
	)
	if n := e.streamInfo(t, events.StreamKeys).State.Msgs; n != 3 {
		t.Fatalf("key stream holds %d messages, want one per kid (3)", n)
	}

	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamKeys, rec, bus.WithLastPerSubject()))
	r.ready(t)
	e.publish(t, newEvent(t, keyPublished("k4")))
	waitApplied(t, rec, 4)

	got := map[string]events.Type{}
	evs, _ := rec.snapshot()
	for _, ev := range evs {
		kid := events.KeyID(ev.Payload)
		if _, dup := got[kid]; dup {
			t.Errorf("kid %s applied twice", kid)
		}
		got[kid] = ev.Type
	}
	want := map[string]events.Type{
		"k1": events.TypeKeyRetired,
		"k2": events.TypeKeyActivated,
		"k3": events.TypeKeyPublished,
		"k4": events.TypeKeyPublished,
	}
	for kid, typ := range want {
		if got[kid] != typ {
			t.Errorf("kid %s: learnt %q, want %q", kid, got[kid], typ)
		}
	}
}

// publishRetrying publishes each event in turn, retrying an unavailable
// stream, as a relay would.
func publishRetrying(pub *bus.Publisher, evs []events.Event) error {
	deadline := time.Now().Add(wait)
	for _, ev := range evs {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := pub.Publish(ctx, ev)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, bus.ErrUnavailable) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func TestConsumerSurvivesServerRestart(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec))
	r.ready(t)

	before := revocations(t, "before", 200)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.pub.PublishBatch(ctx, before); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	waitApplied(t, rec, len(before))

	e.srv.Shutdown()
	during := revocations(t, "during", 50)
	published := make(chan error, 1)
	go func() { published <- publishRetrying(e.pub, during) }()
	time.Sleep(200 * time.Millisecond) // let the relay meet the outage
	e.srv.Start()
	if err := <-published; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	after := revocations(t, "after", 200)
	if err := e.pub.PublishBatch(ctx, after); err != nil {
		t.Fatalf("PublishBatch after restart: %v", err)
	}
	// A last event: once it is applied, any duplicate would already show.
	sentinel := revocation(t, "sentinel")
	e.publish(t, sentinel)

	want := append(append(append(ids(before), ids(during)...), ids(after)...), sentinel.ID)
	waitApplied(t, rec, len(want))
	if err := equalStrings(rec.ids(), want); err != nil {
		t.Fatalf("applied across the restart: %v; want each event exactly once, in order", err)
	}
	_, metas := rec.snapshot()
	for i, m := range metas {
		if m.Seq != uint64(i+1) {
			t.Fatalf("event %d applied at stream seq %d, want %d", i, m.Seq, i+1)
		}
	}
	if pos := r.c.Position(); pos.Seq != uint64(len(want)) || pos.Stale {
		t.Fatalf("Position = %+v, want seq %d and not stale", pos, len(want))
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil after its context ended", err)
	}
}

// TestConsumerSurvivesItsServerConsumerDeleted deletes the server-side
// consumer in the middle of a replay, while the handler is busy and more
// messages wait in the client: the consumer must resume after the last event
// it applied, applying every event exactly once, in order.
func TestConsumerSurvivesItsServerConsumerDeleted(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	evs := revocations(t, "del", 3000)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.pub.PublishBatch(ctx, evs); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	gate := make(chan struct{})
	var seen atomic.Int64
	rec := &recorder{fail: func(events.Event) error {
		if seen.Add(1) == 500 {
			<-gate
		}
		return nil
	}}
	var transient atomic.Int64
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec, bus.WithConsumeErrorHook(func(error) { transient.Add(1) })))
	eventually(t, func() error {
		if n := seen.Load(); n < 500 {
			return fmt.Errorf("handler saw %d events", n)
		}
		return nil
	})
	st, err := e.js.Stream(ctx, e.stream(events.StreamRevocations))
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	deleted := 0
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatalf("DeleteConsumer %s: %v", name, err)
		}
		deleted++
	}
	if names.Err() != nil || deleted == 0 {
		t.Fatalf("deleted %d consumers: %v", deleted, names.Err())
	}
	close(gate)
	sentinel := revocation(t, "sentinel")
	e.publish(t, sentinel)
	want := append(ids(evs), sentinel.ID)
	waitApplied(t, rec, len(want))
	if err := equalStrings(rec.ids(), want); err != nil {
		t.Fatalf("applied across the deletion: %v; want each event exactly once, in order", err)
	}
	if pos := r.c.Position(); pos.Seq != uint64(len(want)) || pos.Stale {
		t.Fatalf("Position = %+v, want seq %d and not stale", pos, len(want))
	}
	if transient.Load() == 0 {
		t.Error("the error hook was not told of the deleted consumer")
	}
}

func TestConsumerStartsWhileNATSDown(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	e.publish(t, revocation(t, "stored"))
	rec := &recorder{}
	c := e.newConsumer(t, events.StreamRevocations, rec)
	e.srv.Shutdown()
	r := start(t, c)
	time.Sleep(200 * time.Millisecond) // let Run meet the outage
	if pos := c.Position(); pos.CaughtUp {
		t.Fatalf("Position = %+v: caught up without a server", pos)
	}
	e.srv.Start()
	r.ready(t)
	e.publish(t, revocation(t, "live"))
	waitApplied(t, rec, 2)
}

func TestConsumerResumesAfterRunReturns(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	first := revocations(t, "first", 3)
	e.publish(t, first...)
	rec := &recorder{}
	c := e.newConsumer(t, events.StreamRevocations, rec)
	r := start(t, c)
	r.ready(t)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	second := revocations(t, "second", 2)
	e.publish(t, second...)
	start(t, c)
	want := append(ids(first), ids(second)...)
	waitApplied(t, rec, len(want))
	e.publish(t, revocation(t, "sentinel"))
	waitApplied(t, rec, len(want)+1)
	if err := equalStrings(rec.ids()[:len(want)], want); err != nil {
		t.Fatalf("applied: %v", err)
	}
}

func TestConsumerRunTwiceAtOnceFails(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	c := e.newConsumer(t, events.StreamRevocations, &recorder{})
	r := start(t, c)
	r.ready(t)
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("a second concurrent Run returned nil")
	}
}

// rawEnvelope is an event JSON a current producer would never write.
func rawEnvelope(typ, version string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"raw-%s-%s","source":%q,"type":%q,"schemaversion":%q,"time":"2026-01-01T00:00:00Z","data":{"jti":"x","exp":1}}`,
		typ, version, testSource, typ, version)
}

func TestConsumerTurnsStaleOnAnEventItCannotApply(t *testing.T) {
	tests := []struct {
		name    string
		subject string // under the prefix; empty publishes the poison revocation
		raw     []byte
		cause   error
	}{
		{"undecodable bytes", ".token.revoked", []byte("not an event"), events.ErrMalformed},
		{"unknown type", ".token.frobbed", rawEnvelope("token.frobbed", "1.0"), events.ErrUnknownType},
		{"unsupported schema major", ".token.revoked", rawEnvelope("token.revoked", "2.0"), events.ErrUnsupportedVersion},
		{"handler error", "", nil, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, bus.StreamsConfig{})
			good := revocation(t, "good")
			poison := revocation(t, "poison")
			later := revocation(t, "later")
			e.publish(t, good)
			if tt.subject == "" {
				e.publish(t, poison)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if _, err := e.js.Publish(ctx, e.cfg.Prefix+tt.subject, tt.raw); err != nil {
					t.Fatalf("raw publish: %v", err)
				}
			}
			e.publish(t, later)

			rec := &recorder{fail: func(ev events.Event) error {
				if ev.ID == poison.ID {
					return errBoom
				}
				return nil
			}}
			var hooked []error
			c := e.newConsumer(t, events.StreamRevocations, rec, bus.WithConsumeErrorHook(func(err error) {
				if errors.Is(err, bus.ErrStale) {
					hooked = append(hooked, err)
				}
			}))
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := c.Run(ctx)
			if !errors.Is(err, bus.ErrStale) || !errors.Is(err, tt.cause) {
				t.Fatalf("Run = %v, want ErrStale caused by %v", err, tt.cause)
			}
			pos := c.Position()
			if !pos.Stale || !errors.Is(pos.Err, tt.cause) || pos.Seq != 1 || pos.CaughtUp {
				t.Fatalf("Position = %+v, want stale at the event after seq 1", pos)
			}
			if len(hooked) != 1 {
				t.Fatalf("error hook saw %d stale errors, want 1", len(hooked))
			}
			e.publish(t, revocation(t, "after-stale"))
			if err := c.Run(ctx); !errors.Is(err, bus.ErrStale) {
				t.Fatalf("Run on a stale consumer = %v, want the stale error", err)
			}
			if err := equalStrings(rec.ids(), []string{good.ID}); err != nil {
				t.Fatalf("applied: %v; a stale consumer must apply nothing past the bad event", err)
			}
		})
	}
}

func TestNewConsumerValidates(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	h := (&recorder{}).handle
	tests := []struct {
		name    string
		stream  string
		handler bus.Handler
		opts    []bus.ConsumerOption
	}{
		{"no stream", "", h, nil},
		{"no handler", "S", nil, nil},
		{"zero start time", "S", h, []bus.ConsumerOption{bus.WithStartTime(time.Time{})}},
		{"zero start sequence", "S", h, []bus.ConsumerOption{bus.WithStartSequence(0)}},
		{"zero batch", "S", h, []bus.ConsumerOption{bus.WithPullBatch(0, bus.DefaultPullMaxBytes)}},
		{"max bytes below a message", "S", h, []bus.ConsumerOption{bus.WithPullBatch(10, 1024)}},
		{"empty filter", "S", h, []bus.ConsumerOption{bus.WithFilterSubjects("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bus.NewConsumer(e.js, tt.stream, tt.handler, tt.opts...); err == nil {
				t.Fatal("NewConsumer accepted an invalid configuration")
			}
		})
	}
}
