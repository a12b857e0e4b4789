package keys

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// followRetry is the pause before Follow reopens a failed consumer.
const followRetry = time.Second

// Follow makes the replica refresh at once whenever a key event appears on
// the key stream (prefix is nats.subject_prefix): another replica's
// publication or activation, or `valet keys revoke` anywhere. Without it a
// replica learns them only at its next RefreshInterval, so it could keep
// signing with a key revoked as compromised for that long. The event is only
// a signal; the key ring is read from the store, never from the stream. Follow
// returns nil when ctx ends; a consumer that fails is reopened (with a
// refresh, since events may have been missed meanwhile).
func (m *Manager) Follow(ctx context.Context, js bus.OrderedConsumers, prefix string) error {
	stream := bus.StreamName(prefix, events.StreamKeys)
	notify := func(context.Context, events.Event, bus.Meta) error {
		m.Notify()
		return nil
	}
	for ctx.Err() == nil {
		cons, err := bus.NewConsumer(js, stream, notify,
			bus.WithStartTime(time.Now()), // stream time, not the (test) clock
			bus.WithDecoders(1),
			bus.WithConsumeErrorHook(func(err error) { m.log.Debug("key event consumer", zap.Error(err)) }))
		if err != nil {
			return fmt.Errorf("keys: key event consumer: %w", err)
		}
		if err := cons.Run(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("key event consumer failed; reopening", zap.Error(err))
		}
		m.Notify()
		select {
		case <-ctx.Done():
		case <-time.After(followRetry):
		}
	}
	return nil
}
