package cors

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/store"
)

// Defaults of Registry.
const (
	// DefaultRefreshInterval is how often the origin set is rebuilt from
	// the client registry.
	DefaultRefreshInterval = 5 * time.Second
	// DefaultMaxStale is how long the last set read is kept while the
	// registry cannot be read; after it no origin is allowed until a read
	// succeeds again.
	DefaultMaxStale = 2 * time.Minute
)

// Lister lists the registered clients (store.ClientStore).
type Lister interface {
	ListClients(ctx context.Context) ([]store.Client, error)
}

// RegistryOption configures NewRegistry.
type RegistryOption func(*Registry)

// WithInterval sets the refresh interval (DefaultRefreshInterval).
func WithInterval(d time.Duration) RegistryOption { return func(r *Registry) { r.interval = d } }

// WithMaxStale sets how long a set is kept without a successful read
// (DefaultMaxStale).
func WithMaxStale(d time.Duration) RegistryOption { return func(r *Registry) { r.maxStale = d } }

// WithLogger sets the logger.
func WithLogger(l *zap.Logger) RegistryOption { return func(r *Registry) { r.log = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) RegistryOption { return func(r *Registry) { r.now = now } }

// Registry is the allow-list of every enabled public client's CORSOrigins,
// rebuilt from the store by Run every interval. It fails closed: it allows
// nothing until its first successful read, keeps the last set through a
// store outage for at most the max-stale bound, and allows nothing after
// that. A client's origins appear or disappear within one interval of the
// change. It is safe for concurrent use; Allowed is a map lookup.
type Registry struct {
	st       Lister
	interval time.Duration
	maxStale time.Duration
	log      *zap.Logger
	now      func() time.Time

	set atomic.Pointer[originSet]
}

type originSet struct {
	origins map[string]struct{}
	read    time.Time
}

// NewRegistry returns a Registry reading st; it allows nothing until
// Refresh or Run has read the clients once.
func NewRegistry(st Lister, opts ...RegistryOption) (*Registry, error) {
	if st == nil {
		return nil, errors.New("cors: NewRegistry needs a client lister")
	}
	r := &Registry{st: st, interval: DefaultRefreshInterval, maxStale: DefaultMaxStale, log: zap.NewNop(), now: time.Now}
	for _, o := range opts {
		o(r)
	}
	if r.interval <= 0 || r.maxStale <= 0 {
		return nil, errors.New("cors: interval and max-stale must be positive")
	}
	return r, nil
}

// Refresh rebuilds the set from the store now. On error the previous set
// stays (within the max-stale bound).
func (r *Registry) Refresh(ctx context.Context) error {
	cs, err := r.st.ListClients(ctx)
	if err != nil {
		return err
	}
	m := map[string]struct{}{}
	for _, c := range cs {
		if c.Type != store.Public || c.Disabled {
			continue
		}
		for _, o := range c.CORSOrigins {
			if n, ok := Normalize(o); ok {
				m[n] = struct{}{}
			}
		}
	}
	r.set.Store(&originSet{origins: m, read: r.now()})
	return nil
}

// Run refreshes every interval until ctx ends.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, r.interval)
		err := r.Refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("cors: client origins not refreshed; keeping the last set within its max-stale bound", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Allowed reports whether origin, exactly as the browser sent it, belongs to
// an enabled public client, according to a read no older than the
// max-stale bound.
func (r *Registry) Allowed(origin string) bool {
	s := r.set.Load()
	if s == nil || r.now().Sub(s.read) > r.maxStale {
		return false
	}
	_, ok := s.origins[origin]
	return ok
}
