package issuer

// Password-guessing limits (docs/authorize.md, "Password guessing"): the
// client address a request counts against, and the LoginLimiter the login
// handler asks before it hashes a password.

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/server"
)

// LoginLimiter slows password guessing per account and per client address,
// across replicas (*ratelimit.Login, in Redis). Errors mean the limits
// cannot be read: the login fails closed (503).
type LoginLimiter interface {
	// Allow returns 0 when an attempt may go ahead (and reserves it), or how
	// long to wait.
	Allow(ctx context.Context, username, addr string) (time.Duration, error)
	// Failed counts a wrong password.
	Failed(ctx context.Context, username, addr string) (time.Duration, error)
	// Succeeded forgets the account's failures.
	Succeeded(ctx context.Context, username, addr string) error
}

var _ LoginLimiter = (*ratelimit.Login)(nil)

// clientAddr is the address a request counts against: the address
// pkg/server resolves (X-Forwarded-For believed only from trusted proxies),
// as the request limits of pkg/ratelimit/clientlimit count it (IPv6 per
// /64, which one subscriber usually holds whole).
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	return clientlimit.Addr(server.ClientIP(r, trusted))
}

// retryAfterSeconds renders a wait for Retry-After: whole seconds, at
// least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// waitText says a wait the way the login page does.
func waitText(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	switch {
	case s <= 1:
		return "a second"
	case s < 90:
		return strconv.FormatInt(int64(s), 10) + " seconds"
	default:
		return strconv.FormatInt(int64((s+59)/60), 10) + " minutes"
	}
}

// loginLimits is the login handler's share of the limits.
type loginLimits struct {
	limiter LoginLimiter // nil: none
	trusted []netip.Prefix
}

func newLoginLimits(cfg *config.Config, l LoginLimiter) (loginLimits, error) {
	trusted, err := cfg.Limits.TrustedProxyPrefixes()
	if err != nil {
		return loginLimits{}, fmt.Errorf("issuer: limits.trusted_proxies: %w", err)
	}
	return loginLimits{limiter: l, trusted: trusted}, nil
}
