// Package bustest gives tests of packages that publish or consume Valet
// events a real JetStream with the Valet streams: an embedded nats-server
// (or NATS_URL) from pkg/testenv, one connection, the streams under the
// test's own prefix, and a publisher. It is for other packages' tests; the
// bus package's own tests build theirs by hand.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/testenv"
)

// Env is one test's JetStream.
type Env struct {
	// Server is the NATS server (Stop and Start it to test outages).
	Server *testenv.NATSServer
	// Conn is the test's connection, closed in cleanup.
	Conn *nats.Conn
	// JS is the JetStream handle on Conn.
	JS jetstream.JetStream
	// Prefix is the subject and stream prefix of this test.
	Prefix string
	// Pub publishes on the streams and waits for the acknowledgement.
	Pub *bus.Publisher
}

// New starts the server, connects, and creates the streams for a
// 15-minute maximum access-token lifetime, failing t on any error.
func New(t testing.TB) *Env {
	t.Helper()
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("bustest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("bustest: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: ns.Prefix, MaxAccessTokenLifetime: 15 * time.Minute}); err != nil {
		t.Fatalf("bustest: streams: %v", err)
	}
	pub, err := bus.NewPublisher(js, ns.Prefix)
	if err != nil {
		t.Fatalf("bustest: publisher: %v", err)
	}
	return &Env{Server: ns, Conn: nc, JS: js, Prefix: ns.Prefix, Pub: pub}
}
