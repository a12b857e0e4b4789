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

// Attempts caps attempts per key in fixed windows, in Redis, so that the cap
// holds across every replica: the device flow's user-code entry (RFC 8628
// §5.1), where a guess is cheap for the guesser and each one must count.
//
// Take reserves one attempt on every key it is given, all or nothing, in one
// Lua script: concurrent guesses on any replica cannot overshoot a cap,
// because the count goes up before the guess is checked, not after it
// failed. Refund gives the attempt back when it turned out not to be a guess
// (a valid code, a store outage), so that only failures stay counted. A
// key's window starts with its first counted attempt and ends Window later
// (the key's TTL); at the cap, Take answers the time left until the window
// ends.
//
// All the keys of one Attempts share the hash tag {Name}, so a script may
// touch several of them on Redis Cluster; each limiter thus lives in one
// slot, which is fine for a human-paced flow.
//
// Errors from Redis are returned as they are: callers fail closed.
type Attempts struct {
	rdb    redis.Cmdable
	prefix string
	cfg    AttemptsConfig
}

// AttemptsConfig sets an attempt limiter's name and window.
type AttemptsConfig struct {
	// Name separates the keys of different limiters ("device").
	Name string
	// Window is how long a key's count lasts from its first attempt.
	Window time.Duration
}

// Limit is one key to count and its cap within the window.
type Limit struct {
	// ID names what is counted (a client address, a session). It is hashed
	// before it becomes part of a Redis key.
	ID string
	// Max is how many attempts the window allows.
	Max int
}

// maxLimits bounds the keys of one Take or Refund.
const maxLimits = 8

// NewAttempts returns a limiter whose keys start with prefix.
func NewAttempts(rdb redis.Cmdable, prefix string, cfg AttemptsConfig) (*Attempts, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: redis client is required")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Attempts{rdb: rdb, prefix: prefix, cfg: cfg}, nil
}

func (c AttemptsConfig) validate() error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, "{} "):
		return fmt.Errorf("ratelimit: invalid name %q", c.Name)
	case c.Window < time.Millisecond:
		return errors.New("ratelimit: Window must be at least 1ms")
	}
	return nil
}

func checkLimits(limits []Limit) error {
	if len(limits) == 0 || len(limits) > maxLimits {
		return fmt.Errorf("ratelimit: 1 to %d limits per call", maxLimits)
	}
	for _, l := range limits {
		if l.Max < 1 {
			return fmt.Errorf("ratelimit: limit %q: Max must be at least 1", l.ID)
		}
	}
	return nil
}

// key is the Redis key of id: hashed, so that user input never reaches a
// key name, under the limiter's hash tag.
func (a *Attempts) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return a.prefix + "rl:{" + a.cfg.Name + "}:" + hex.EncodeToString(sum[:16])
}

func (a *Attempts) keys(limits []Limit) []string {
	k := make([]string, len(limits))
	for i, l := range limits {
		k[i] = a.key(l.ID)
	}
	return k
}

// takeScript: KEYS[i] the counter of limit i (a string holding the count,
// expiring when its window ends). ARGV[1] the window in ms, ARGV[1+i] the
// cap of limit i. If any counter is at its cap, nothing changes and the
// reply is the longest time left (ms) among those at their cap; otherwise
// every counter goes up by one (a new one expires after the window) and the
// reply is 0.
var takeScript = redis.NewScript(`
local window = tonumber(ARGV[1])
local wait = 0
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', k)
    if ttl < 0 then
      redis.call('PEXPIRE', k, window)
      ttl = window
    end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for _, k in ipairs(KEYS) do
  redis.call('INCR', k)
  if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, window) end
end
return 0
`)

// refundScript: KEYS[i] the counters. Each positive counter goes down by
// one, keeping its expiry; a missing one stays missing. Replies 0.
var refundScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n > 0 then redis.call('DECR', k) end
end
return 0
`)

// Take reserves one attempt on every limit, or none: it returns 0 when the
// attempt may go ahead, or the time left until the fullest key's window
// ends.
func (a *Attempts) Take(ctx context.Context, limits ...Limit) (time.Duration, error) {
	if err := checkLimits(limits); err != nil {
		return 0, err
	}
	args := make([]any, 0, 1+len(limits))
	args = append(args, a.cfg.Window.Milliseconds())
	for _, l := range limits {
		args = append(args, l.Max)
	}
	ms, err := takeScript.Run(ctx, a.rdb, a.keys(limits), args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: %s: take: %w", a.cfg.Name, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Refund gives back an attempt Take reserved on the same limits, once it is
// known not to have been a failure.
func (a *Attempts) Refund(ctx context.Context, limits ...Limit) error {
	if err := checkLimits(limits); err != nil {
		return err
	}
	if err := refundScript.Run(ctx, a.rdb, a.keys(limits)).Err(); err != nil {
		return fmt.Errorf("ratelimit: %s: refund: %w", a.cfg.Name, err)
	}
	return nil
}
