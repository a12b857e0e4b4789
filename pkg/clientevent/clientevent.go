// Package clientevent announces a change of the client registry on the event stream, the one way
// every writer of the registry does it: the admin API (services/issuer) and declarative bootstrap
// (pkg/bootstrap). Every issuer, introspection and revocation replica evicts the named client
// from its cache on these events (docs/clients.md), so a writer that skipped them would leave
// replicas serving the previous registration until their cache entry ages out.
//
// The event follows the store write, never precedes it: a replica that reloads on the event must
// find the new record. Which event goes with which change (docs/admin.md, "Events and caches"):
//
//	create, update, re-enable, disable      client.updated (with the new version)
//	new or replaced secret                  client.secret_rotated (previous_expires)
//	delete                                  client.deleted
//
// Disabling and deleting also revoke the client's tokens through the revoke primitive
// (pkg/revoke), which publishes client.revoked itself.
package clientevent

import (
	"context"
	"fmt"
	"time"

	"github.com/valetauth/valet/events"
)

// Publisher publishes an event and returns once JetStream stored it (keys.PublisherFunc over
// bus.Publisher.Publish).
type Publisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// Updated returns the payload of a created or edited client, version being the stored version
// after the write, so that a cache can ignore a stale reload.
func Updated(clientID string, version int64) events.Payload {
	return &events.ClientUpdated{ClientID: clientID, Version: version}
}

// SecretRotated returns the payload of a secret change. previousExpires is when the secret that
// was replaced stops working; zero means it stopped at once (or there was none).
func SecretRotated(clientID string, previousExpires time.Time) events.Payload {
	var pe int64
	if !previousExpires.IsZero() {
		pe = previousExpires.Unix()
	}
	return &events.ClientSecretRotated{ClientID: clientID, PreviousExpires: pe}
}

// Deleted returns the payload of a deleted client.
func Deleted(clientID string) events.Payload {
	return &events.ClientDeleted{ClientID: clientID}
}

// Publish wraps p in an event from source at time at, with actor as the event's actor (the admin
// client's id, or "bootstrap"), and publishes it. It returns an error when the event cannot be
// built or JetStream did not store it; the store write it announces stands either way, and the
// caller reports the event as pending.
func Publish(ctx context.Context, pub Publisher, source, actor string, at time.Time, p events.Payload) error {
	e, err := events.New(events.NewID(), source, at, p)
	if err != nil {
		return fmt.Errorf("clientevent: build %s: %w", p.EventType(), err)
	}
	if err := pub.Publish(ctx, e.WithActor(actor)); err != nil {
		return fmt.Errorf("clientevent: publish %s: %w", p.EventType(), err)
	}
	return nil
}
