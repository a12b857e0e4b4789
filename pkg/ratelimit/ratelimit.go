// Package ratelimit slows guessing with limits kept in Redis, so that they
// hold across every issuer replica: growing back-off for passwords (Backoff,
// Login) and capped attempts per window for cheap guesses such as device
// user codes (Attempts; LocalAttempts is its in-memory twin for the
// single-process embedded deployment). Requests is the exception, a keyed
// token bucket kept in memory for limits on hot paths, where a Redis round
// trip per request would cost more than the limit is worth (requests.go;
// subpackage clientlimit applies it at the client-authenticated endpoints).
//
// A Backoff counts failures per key (an account, a client address). The
// first Free failures cost nothing; each further failure makes the key wait
// Base, then twice that, and so on up to Max, before the next attempt is
// allowed. The count is forgotten Window after the last failure (or after
// the wait, if longer), and Reset forgets it at once (a correct password).
// Nothing is ever locked for good: the wait never exceeds Max.
//
// Attempts are reserved atomically: once a key is in back-off, Acquire lets
// one attempt through and at the same moment sets the wait that a failure
// of that attempt would earn, so concurrent attempts on any replica are
// refused rather than all checked. Every step is one Lua script that reads
// the clock of Redis (TIME), so replicas with skewed clocks agree; every key
// a script touches is in KEYS, and each script touches one key (Redis
// Cluster safe).
//
// Errors from Redis are returned as they are: callers fail closed.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff is one growing back-off limiter, safe for concurrent use.
type Backoff struct {
	rdb    redis.Cmdable
	prefix string
	cfg    BackoffConfig
}

// BackoffConfig sets the shape of a back-off.
type BackoffConfig struct {
	// Name separates the keys of different limiters ("login:acct").
	Name string
	// Free is how many failures are allowed before any wait.
	Free int
	// Base is the wait after the first failure beyond Free; each further
	// failure doubles it.
	Base time.Duration
	// Max caps the wait.
	Max time.Duration
	// Window is how long a count is kept after the last failure.
	Window time.Duration
}

// NewBackoff returns a limiter whose keys start with prefix and cfg.Name.
func NewBackoff(rdb redis.Cmdable, prefix string, cfg BackoffConfig) (*Backoff, error) {
	switch {
	case rdb == nil:
		return nil, errors.New("ratelimit: redis client is required")
	case cfg.Name == "" || strings.ContainsAny(cfg.Name, "{} "):
		return nil, fmt.Errorf("ratelimit: invalid name %q", cfg.Name)
	case cfg.Free < 0:
		return nil, errors.New("ratelimit: Free must not be negative")
	case cfg.Base < time.Millisecond || cfg.Max < cfg.Base:
		return nil, errors.New("ratelimit: need 1ms <= Base <= Max")
	case cfg.Window < cfg.Max:
		return nil, errors.New("ratelimit: Window must be at least Max")
	}
	return &Backoff{rdb: rdb, prefix: prefix, cfg: cfg}, nil
}

// key is the Redis key of id: hashed, so user input (a username) never
// reaches a key name and keys have a bounded length.
func (b *Backoff) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return b.prefix + "rl:" + b.cfg.Name + ":" + hex.EncodeToString(sum[:16])
}

func (b *Backoff) args() []any {
	return []any{b.cfg.Free, b.cfg.Base.Milliseconds(), b.cfg.Max.Milliseconds(), b.cfg.Window.Milliseconds()}
}

// waitLua is the shared head of the scripts: the wait earned by n
// failures, Redis's clock in ms, and the arguments.
const waitLua = `
local function waitfor(n, free, base, max)
  if n <= free then return 0 end
  local e = n - free - 1
  if e > 40 then return max end
  local w = base * (2 ^ e)
  if w > max then w = max end
  return w
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free, base, max, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
`

// acquireScript: KEYS[1] the counter (hash n, until in ms of Redis time).
// Returns the wait in ms (0: the attempt may go ahead). In back-off, letting
// an attempt through reserves the wait its failure would earn.
var acquireScript = redis.NewScript(waitLua + `
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local u = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if u > now then return u - now end
local w = waitfor(n + 1, free, base, max)
if w > 0 then
  redis.call('HSET', KEYS[1], 'until', now + w)
  redis.call('PEXPIRE', KEYS[1], window + w)
end
return 0
`)

// failScript: KEYS[1] the counter. Counts a failure and returns the wait in
// ms it earned.
var failScript = redis.NewScript(waitLua + `
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local w = waitfor(n, free, base, max)
if w > 0 then
  local u = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  if now + w > u then redis.call('HSET', KEYS[1], 'until', now + w) end
end
redis.call('PEXPIRE', KEYS[1], window + w)
return w
`)

// Acquire asks whether an attempt for id may go ahead now. It returns 0 and
// reserves the attempt, or the time left to wait.
func (b *Backoff) Acquire(ctx context.Context, id string) (time.Duration, error) {
	ms, err := acquireScript.Run(ctx, b.rdb, []string{b.key(id)}, b.args()...).Int64()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %s: %w", b.cfg.Name, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Fail counts a failed attempt for id and returns the wait it earned.
func (b *Backoff) Fail(ctx context.Context, id string) (time.Duration, error) {
	ms, err := failScript.Run(ctx, b.rdb, []string{b.key(id)}, b.args()...).Int64()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %s: %w", b.cfg.Name, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Reset forgets id's failures.
func (b *Backoff) Reset(ctx context.Context, id string) error {
	if err := b.rdb.Del(ctx, b.key(id)).Err(); err != nil {
		return fmt.Errorf("ratelimit: %s: %w", b.cfg.Name, err)
	}
	return nil
}
