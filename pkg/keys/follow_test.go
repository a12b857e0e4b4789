package keys

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus/bustest"
)

// TestFollowRevokedKey: a replica that follows the key stream stops signing
// with, and serving, a key another replica revoked as compromised at once,
// although its own refresh interval is five minutes: only the key.revoked event on
// a real JetStream can explain it.
func TestFollowRevokedKey(t *testing.T) {
	env := bustest.New(t)
	js, bp := env.JS, env.Pub
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := bp.Publish(ctx, e)
		return err
	})

	f := newFixture(t)
	f.cfg.RefreshInterval = 5 * time.Minute // the most the lead time allows
	replica := func() *Manager {
		m, err := New(f.cfg, f.st, pub, f.ring, WithClock(f.clk.Now), WithLogger(zaptest.NewLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := replica(), replica()
	refresh(t, a)
	refresh(t, b)
	victim := current(t, b).KID()

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = b.Run(runCtx); done <- struct{}{} }()
	go func() { _ = b.Follow(runCtx, js, env.Prefix); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })
	time.Sleep(200 * time.Millisecond) // let the consumer open before the event

	if err := a.Revoke(ctx, victim, "compromised"); err != nil {
		t.Fatal(err)
	}
	for {
		s, err := b.Current()
		if err == nil && s.KID() != victim && !slices.Contains(kidsOf(jwksOf(t, b)), victim) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica b still has the revoked key %s after 30s (current err %v)", victim, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
