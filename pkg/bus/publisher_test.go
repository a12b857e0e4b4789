package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

func TestPublishRoutesEventsToTheirStream(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	tests := []struct {
		name    string
		payload events.Payload
		stream  events.Stream
	}{
		{"token revoked", &events.TokenRevoked{JTI: "j1", Exp: time.Now().Add(time.Hour).Unix()}, events.StreamRevocations},
		{"family revoked", &events.FamilyRevoked{FID: "f1", Reason: events.ReasonAdmin}, events.StreamRevocations},
		{"heartbeat", &events.Heartbeat{Service: "issuer", Instance: "i1"}, events.StreamRevocations},
		{"key published", keyPublished("k1"), events.StreamKeys},
		{"family created", &events.FamilyCreated{FID: "f1", Subject: "alice", ClientID: "c1"}, events.StreamAudit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ack, err := e.pub.Publish(ctx, newEvent(t, tt.payload))
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if want := e.stream(tt.stream); ack.Stream != want || ack.Sequence == 0 || ack.Duplicate {
				t.Fatalf("ack = %+v, want a new message on %s", ack, want)
			}
		})
	}
}

func TestPublishDeduplicatesByEventID(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	ev := revocation(t, "same-jti")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	first, err := e.pub.Publish(ctx, ev)
	if err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	again, err := e.pub.Publish(ctx, ev)
	if err != nil {
		t.Fatalf("second Publish of the same event: %v", err)
	}
	if first.Duplicate || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("acks %+v then %+v, want the second a duplicate of the first", first, again)
	}
	if err := e.pub.PublishBatch(ctx, []events.Event{ev, ev}); err != nil {
		t.Fatalf("PublishBatch of duplicates: %v", err)
	}
	if n := e.streamInfo(t, events.StreamRevocations).State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

func TestPublishRefusesEventsConsumersCannotDecode(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	good := revocation(t, "j")
	noID := good
	noID.ID = ""
	huge := newEvent(t, &events.TokenRevoked{JTI: strings.Repeat("j", events.MaxEventBytes), Exp: 1})
	tests := []struct {
		name string
		ev   events.Event
	}{
		{"zero event", events.Event{}},
		{"no id", noID},
		{"larger than MaxEventBytes", huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := e.pub.Publish(ctx, tt.ev)
			if err == nil || errors.Is(err, bus.ErrUnavailable) {
				t.Fatalf("Publish = %v, want a permanent error", err)
			}
			if err := e.pub.PublishBatch(ctx, []events.Event{good, tt.ev}); err == nil || errors.Is(err, bus.ErrUnavailable) {
				t.Fatalf("PublishBatch = %v, want a permanent error", err)
			}
		})
	}
	if n := e.streamInfo(t, events.StreamRevocations).State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want only the valid one", n)
	}
}

func TestPublishFullRevocationStreamIsUnavailable(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{RevocationsMaxBytes: 4 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var (
		err       error
		published int
	)
	for published = 0; published < 1000; published++ {
		if _, err = e.pub.Publish(ctx, revocation(t, fmt.Sprint("fill-", published))); err != nil {
			break
		}
	}
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("after %d revocations Publish = %v, want ErrUnavailable", published, err)
	}
	if published == 0 {
		t.Fatal("the first revocation was refused; the test's MaxBytes is too small")
	}
	info := e.streamInfo(t, events.StreamRevocations)
	if info.State.FirstSeq != 1 || info.State.Msgs != uint64(published) {
		t.Fatalf("stream state %+v: a full stream must keep every stored revocation (want %d from seq 1)", info.State, published)
	}
	if err := e.pub.PublishBatch(ctx, revocations(t, "batch", 3)); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("PublishBatch on a full stream = %v, want ErrUnavailable", err)
	}
}

func TestPublishWithNATSDownIsUnavailable(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	var mu sync.Mutex
	var observed []error
	pub, err := bus.NewPublisher(e.js, e.cfg.Prefix, bus.WithPublishObserver(func(_ events.Type, _ time.Duration, err error) {
		mu.Lock()
		observed = append(observed, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Shutdown()
	tests := []struct {
		name    string
		publish func(ctx context.Context) error
	}{
		{"Publish", func(ctx context.Context) error {
			_, err := pub.Publish(ctx, revocation(t, "down"))
			return err
		}},
		{"PublishBatch", func(ctx context.Context) error {
			return pub.PublishBatch(ctx, revocations(t, "down-batch", 10))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tt.publish(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, bus.ErrUnavailable) {
					t.Fatalf("%s with NATS down = %v, want ErrUnavailable", tt.name, err)
				}
			case <-time.After(wait):
				t.Fatalf("%s with NATS down did not return after its context ended", tt.name)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(observed) == 0 || !errors.Is(observed[0], bus.ErrUnavailable) {
		t.Fatalf("observer saw %v, want the unavailable failures", observed)
	}
}

func TestNewPublisherValidates(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	tests := []struct {
		name   string
		prefix string
		opts   []bus.PublisherOption
	}{
		{"empty prefix", "", nil},
		{"prefix with a wildcard", "a*", nil},
		{"zero ack timeout", "valet", []bus.PublisherOption{bus.WithAckTimeout(0)}},
		{"zero window", "valet", []bus.PublisherOption{bus.WithBatchWindow(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bus.NewPublisher(e.js, tt.prefix, tt.opts...); err == nil {
				t.Fatal("NewPublisher accepted an invalid configuration")
			}
		})
	}
}

func TestPublishRefusesAnAckFromAForeignStream(t *testing.T) {
	srv := testenv.NATS(t)
	js := connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// No Valet streams: another stream captures the revocation subjects.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FOREIGN", Subjects: []string{srv.Prefix + ".>"}}); err != nil {
		t.Fatalf("create foreign stream: %v", err)
	}
	pub, err := bus.NewPublisher(js, srv.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, revocation(t, "j")); err == nil || errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Publish into a foreign stream = %v, want a configuration error", err)
	}
	if err := pub.PublishBatch(ctx, revocations(t, "b", 3)); err == nil || errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("PublishBatch into a foreign stream = %v, want a configuration error", err)
	}
}
