package ratelimit

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Login limits password guessing per account and per client address.
//
// The per-address limit is the strict one: it allows more failures (a NAT
// shares an address) but grows to a long wait. The per-account limit
// allows fewer failures but caps its wait lower: anyone can make an
// account wait by failing on purpose from many addresses, so the wait an
// attacker can impose on a legitimate user stays short (AccountMax), while
// guessing one account from many addresses is still held to one try per
// AccountMax. Nothing is locked out for good.
type Login struct {
	account, addr *Backoff
}

// LoginConfig sets the login limits; zero values take the defaults.
type LoginConfig struct {
	// AccountFailures and AddrFailures are the failures allowed before
	// back-off (defaults 5 and 20).
	AccountFailures, AddrFailures int
	// AccountMax and AddrMax cap the waits (defaults 5m and 15m); waits
	// start at Base (default 1s) and double.
	AccountMax, AddrMax, Base time.Duration
	// Window is how long failures are remembered after the last one
	// (default 1h).
	Window time.Duration
}

// Default login limits.
const (
	DefaultAccountFailures = 5
	DefaultAddrFailures    = 20
	DefaultAccountMax      = 5 * time.Minute
	DefaultAddrMax         = 15 * time.Minute
	DefaultBase            = time.Second
	DefaultWindow          = time.Hour
)

// NewLogin returns the login limiter on rdb, with keys under prefix.
func NewLogin(rdb redis.Cmdable, prefix string, cfg LoginConfig) (*Login, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.AccountFailures, DefaultAccountFailures)
	def(&cfg.AddrFailures, DefaultAddrFailures)
	defd(&cfg.AccountMax, DefaultAccountMax)
	defd(&cfg.AddrMax, DefaultAddrMax)
	defd(&cfg.Base, DefaultBase)
	defd(&cfg.Window, DefaultWindow)
	acct, err := NewBackoff(rdb, prefix, BackoffConfig{Name: "login:acct", Free: cfg.AccountFailures,
		Base: cfg.Base, Max: cfg.AccountMax, Window: max(cfg.Window, cfg.AccountMax)})
	if err != nil {
		return nil, err
	}
	addr, err := NewBackoff(rdb, prefix, BackoffConfig{Name: "login:addr", Free: cfg.AddrFailures,
		Base: cfg.Base, Max: cfg.AddrMax, Window: max(cfg.Window, cfg.AddrMax)})
	if err != nil {
		return nil, err
	}
	return &Login{account: acct, addr: addr}, nil
}

// accountID normalises a username for counting: case and surrounding
// spaces do not make a new account to guess.
func accountID(username string) string { return strings.ToLower(strings.TrimSpace(username)) }

// Allow asks whether a password attempt for username from addr may go
// ahead: 0, or how long to wait. The address is checked first, so a
// throttled address does not reserve the account's next attempt.
func (l *Login) Allow(ctx context.Context, username, addr string) (time.Duration, error) {
	if w, err := l.addr.Acquire(ctx, addr); err != nil || w > 0 {
		return w, err
	}
	return l.account.Acquire(ctx, accountID(username))
}

// Failed counts a wrong password; it returns the longer of the two waits
// earned.
func (l *Login) Failed(ctx context.Context, username, addr string) (time.Duration, error) {
	wa, err1 := l.addr.Fail(ctx, addr)
	wu, err2 := l.account.Fail(ctx, accountID(username))
	return max(wa, wu), errors.Join(err1, err2)
}

// Succeeded forgets the account's failures. The address's are kept until
// they expire: otherwise a guesser holding one valid account could clear
// its address's count by signing in to it now and then.
func (l *Login) Succeeded(ctx context.Context, username, _ string) error {
	return l.account.Reset(ctx, accountID(username))
}
