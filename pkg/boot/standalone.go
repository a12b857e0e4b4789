package boot

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/secret"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
)

// Deps are what the standalone issuer, introspection and revocation mains
// open alike, each from the one before: the secret hasher and the store's
// successor AEAD from the key-encryption keys, the store on Redis, then NATS
// with Valet's streams. A main hands whatever it opens after them to
// OnClose, so that one Close, on a failed start or after the server has
// drained, releases everything in reverse order and a component is closed
// before the connections it uses.
type Deps struct {
	// Hasher keys and checks client-secret hashes under the key-encryption
	// keys.
	Hasher *secret.Hasher
	// Store is the token store; closing it closes its Redis client.
	Store *redisstore.Store
	// NATS is the connection JetStream runs on.
	NATS *nats.Conn
	// JetStream has Valet's streams ensured (bus.EnsureStreams).
	JetStream jetstream.JetStream

	closers []func()
}

// RequireServers returns an error naming service unless the configuration
// names a Redis and a NATS server: their embedded stand-ins run only inside
// `valet dev`, so a standalone service without them could not start.
func RequireServers(cfg *config.Config, service string) error {
	if cfg.Redis.URL == "" || cfg.NATS.URL == "" {
		return fmt.Errorf("%s: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)", service)
	}
	return nil
}

// Open checks RequireServers, resolves the service's key-encryption keys
// (StandaloneKEKs) and opens the Deps on them (OpenKEKs).
func Open(ctx context.Context, env Env, service string, opts ...redisstore.Option) (*Deps, error) {
	if err := RequireServers(env.Config, service); err != nil {
		return nil, err
	}
	active, keks, err := StandaloneKEKs(env.Config, env.Logger, service)
	if err != nil {
		return nil, err
	}
	return OpenKEKs(ctx, env, service, active, keks, opts...)
}

// OpenKEKs is Open for a main that has checked RequireServers and resolved
// the keys itself, because it builds something of its own from them before
// anything is opened (the issuer's signing-key ring). It opens the store with
// opts after the configured ones (Store) and NATS as "valet-<service>"
// (JetStream); on an error it has closed what it opened.
func OpenKEKs(ctx context.Context, env Env, service, active string, keks map[string][]byte, opts ...redisstore.Option) (*Deps, error) {
	hasher, err := secret.NewHasher(active, keks)
	if err != nil {
		return nil, err
	}
	aead, err := SuccessorAEAD(keks[active])
	if err != nil {
		return nil, err
	}
	st, err := Store(ctx, env.Config, aead, env.Logger, opts...)
	if err != nil {
		return nil, err
	}
	d := &Deps{Hasher: hasher, Store: st}
	d.closers = append(d.closers, func() { _ = st.Close() })
	nc, js, err := JetStream(ctx, env.Config, "valet-"+service)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.NATS, d.JetStream = nc, js
	d.closers = append(d.closers, nc.Close)
	return d, nil
}

// OnClose has Close close c before everything added earlier, the Deps' own
// connections last. Its error is dropped: at that point the process is
// stopping, or has failed to start for a reason already returned.
func (d *Deps) OnClose(c io.Closer) {
	d.closers = append(d.closers, func() { _ = c.Close() })
}

// Close closes what was added with OnClose, newest first, then NATS and the
// store. It is the Close of the service's Runner (Service); a second call
// does nothing.
func (d *Deps) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

// CloseOnError calls Close when *err is not nil. A main defers it right
// after Open, with its named error result, to release everything on any
// failed start through this one path.
func (d *Deps) CloseOnError(err *error) {
	if *err != nil {
		d.Close()
	}
}
