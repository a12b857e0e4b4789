package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable is wrapped by every error that means the stream could not
// confirm durability right now — no responders, a timeout, a lost connection,
// a full revocation stream — so that an HTTP layer tests it with errors.Is and
// answers 503 with Retry-After instead of a 200 it cannot back. The event may
// or may not have been stored; publishing it again is harmless (same id).
var ErrUnavailable = errors.New("bus: event stream unavailable")

// ErrStale is wrapped by the error a Consumer records and Run returns when it
// met an event it cannot apply: it stopped there, and its projection must not
// be trusted until it is rebuilt by a consumer that can.
var ErrStale = errors.New("bus: consumer stale")

// unavailableError keeps the cause while matching ErrUnavailable.
type unavailableError struct {
	op    string
	cause error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("bus: %s: event stream unavailable: %v", e.op, e.cause)
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// classify wraps err from a JetStream call made for op, matching
// ErrUnavailable when the failure is transient.
func classify(op string, err error) error {
	if isUnavailable(err) {
		return &unavailableError{op: op, cause: err}
	}
	return fmt.Errorf("bus: %s: %w", op, err)
}

// unavailableErrs are the client-side failures that say nothing about the
// event itself, only that JetStream did not (yet) answer.
var unavailableErrs = []error{
	context.DeadlineExceeded,
	context.Canceled,
	nats.ErrTimeout,
	nats.ErrNoResponders,
	nats.ErrDisconnected,
	nats.ErrConnectionClosed,
	nats.ErrConnectionDraining,
	nats.ErrConnectionReconnecting,
	nats.ErrReconnectBufExceeded,
	nats.ErrSlowConsumer,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrAsyncPublishTimeout,
	jetstream.ErrTooManyStalledMsgs,
	jetstream.ErrJetStreamPublisherClosed,
	jetstream.ErrConnectionClosed,
	jetstream.ErrServerShutdown,
	jetstream.ErrJetStreamNotEnabled,
	jetstream.ErrJetStreamNotEnabledForAccount,
}

func isUnavailable(err error) bool {
	for _, target := range unavailableErrs {
		if errors.Is(err, target) {
			return true
		}
	}
	// The server answers 503 for a stream that refuses a message under
	// DiscardNew ("maximum bytes exceeded", code 10077), for insufficient
	// resources and for a cluster without quorum.
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}
