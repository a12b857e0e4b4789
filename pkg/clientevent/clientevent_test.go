package clientevent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/clientevent"
)

// publisherFunc is a func-field fake of the stream: it records what it is given.
type publisherFunc func(ctx context.Context, e events.Event) error

func (f publisherFunc) Publish(ctx context.Context, e events.Event) error { return f(ctx, e) }

func TestPublish(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		payload events.Payload
		typ     events.Type
	}{
		{"updated", clientevent.Updated("svc-a", 3), events.TypeClientUpdated},
		{"secret rotated", clientevent.SecretRotated("svc-a", at.Add(time.Hour)), events.TypeClientSecretRotated},
		{"deleted", clientevent.Deleted("svc-a"), events.TypeClientDeleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got events.Event
			err := clientevent.Publish(context.Background(), publisherFunc(func(_ context.Context, e events.Event) error {
				got = e
				return nil
			}), "https://auth.example.test", "ops", at, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.typ || got.Actor != "ops" || got.Source != "https://auth.example.test" || !got.Time.Equal(at) || got.ID == "" {
				t.Errorf("published %+v", got.Envelope)
			}
			if _, err := got.Encode(); err != nil {
				t.Errorf("the event does not encode: %v", err)
			}
		})
	}
	if p := clientevent.SecretRotated("c", time.Time{}).(*events.ClientSecretRotated); p.PreviousExpires != 0 {
		t.Errorf("no previous secret: previous_expires %d, want 0", p.PreviousExpires)
	}
	if p := clientevent.SecretRotated("c", at).(*events.ClientSecretRotated); p.PreviousExpires != at.Unix() {
		t.Errorf("previous_expires %d, want %d", p.PreviousExpires, at.Unix())
	}
}

func TestPublishErrors(t *testing.T) {
	down := publisherFunc(func(context.Context, events.Event) error { return errors.New("nats: timeout") })
	if err := clientevent.Publish(context.Background(), down, "https://a.example", "ops", time.Now(), clientevent.Updated("c", 1)); err == nil {
		t.Error("a failed publish is not reported")
	}
	called := false
	up := publisherFunc(func(context.Context, events.Event) error { called = true; return nil })
	if err := clientevent.Publish(context.Background(), up, "https://a.example", "ops", time.Now(), clientevent.Updated("", 1)); err == nil || called {
		t.Errorf("an event without a client id was published (err %v)", err)
	}
}
