package ratelimit

import (
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Requests is a keyed token-bucket limiter kept in this process's memory
// (golang.org/x/time/rate, one bucket per key), for limits that sit on a hot
// path: failed client authentications per client address, requests per
// client (docs/security.md, "Request rate limits").
//
// It is per replica by design. A shared limiter would cost a Redis round
// trip on every request of endpoints that otherwise need none (client
// credentials issuance) or exactly one (introspection); kept in memory, an
// answer costs one map lookup and one bucket update. The limit a cluster
// enforces is therefore the per-replica limit times the replicas a client's
// requests are spread over. Use Attempts where every attempt must count
// cluster-wide (guesses of a short code).
//
// Memory is bounded: at most Capacity keys are held. A key is added only when
// a token is taken from it (Allow, Spend), never by Peek; when its shard is
// full, an idle key (a full bucket, which answers as an absent key would) or
// else the least recently used of a small random sample is evicted first, so
// spraying keys costs the sprayer O(1) per key and never grows the table.
//
// Requests is safe for concurrent use.
type Requests struct {
	limit    rate.Limit
	burst    int
	now      func() time.Time
	seed     maphash.Seed
	shards   []requestShard
	mask     uint64
	perShard int
}

// RequestsConfig sets a Requests limiter's shape.
type RequestsConfig struct {
	// Rate is how many tokens a key earns per second, sustained (> 0).
	Rate float64
	// Burst is how many tokens a key holds at most, and starts with (>= 1).
	Burst int
	// Capacity bounds the keys held (0: DefaultRequestsCapacity).
	Capacity int
}

// DefaultRequestsCapacity is the key capacity of NewRequests when none is
// given: a few MiB at most (a key costs under 200 bytes).
const DefaultRequestsCapacity = 65_536

// Bounds of the shard table: shards share the keys' capacity, and each holds
// at least minPerShard keys so that eviction has something to choose from.
const (
	maxShards   = 64
	minPerShard = 16
	// evictSample is how many entries an eviction looks at.
	evictSample = 8
)

// requestShard is one lock's share of the keys, padded to its own cache
// lines so that shards do not contend through false sharing.
type requestShard struct {
	mu sync.RWMutex
	m  map[string]*bucket
	_  [32]byte // with the lock (24 bytes) and the map: one cache line
}

// bucket is one key's token bucket and when it was last used (Unix ns), for
// eviction.
//
// mu orders the calls on lim and the clock reads they carry: rate.Limiter
// takes a time from its caller, and one that arrives later with an older time
// than the previous call's sets the limiter back, so that the next call
// counts the refill in between a second time. Reading the clock under mu
// hands lim non-decreasing times.
type bucket struct {
	mu   sync.Mutex
	lim  *rate.Limiter
	last atomic.Int64
}

// Option configures NewRequests.
type Option func(*Requests)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(r *Requests) {
		if now != nil {
			r.now = now
		}
	}
}

// NewRequests returns an in-memory limiter of cfg.Rate tokens per second and
// bursts of cfg.Burst per key, or an error for a rate or burst out of range.
func NewRequests(cfg RequestsConfig, opts ...Option) (*Requests, error) {
	switch {
	case math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) || cfg.Rate <= 0:
		return nil, errors.New("ratelimit: Rate must be a positive number of tokens per second")
	case cfg.Burst < 1:
		return nil, errors.New("ratelimit: Burst must be at least 1")
	case cfg.Capacity < 0:
		return nil, errors.New("ratelimit: Capacity must not be negative")
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultRequestsCapacity
	}
	n := 1
	for n < maxShards && cfg.Capacity/(n*2) >= minPerShard {
		n *= 2
	}
	r := &Requests{
		limit: rate.Limit(cfg.Rate), burst: cfg.Burst, now: time.Now, seed: maphash.MakeSeed(),
		shards: make([]requestShard, n), mask: uint64(n - 1), perShard: max(cfg.Capacity/n, 1),
	}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*bucket)
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

func (r *Requests) shard(key string) *requestShard {
	return &r.shards[maphash.String(r.seed, key)&r.mask]
}

// lookup returns key's bucket, or nil.
func (r *Requests) lookup(key string) *bucket {
	s := r.shard(key)
	s.mu.RLock()
	b := s.m[key]
	s.mu.RUnlock()
	return b
}

// bucketOf returns key's bucket, adding a full one (and evicting another
// when the shard is full) if there is none.
func (r *Requests) bucketOf(key string, now time.Time) *bucket {
	s := r.shard(key)
	s.mu.RLock()
	b := s.m[key]
	s.mu.RUnlock()
	if b != nil {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b = s.m[key]; b != nil {
		return b
	}
	if len(s.m) >= r.perShard {
		r.evict(s, now)
	}
	b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
	s.m[key] = b
	return b
}

// evict drops one entry of the full shard s (locked): the first idle one of
// a random sample (Go randomises map iteration), or else the sample's least
// recently used. Evicting an idle bucket changes no answer.
func (r *Requests) evict(s *requestShard, now time.Time) {
	var victim string
	oldest := int64(math.MaxInt64)
	seen := 0
	for k, b := range s.m {
		if b.lim.TokensAt(now) >= float64(r.burst) {
			victim = k
			break
		}
		if l := b.last.Load(); l < oldest {
			victim, oldest = k, l
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(s.m, victim)
}

// Allow takes a token from key's bucket: true when there was one, else false
// and how long until one is available (for Retry-After).
func (r *Requests) Allow(key string) (bool, time.Duration) {
	b := r.bucketOf(key, r.now())
	b.mu.Lock()
	defer b.mu.Unlock()
	now := r.now()
	b.last.Store(now.UnixNano())
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, r.wait(b, now)
}

// Peek reports whether key's bucket has a token, without taking it: true, or
// false and how long until one is available. A key never charged has a full
// bucket and is not added.
func (r *Requests) Peek(key string) (bool, time.Duration) {
	b := r.lookup(key)
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := r.now()
	b.last.Store(now.UnixNano())
	if b.lim.TokensAt(now) >= 1 {
		return true, 0
	}
	return false, r.wait(b, now)
}

// Spend takes a token from key's bucket even when it has none: the bucket
// goes into debt, so that every spend counts and the wait grows with the
// debt. It is how failures are counted after the fact (Peek first, Spend on
// failure): concurrent requests that all passed Peek still pay for each
// failure. The debt is bounded by the requests in flight when the bucket ran
// out, since Peek refuses the key from then on.
func (r *Requests) Spend(key string) {
	b := r.bucketOf(key, r.now())
	b.mu.Lock()
	defer b.mu.Unlock()
	now := r.now()
	b.last.Store(now.UnixNano())
	b.lim.ReserveN(now, 1)
}

// wait is how long until b holds a whole token at the limiter's rate.
func (r *Requests) wait(b *bucket, now time.Time) time.Duration {
	missing := 1 - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	secs := missing / float64(r.limit)
	if secs >= float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(secs * float64(time.Second)))
}

// Len returns how many keys are held (at most the capacity).
func (r *Requests) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
