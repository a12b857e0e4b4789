package testenv

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSServer is a NATS server with JetStream a test may use. Prefix is a token
// of [a-z0-9] this test must use as its subject prefix and in its stream names,
// so that tests sharing a server (NATS_URL) never collide.
type NATSServer struct {
	URL    string
	Prefix string

	t        testing.TB
	mu       sync.Mutex
	opts     *server.Options
	srv      *server.Server
	external bool
}

// NATS returns a NATS server with JetStream for t: the one at NATS_URL when
// that is set, otherwise an embedded nats-server on 127.0.0.1 on a free port
// with its store in t.TempDir(), logging and signal handling off, shut down in
// t.Cleanup.
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	if u := os.Getenv("NATS_URL"); u != "" {
		return &NATSServer{t: t, URL: u, Prefix: newPrefix(), external: true}
	}
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
		// A test's streams are small; keep JetStream from sizing itself to the host.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  4 << 30,
	}
	n := &NATSServer{t: t, opts: opts, Prefix: newPrefix()}
	if err := n.start(); err != nil {
		t.Fatalf("testenv: start embedded nats-server: %v", err)
	}
	// Restarts must come back on the same port, where clients reconnect.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	n.URL = n.srv.ClientURL()
	t.Cleanup(n.Shutdown)
	return n
}

func (n *NATSServer) start() error {
	srv, err := server.NewServer(n.opts)
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errNotReady
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

// Shutdown stops the embedded server and waits until it is down; its JetStream
// store stays on disk for Start. Tests use it to simulate a NATS outage.
func (n *NATSServer) Shutdown() {
	if n.external {
		n.t.Errorf("testenv: cannot shut down the shared NATS at %s", n.URL)
		return
	}
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Start brings a server that Shutdown stopped back on the same port with the
// same JetStream store, as after a crash and restart.
func (n *NATSServer) Start() {
	n.t.Helper()
	if n.external {
		n.t.Fatalf("testenv: cannot start the shared NATS at %s", n.URL)
	}
	if err := n.start(); err != nil {
		n.t.Fatalf("testenv: restart embedded nats-server on port %d: %v", n.opts.Port, err)
	}
}

// Server returns the embedded server, or nil when the test uses NATS_URL or the
// server is stopped.
func (n *NATSServer) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

var errNotReady = errors.New("not ready for connections within 10s")

// NATSWith starts an embedded nats-server with opts, for a test that needs
// a server NATS does not make (accounts and permissions, no JetStream), and
// shuts it down in t.Cleanup. It returns once the server accepts
// connections.
func NATSWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testenv: nats-server options: %v", err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("testenv: nats-server not ready within 10 s")
	}
	return srv
}
