// Package clients is the in-process cache of registered clients and
// resource servers that the token, introspection and revocation endpoints
// read on every request.
//
// Clients are kept current by the client events on the revocation stream
// (client.updated, client.deleted, client.secret_rotated, client.revoked —
// each evicts the client, and the next request reloads it from the store).
// The cache trusts itself only while its event consumer is current: caught
// up, not stale, and with a heartbeat applied within the staleness bound
// (bus.Position.Current). Otherwise every lookup reads through to the store,
// and a store that cannot answer is an error matching store.ErrUnavailable,
// which endpoints answer with 503: a client disabled while this replica was
// cut off from the stream is never honoured from a stale copy.
//
// Resource servers have no events: they change rarely and a change is not
// urgent in the way disabling a client is, so they are cached for a short
// TTL (DefaultResourceTTL) and reloaded from the store after it.
//
// Lookups of cached entries take a read lock only and allocate nothing;
// the entries are immutable and shared, so callers must not modify them.
package clients

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/store"
)

// Defaults of Config.
const (
	// DefaultStalenessBound is how old the last heartbeat the consumer
	// applied may be before the cache stops trusting itself.
	DefaultStalenessBound = 15 * time.Second
	// DefaultResourceTTL is how long a resource server is served from the
	// cache before it is read again.
	DefaultResourceTTL = 30 * time.Second
	// DefaultClientMaxAge bounds how long a client is served from the cache
	// even while events say nothing changed: a defence in depth against an
	// admin path that forgot its event.
	DefaultClientMaxAge = 10 * time.Minute
)

// Store is what the cache reads: store.ClientStore's getters.
type Store interface {
	// GetClient returns a client or an error matching store.ErrNotFound.
	GetClient(ctx context.Context, id string) (store.Client, error)
	// GetResourceServer returns a resource server or store.ErrNotFound.
	GetResourceServer(ctx context.Context, id string) (store.ResourceServer, error)
}

var _ Store = store.ClientStore(nil)

// Config configures a Cache.
type Config struct {
	// Prefix is the NATS subject prefix (config nats.subject_prefix).
	Prefix string
	// StalenessBound: see DefaultStalenessBound. It must be more than the
	// heartbeat interval; the edge's bound (services.edge.staleness_bound)
	// is a good value.
	StalenessBound time.Duration
	// ResourceTTL: see DefaultResourceTTL.
	ResourceTTL time.Duration
	// ClientMaxAge: see DefaultClientMaxAge.
	ClientMaxAge time.Duration
}

// Option configures New.
type Option func(*Cache)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) Option { return func(c *Cache) { c.log = l } }

// WithRegisterer registers the valet_client_cache_* metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *Cache) { c.reg = reg } }

// WithConsumerOptions adds options to the event consumer Run builds (tests
// use it to start from the beginning of the stream).
func WithConsumerOptions(opts ...bus.ConsumerOption) Option {
	return func(c *Cache) { c.consumerOpts = append(c.consumerOpts, opts...) }
}

// Cache is the client and resource-server cache. It is safe for concurrent
// use.
type Cache struct {
	cfg          Config
	st           Store
	now          func() time.Time
	log          *zap.Logger
	reg          prometheus.Registerer
	consumerOpts []bus.ConsumerOption

	// mu guards the two maps; lookups take it for reading only.
	mu        sync.RWMutex
	clients   map[string]*clientEntry
	resources map[string]*resourceEntry
	// epoch counts evictions; a store read inserts its result only if no
	// eviction happened while it ran, so a reload never re-inserts what an
	// event just invalidated.
	epoch    atomic.Uint64
	consumer atomic.Pointer[bus.Consumer]

	hits, misses, evictions prometheus.Counter
	readThrough             prometheus.Counter
	trusted                 prometheus.GaugeFunc
}

type clientEntry struct {
	client *store.Client
	loaded time.Time
}

type resourceEntry struct {
	rs     *store.ResourceServer
	loaded time.Time
}

