package boot

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestServiceOrder: the background work runs while the server serves, stops
// after it returned, and Close comes last; the server's error is returned.
func TestServiceOrder(t *testing.T) {
	var mu sync.Mutex
	var steps []string
	step := func(s string) { mu.Lock(); steps = append(steps, s); mu.Unlock() }
	started := make(chan struct{})
	want := errors.New("serve failed")
	s := &Service{
		Serve: func(ctx context.Context) error {
			<-started
			<-ctx.Done()
			step("served")
			return want
		},
		Background: []func(context.Context){func(ctx context.Context) {
			close(started)
			<-ctx.Done()
			step("background stopped")
		}},
		Close: func() { step("closed") },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, want) {
		t.Fatalf("Run = %v, want the server's error", err)
	}
	if got := []string{"served", "background stopped", "closed"}; len(steps) != 3 || steps[0] != got[0] || steps[1] != got[1] || steps[2] != got[2] {
		t.Fatalf("steps %v, want %v", steps, got)
	}
}
