// Package redis is the Redis backend of pkg/store, on go-redis/v9, for a
// single Redis, Sentinel or Redis Cluster.
//
// Every atomic step is one Lua script (redis.NewScript, package-level values)
// whose keys are all named in KEYS and share one hash tag, so every script
// runs in a single Redis Cluster slot (keys.go): the keys of one grant share
// {fid}; a revocation's outbox entry goes to a shard tagged like its deny
// state (outbox.go); cut-offs, which live in other slots, are read in the
// same round trip as a grant's script and checked by the store (grants.go).
// Everything that expires carries a TTL. docs/redis.md describes the key
// schema.
//
// New refuses a Redis that may evict keys (maxmemory-policy other than
// noeviction): an evicted revocation would bring a revoked token back.
package redis

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/store"
)

// Store implements store.Store on Redis.
type Store struct {
	rdb    goredis.UniversalClient
	prefix string
	aead   cipher.AEAD
	log    *zap.Logger
	// retain and maxGrant: see WithDenyRetention and WithMaxGrantLifetime
	// (grants.go).
	retain   time.Duration
	maxGrant time.Duration
	// batch coalesces concurrent round trips (batch.go); nil when off.
	batch    *batcher
	batching bool
	flushers int
	// shards remembers the outbox shard of the entries this store queued
	// or read, for AckOutbox, which is given only an id (outbox.go).
	shardsMu sync.Mutex
	shards   map[string]string
	// regs caches the registrations of the shards Revoke queues into, so
	// that a revocation into a shard registered moments ago is one round
	// trip (outbox.go, "Registrations").
	regsMu sync.Mutex
	regs   map[string]registration
}

var _ store.Store = (*Store)(nil)

// Option configures New.
type Option func(*Store)

// WithPrefix puts prefix (default "valet:") in front of every key; it must
// not contain '{' or '}', which would break hash tags.
func WithPrefix(prefix string) Option { return func(s *Store) { s.prefix = prefix } }

// WithLogger sets the logger (default: no-op).
func WithLogger(l *zap.Logger) Option { return func(s *Store) { s.log = l } }

// WithoutBatching sends every round trip on its own instead of coalescing
// concurrent ones into pipelines (batch.go). Batching is on by default: it
// is what lets a small box reach the throughput in docs/redis.md.
func WithoutBatching() Option { return func(s *Store) { s.batching = false } }

// WithBatchFlushers sets how many batches may be in flight at once (default
// 2; at least 1). One suits a store that mostly reads, such as
// introspection's deny-state checks: its batches grow deeper and each
// request costs less CPU on both sides (docs/redis.md, "Throughput"); two
// suit the grant scripts, whose run in Redis overlaps the next batch.
func WithBatchFlushers(n int) Option { return func(s *Store) { s.flushers = n } }

// New returns a Store on rdb. aead seals the refresh-token successors kept
// for the grace window (the fid is the associated data); it is required.
// New checks that Redis never evicts and warns when it persists nothing.
func New(ctx context.Context, rdb goredis.UniversalClient, aead cipher.AEAD, opts ...Option) (*Store, error) {
	s := &Store{rdb: rdb, prefix: "valet:", aead: aead, log: zap.NewNop(),
		retain: defaultDenyRetention, maxGrant: defaultMaxGrantLifetime, batching: true, flushers: batchFlushers,
		shards: map[string]string{}, regs: map[string]registration{}}
	for _, o := range opts {
		o(s)
	}
	if s.flushers < 1 {
		return nil, errors.New("redis store: at least one batch flusher is needed")
	}
	if s.retain <= 0 || s.maxGrant <= 0 {
		return nil, errors.New("redis store: deny retention and maximum grant lifetime must be positive")
	}
	if aead == nil {
		return nil, errors.New("redis store: an AEAD for refresh-token successors is required")
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return nil, fmt.Errorf("redis store: prefix %q must not contain '{' or '}'", s.prefix)
	}
	if err := s.checkServer(ctx); err != nil {
		return nil, err
	}
	if s.batching {
		s.batch = newBatcher(rdb, s.flushers)
	}
	return s, nil
}

// checkServer refuses eviction and warns about missing persistence. It reads
// INFO rather than CONFIG GET, which managed Redis services often disable.
func (s *Store) checkServer(ctx context.Context) error {
	info, err := s.rdb.Info(ctx, "memory", "persistence").Result()
	if err != nil {
		return wrap("check redis configuration", err)
	}
	fields := parseInfo(info)
	if p, ok := fields["maxmemory_policy"]; ok && p != "noeviction" {
		return fmt.Errorf("redis store: maxmemory-policy is %q; Valet needs noeviction, because an evicted revocation or refresh family would silently bring a revoked token back (set maxmemory-policy noeviction)", p)
	}
	if fields["aof_enabled"] == "0" && fields["rdb_last_save_time"] != "" && fields["rdb_changes_since_last_save"] != "" {
		if save, err := s.rdb.ConfigGet(ctx, "save").Result(); err == nil && save["save"] == "" {
			s.log.Warn("redis persists nothing (no AOF, no RDB snapshots): a Redis restart loses every refresh family and revocation mark; the stream still holds revocations (valet replay rebuilds them)")
		}
	}
	return nil
}

func parseInfo(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			out[k] = v
		}
	}
	return out
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// Client returns the Redis client, for packages that keep their own keys in
// the same Redis under the same prefix (users, login rate limits).
func (s *Store) Client() goredis.UniversalClient { return s.rdb }

// Close stops the batcher, once the round trips in flight are answered, and
// closes the client.
func (s *Store) Close() error {
	if s.batch != nil {
		s.batch.close()
	}
	return s.rdb.Close()
}

// wrap turns a go-redis error into a store error: redis.Nil is ErrNotFound,
// context errors stay themselves, and anything else (network, server) is
// ErrUnavailable so that the HTTP layer answers 503, never a false negative.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %v", op, store.ErrUnavailable, err)
}

// ms converts a time to Unix milliseconds, the unit every script uses.
func ms(t time.Time) int64 { return t.UnixMilli() }
