package servicetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/server"
)

// startWait bounds how long a test waits for a listener or a first fetch:
// generous, because the tests never assert how long something took.
const startWait = time.Minute

// Go runs fn in a goroutine until stop is called or t ends. stop cancels
// fn's context and waits for fn to return; at the end of t it runs in
// cleanup order, so that nothing outlives what it uses. Calling it again
// does nothing.
func Go(t testing.TB, fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// Service is what every Valet service offers its host (cmd/<name> or valet
// dev): Run serves until ctx ends, and Server names its listeners.
type Service interface {
	Run(ctx context.Context) error
	Server() *server.Server
}

// Serve runs svc until t ends and returns its public and admin base URLs
// (http://host:port) once it listens. It fails t when svc stops before
// listening, and reports an error Run returns at shutdown, as a main would
// exit non-zero.
func Serve(t testing.TB, svc Service) (public, admin string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var runErr error
	go func() { defer close(stopped); runErr = svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-stopped
		if runErr != nil && !errors.Is(runErr, context.Canceled) {
			t.Errorf("servicetest: %T.Run: %v", svc, runErr)
		}
	})
	actx, acancel := context.WithTimeout(ctx, startWait)
	defer acancel()
	go func() {
		select {
		case <-stopped:
			acancel()
		case <-actx.Done():
		}
	}()
	pub, adm, err := svc.Server().Addrs(actx)
	if err != nil {
		select {
		case <-stopped:
			t.Fatalf("servicetest: %T stopped before listening: %v", svc, runErr)
		default:
			t.Fatalf("servicetest: %T not listening: %v", svc, err)
		}
	}
	return "http://" + pub.String(), "http://" + adm.String()
}

// Checker returns the access-token checker cfg describes, started as the
// services' mains start it and closed when t ends. It fails t when the
// first JWKS fetch (and key-stream replay, with a JetStream) fails.
func Checker(t testing.TB, cfg edge.CheckerConfig) *edge.Checker {
	t.Helper()
	chk, err := edge.NewChecker(cfg)
	if err != nil {
		t.Fatalf("servicetest: checker: %v", err)
	}
	t.Cleanup(func() { _ = chk.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), startWait)
	defer cancel()
	if err := chk.Start(ctx); err != nil {
		t.Fatalf("servicetest: checker: %v", err)
	}
	return chk
}

// Heartbeat publishes beat from source on pub every interval until stop is
// called or t ends: without heartbeats no consumer counts as current, and
// a test stops them to reach the fallback paths.
func Heartbeat(t testing.TB, pub bus.EventPublisher, source string, beat events.Heartbeat, every time.Duration) (stop func()) {
	t.Helper()
	hb, err := bus.NewHeartbeater(pub, source, beat, bus.WithHeartbeatInterval(every))
	if err != nil {
		t.Fatalf("servicetest: heartbeater: %v", err)
	}
	return Go(t, func(ctx context.Context) { _ = hb.Run(ctx) })
}

// Eventually calls f every 20 ms until it returns nil, and fails t with
// f's last error once within has passed: tests state what must happen,
// never how soon.
func Eventually(t testing.TB, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitFor is Eventually for a condition that has no error to tell: it
// fails t naming what was awaited.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, within, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}
