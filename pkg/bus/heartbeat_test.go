package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

func TestHeartbeatsUpdatePositionAndSurviveAnOutage(t *testing.T) {
	e := newEnv(t, bus.StreamsConfig{})
	var mu sync.Mutex
	var failures []error
	hb, err := bus.NewHeartbeater(e.pub, testSource, events.Heartbeat{Service: "test", Instance: "i1"},
		bus.WithHeartbeatInterval(20*time.Millisecond),
		bus.WithHeartbeatErrorHook(func(err error) {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("NewHeartbeater: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hbDone := make(chan error, 1)
	go func() { hbDone <- hb.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-hbDone; err != nil {
			t.Errorf("Heartbeater.Run = %v, want nil", err)
		}
	}()

	rec := &recorder{}
	r := start(t, e.newConsumer(t, events.StreamRevocations, rec))
	r.ready(t)
	// advanced waits until the consumer applied a heartbeat newer than since.
	advanced := func(since time.Time) time.Time {
		t.Helper()
		var pos bus.Position
		eventually(t, func() error {
			if pos = r.c.Position(); !pos.Heartbeat.After(since) {
				return fmt.Errorf("last heartbeat %s, want one after %s", pos.Heartbeat, since)
			}
			return nil
		})
		if pos.HeartbeatApplied.IsZero() {
			t.Fatalf("Position = %+v: heartbeat without its local time", pos)
		}
		return pos.Heartbeat
	}
	first := advanced(time.Time{})
	last := advanced(first)
	if pos := r.c.Position(); !pos.Current(time.Now(), 10*time.Second) || pos.Current(last.Add(time.Hour), 10*time.Second) {
		t.Fatalf("Position = %+v: Current must hold now and fail an hour later", pos)
	}

	e.srv.Shutdown()
	eventually(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) == 0 || !errors.Is(failures[len(failures)-1], bus.ErrUnavailable) {
			return fmt.Errorf("heartbeat failures %v, want ErrUnavailable ones", failures)
		}
		return nil
	})
	e.srv.Start()
	advanced(last)
}

func TestNewHeartbeaterValidates(t *testing.T) {
	pub := &bus.Publisher{}
	beat := events.Heartbeat{Service: "s", Instance: "i"}
	tests := []struct {
		name   string
		pub    bus.EventPublisher
		source string
		beat   events.Heartbeat
		opts   []bus.HeartbeaterOption
	}{
		{"no publisher", nil, testSource, beat, nil},
		{"no source", pub, "", beat, nil},
		{"no instance", pub, testSource, events.Heartbeat{Service: "s"}, nil},
		{"zero interval", pub, testSource, beat, []bus.HeartbeaterOption{bus.WithHeartbeatInterval(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bus.NewHeartbeater(tt.pub, tt.source, tt.beat, tt.opts...); err == nil {
				t.Fatal("NewHeartbeater accepted an invalid configuration")
			}
		})
	}
}