// New returns a Cache reading st, or an error for an invalid config. It is
// untrusted — every lookup reads the store — until Run's consumer is
// current.
func New(st Store, cfg Config, opts ...Option) (*Cache, error) {
	if st == nil {
		return nil, errors.New("clients: New needs a store")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = bus.DefaultPrefix
	}
	if cfg.StalenessBound == 0 {
		cfg.StalenessBound = DefaultStalenessBound
	}
	if cfg.ResourceTTL == 0 {
		cfg.ResourceTTL = DefaultResourceTTL
	}
	if cfg.ClientMaxAge == 0 {
		cfg.ClientMaxAge = DefaultClientMaxAge
	}
	if cfg.StalenessBound < 0 || cfg.ResourceTTL < 0 || cfg.ClientMaxAge < 0 {
		return nil, errors.New("clients: durations must not be negative")
	}
	c := &Cache{cfg: cfg, st: st, now: time.Now, log: zap.NewNop(),
		clients: map[string]*clientEntry{}, resources: map[string]*resourceEntry{}}
	for _, o := range opts {
		o(c)
	}
	c.hits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "valet_client_cache_hits_total", Help: "Client lookups answered from the cache.",
	})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "valet_client_cache_misses_total", Help: "Client lookups that read the store because the client was not cached.",
	})
	c.readThrough = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "valet_client_cache_untrusted_reads_total", Help: "Client lookups that read the store because the client event consumer was not current.",
	})
	c.evictions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "valet_client_cache_evictions_total", Help: "Clients evicted by client events.",
	})
	c.trusted = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "valet_client_cache_trusted", Help: "1 while the client event consumer is current and the cache is trusted, else 0.",
	}, func() float64 {
		if c.Trusted() {
			return 1
		}
		return 0
	})
	if c.reg != nil {
		for _, m := range []prometheus.Collector{c.hits, c.misses, c.readThrough, c.evictions, c.trusted} {
			if err := c.reg.Register(m); err != nil {
				return nil, fmt.Errorf("clients: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Trusted reports whether cached clients may be served: the event consumer
// is current within the staleness bound.
func (c *Cache) Trusted() bool {
	cons := c.consumer.Load()
	return cons != nil && cons.Position().Current(c.now(), c.cfg.StalenessBound)
}

// Client returns the client with id: from the cache while it is trusted,
// from the store otherwise. It returns an error matching store.ErrNotFound
// for an unknown client and one matching store.ErrUnavailable (or the
// context's error) when the store cannot answer. The client is shared: never
// modify it.
func (c *Cache) Client(ctx context.Context, id string) (*store.Client, error) {
	trusted := c.Trusted()
	if trusted {
		c.mu.RLock()
		e := c.clients[id]
		c.mu.RUnlock()
		if e != nil {
			if c.now().Sub(e.loaded) < c.cfg.ClientMaxAge {
				c.hits.Inc()
				return e.client, nil
			}
		}
		c.misses.Inc()
	} else {
		c.readThrough.Inc()
	}
	epoch := c.epoch.Load()
	loaded := c.now()
	cl, err := c.st.GetClient(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("clients: load client: %w", err)
	}
	p := &cl
	// Insert only while trusted and if no event evicted anything meanwhile;
	// otherwise the next lookup reads again.
	if trusted && c.Trusted() {
		c.mu.Lock()
		if c.epoch.Load() == epoch {
			c.clients[id] = &clientEntry{client: p, loaded: loaded}
		}
		c.mu.Unlock()
	}
	return p, nil
}

// ResourceServer returns the resource server with id, from the cache when
// it was loaded less than the TTL ago, else from the store. Errors are as
// Client's. The value is shared: never modify it.
func (c *Cache) ResourceServer(ctx context.Context, id string) (*store.ResourceServer, error) {
	now := c.now()
	c.mu.RLock()
	e := c.resources[id]
	c.mu.RUnlock()
	if e != nil && now.Sub(e.loaded) < c.cfg.ResourceTTL {
		return e.rs, nil
	}
	rs, err := c.st.GetResourceServer(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.mu.Lock()
			delete(c.resources, id)
			c.mu.Unlock()
		}
		return nil, fmt.Errorf("clients: load resource server: %w", err)
	}
	p := &rs
	c.mu.Lock()
	c.resources[id] = &resourceEntry{rs: p, loaded: now}
	c.mu.Unlock()
	return p, nil
}

// Evict drops the client id from the cache, e.g. after the admin API in this
// process changed it.
func (c *Cache) Evict(id string) {
	c.mu.Lock()
	c.epoch.Add(1)
	_, ok := c.clients[id]
	delete(c.clients, id)
	c.mu.Unlock()
	if ok {
		c.evictions.Inc()
	}
}

// Purge drops every cached client and resource server.
func (c *Cache) Purge() {
	c.mu.Lock()
	c.epoch.Add(1)
	clear(c.clients)
	clear(c.resources)
	c.mu.Unlock()
}

// Handle applies one event from the stream (a bus.Handler): a client event
// evicts the client it names; anything else (heartbeats) changes nothing.
// It never fails, so the consumer never turns stale on it.
func (c *Cache) Handle(_ context.Context, e events.Event, _ bus.Meta) error {
	switch p := e.Payload.(type) {
	case *events.ClientUpdated:
		c.Evict(p.ClientID)
	case *events.ClientDeleted:
		c.Evict(p.ClientID)
	case *events.ClientSecretRotated:
		c.Evict(p.ClientID)
	case *events.ClientRevoked:
		c.Evict(p.ClientID)
	}
	return nil
}

// Subjects returns the subjects the cache consumes under prefix: the client
// events, and the heartbeats that prove the consumer current.
func Subjects(prefix string) []string {
	return []string{prefix + ".client.>", prefix + "." + string(events.TypeHeartbeat)}
}

// Run consumes client events from the revocation stream through js until
// ctx ends, then returns nil. It starts one staleness bound before the
// current time: the cache is empty when it starts, so no older event
// concerns it, and the heartbeats of that window make it trusted at once
// rather than at the next beat. A consumer that turns
// stale (an event it cannot decode) is replaced by a new one starting now,
// after the cache is purged; until the new one is current, lookups read
// through to the store.
func (c *Cache) Run(ctx context.Context, js bus.OrderedConsumers) error {
	stream := bus.StreamName(c.cfg.Prefix, events.StreamRevocations)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		opts := append([]bus.ConsumerOption{
			bus.WithStartTime(c.now().Add(-c.cfg.StalenessBound)),
			bus.WithFilterSubjects(Subjects(c.cfg.Prefix)...),
			bus.WithDecoders(1),
			bus.WithConsumeErrorHook(func(err error) {
				c.log.Debug("client event consumer", zap.Error(err))
			}),
		}, c.consumerOpts...)
		cons, err := bus.NewConsumer(js, stream, c.Handle, opts...)
		if err != nil {
			return fmt.Errorf("clients: event consumer: %w", err)
		}
		c.Purge()
		c.consumer.Store(cons)
		err = cons.Run(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		c.log.Error("client event consumer stale; purging the cache and starting again", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	c.consumer.Store(nil)
	return nil
}
