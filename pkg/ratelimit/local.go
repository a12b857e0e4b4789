package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"
)

// LocalAttempts is Attempts kept in this process's memory, for deployments
// that are one process by construction: `valet dev` on the embedded store,
// whose file only one process may open. It holds nothing across replicas;
// a service that can run as several replicas uses Attempts.
//
// The table is bounded: when it is full, windows that have ended are
// dropped, then the oldest one. Evicting a live count forgets failures, so
// the capacity must exceed the keys a window can see.
type LocalAttempts struct {
	mu       sync.Mutex
	window   time.Duration
	capacity int
	now      func() time.Time
	m        map[string]*localCount
}

type localCount struct {
	n     int
	start time.Time
}

// DefaultLocalCapacity is the key capacity of NewLocalAttempts when none is
// given.
const DefaultLocalCapacity = 100_000

// NewLocalAttempts returns an in-memory limiter with cfg's window (Name is
// only checked, for symmetry with NewAttempts) holding at most capacity keys
// (0: DefaultLocalCapacity), on the clock now (nil: time.Now).
func NewLocalAttempts(cfg AttemptsConfig, capacity int, now func() time.Time) (*LocalAttempts, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if capacity < 0 {
		return nil, errors.New("ratelimit: capacity must not be negative")
	}
	if capacity == 0 {
		capacity = DefaultLocalCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &LocalAttempts{window: cfg.Window, capacity: capacity, now: now, m: map[string]*localCount{}}, nil
}

// live returns the count of id if its window is still running.
func (l *LocalAttempts) live(id string, now time.Time) *localCount {
	c, ok := l.m[id]
	if !ok || now.Sub(c.start) >= l.window {
		return nil
	}
	return c
}

// Take behaves as Attempts.Take.
func (l *LocalAttempts) Take(_ context.Context, limits ...Limit) (time.Duration, error) {
	if err := checkLimits(limits); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, lim := range limits {
		if c := l.live(lim.ID, now); c != nil && c.n >= lim.Max {
			wait = max(wait, c.start.Add(l.window).Sub(now))
		}
	}
	if wait > 0 {
		return wait, nil
	}
	for _, lim := range limits {
		if c := l.live(lim.ID, now); c != nil {
			c.n++
			continue
		}
		if _, ok := l.m[lim.ID]; !ok && len(l.m) >= l.capacity {
			l.sweep(now)
		}
		l.m[lim.ID] = &localCount{n: 1, start: now}
	}
	return 0, nil
}

// Refund behaves as Attempts.Refund.
func (l *LocalAttempts) Refund(_ context.Context, limits ...Limit) error {
	if err := checkLimits(limits); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, lim := range limits {
		if c := l.live(lim.ID, now); c != nil && c.n > 0 {
			c.n--
		}
	}
	return nil
}

// sweep drops ended windows and, if the table is still full, the oldest
// entry.
func (l *LocalAttempts) sweep(now time.Time) {
	var oldest string
	var at time.Time
	for k, c := range l.m {
		if now.Sub(c.start) >= l.window {
			delete(l.m, k)
			continue
		}
		if oldest == "" || c.start.Before(at) {
			oldest, at = k, c.start
		}
	}
	if len(l.m) >= l.capacity && oldest != "" {
		delete(l.m, oldest)
	}
}
