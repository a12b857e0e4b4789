package revoke

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/store"
)

// ReplayStore is what a replay writes to.
type ReplayStore interface {
	Replay(ctx context.Context, r store.Revocation) error
}

// ReplayStats counts what a replay applied.
type ReplayStats struct {
	// Applied counts revocations written, by event type.
	Applied map[events.Type]int
	// Skipped counts other events (heartbeats, client lifecycle).
	Skipped int
	// LastSeq is the stream sequence the replay caught up to.
	LastSeq uint64
}

// ReplayStream rebuilds the store's deny state from the revocation stream:
// every revocation event since `since` is written again with Replay (no
// outbox: the events are durable already). It returns once the consumer has
// caught up with the stream. Writing a revocation twice changes nothing, so
// it is safe to replay onto a store that still holds some of its state —
// after a Redis loss, or to fill a new Redis.
func ReplayStream(ctx context.Context, js bus.OrderedConsumers, stream string, st ReplayStore, retain time.Duration, since time.Time) (ReplayStats, error) {
	stats := ReplayStats{Applied: map[events.Type]int{}}
	apply := func(ctx context.Context, e events.Event, _ bus.Meta) error {
		r, ok := revocationOf(e, retain)
		if !ok {
			stats.Skipped++
			return nil
		}
		if err := st.Replay(ctx, r); err != nil {
			return fmt.Errorf("replay %s %s: %w", e.Type, e.ID, err)
		}
		stats.Applied[e.Type]++
		return nil
	}
	c, err := bus.NewConsumer(js, stream, apply, bus.WithStartTime(since))
	if err != nil {
		return stats, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return stats, err
		}
	case err := <-done:
		if err == nil {
			err = ctx.Err()
		}
		return stats, fmt.Errorf("replay stopped before catching up: %w", err)
	}
	pos := c.Position()
	if pos.Err != nil {
		return stats, pos.Err
	}
	stats.LastSeq = pos.Seq
	return stats, nil
}

// revocationOf maps a revocation event to the deny state it wrote.
func revocationOf(e events.Event, retain time.Duration) (store.Revocation, bool) {
	switch p := e.Payload.(type) {
	case *events.TokenRevoked:
		return store.Revocation{Kind: store.RevokeToken, JTI: p.JTI, Expires: time.Unix(p.Exp, 0), Reason: p.Reason, Retain: retain}, true
	case *events.FamilyRevoked:
		return store.Revocation{Kind: store.RevokeFamily, FID: p.FID, Reason: p.Reason, Retain: retain}, true
	case *events.SubjectRevoked:
		return store.Revocation{Kind: store.RevokeSubject, SubjectType: p.SubjectType, Subject: p.Subject, Cutoff: endOfSecond(p.Cutoff), Reason: p.Reason, Retain: retain}, true
	case *events.ClientRevoked:
		return store.Revocation{Kind: store.RevokeClient, ClientID: p.ClientID, Cutoff: endOfSecond(p.Cutoff), Reason: p.Reason, Retain: retain}, true
	}
	return store.Revocation{}, false
}

// endOfSecond widens an event's cut-off (whole seconds, like iat) to the end
// of its second: the store compares grant creation times in milliseconds,
// and a replayed cut-off must never spare a grant the original killed.
func endOfSecond(unix int64) time.Time {
	return time.Unix(unix, 0).Add(time.Second - time.Millisecond)
}
