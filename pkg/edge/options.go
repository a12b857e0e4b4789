package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
)

// Defaults of the optional settings.
const (
	// DefaultClockSkew is the allowance for clock differences between
	// issuers and edges, applied to exp, nbf, iat and cut-offs.
	DefaultClockSkew = 30 * time.Second
	// DefaultStalenessBound is how long the edge keeps answering after it
	// last proved it was current: three heartbeat intervals.
	DefaultStalenessBound = 3 * bus.DefaultHeartbeatInterval
	// DefaultCacheSize is how many verified tokens the cache holds.
	DefaultCacheSize = 1 << 16
	// DefaultUnknownKIDInterval is the least time between two JWKS fetches
	// caused by tokens naming an unknown kid.
	DefaultUnknownKIDInterval = 5 * time.Second
	// DefaultJWKSRefreshInterval is how often JWKS is refetched when
	// nothing else triggered a fetch.
	DefaultJWKSRefreshInterval = 5 * time.Minute
	// DefaultSweepInterval is how often expired deny entries and cached
	// tokens are dropped.
	DefaultSweepInterval = time.Minute
	// maxTokenBytes bounds a token before any work is done on it.
	maxTokenBytes = 16 << 10
)

// JetStream is the part of jetstream.JetStream the edge calls: ordered
// consumers of the revocation and key streams. A jetstream.JetStream
// satisfies it.
type JetStream interface {
	OrderedConsumer(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error)
}

var _ JetStream = jetstream.JetStream(nil)

// Config is what every edge must be told.
type Config struct {
	// Issuer is the exact iss every token must carry (RFC 8414 issuer
	// identifier).
	Issuer string
	// Audience is the audience this edge protects; a token's aud must
	// contain it.
	Audience string
	// JWKSURL is the issuer's JWKS, fetched over HTTPS (plain HTTP only
	// for a loopback host, as in `valet dev`). It is the only source of
	// key material.
	JWKSURL string
	// JetStream carries the revocation and key streams.
	JetStream JetStream
	// MaxTokenLifetime is the longest access-token lifetime any issuer of
	// the cluster may configure. It sizes the replay window and how long
	// deny entries are kept; tokens claiming a longer lifetime are
	// refused.
	MaxTokenLifetime time.Duration
}

// Observer receives the edge's signals, for metrics and logs without a
// dependency on either. Every func is optional, called synchronously and
// must not block; OnDecision is on the request path.
type Observer struct {
	// OnDecision is told every Verify outcome: ReasonOK or a rejection
	// reason (valet_edge_decisions_total{reason}).
	OnDecision func(reason string)
	// OnRevocationApplied is told every revocation applied to the deny
	// state, with the event's time: now − eventTime is the revocation
	// propagation time. replay is true while the edge is catching up.
	OnRevocationApplied func(t events.Type, eventTime time.Time, replay bool)
	// OnKeyLearned is told when a key announced live on the key stream
	// becomes usable (fetched from JWKS with the announced thumbprint):
	// now − eventTime is the key propagation time.
	OnKeyLearned func(kid string, eventTime time.Time)
	// OnJWKSFetch is told every JWKS fetch: how long it took, and an error
	// when it failed, when an announced kid stayed unusable (a JWKS
	// mismatch), or when JWKS held entries the edge ignored.
	OnJWKSFetch func(took time.Duration, err error)
	// OnStreamError is told the errors of the stream consumers: transient
	// ones (reconnects) and the stale error of an event that cannot be
	// applied.
	OnStreamError func(stream string, err error)
}

// Option configures a Verifier.
type Option func(*settings)

type settings struct {
	prefix          string
	skew            time.Duration
	bound           time.Duration
	replayWindow    time.Duration
	cacheSize       int
	unknownInterval time.Duration
	refreshInterval time.Duration
	sweepInterval   time.Duration
	client          *http.Client
	obs             Observer
	now             func() time.Time
}

// WithSubjectPrefix sets the subject prefix of the cluster's streams.
// Default bus.DefaultPrefix ("valet").
func WithSubjectPrefix(prefix string) Option { return func(s *settings) { s.prefix = prefix } }

// WithClockSkew sets the clock-skew allowance (0 to 5 minutes). Default
// DefaultClockSkew.
func WithClockSkew(d time.Duration) Option { return func(s *settings) { s.skew = d } }

// WithStalenessBound sets how long after it last proved it was current the
// edge keeps verifying tokens; past it, every Verify returns ErrStale. It
// must exceed the heartbeat interval, with room for a few missed beats.
// Default DefaultStalenessBound.
func WithStalenessBound(d time.Duration) Option { return func(s *settings) { s.bound = d } }

// WithReplayWindow sets how far back the revocation stream is replayed at
// start. It must be at least MaxTokenLifetime plus the skew, the default.
func WithReplayWindow(d time.Duration) Option { return func(s *settings) { s.replayWindow = d } }

// WithCacheSize sets how many verified tokens are cached; 0 disables the
// cache. Default DefaultCacheSize.
func WithCacheSize(n int) Option { return func(s *settings) { s.cacheSize = n } }

// WithUnknownKIDInterval sets the least time between JWKS fetches caused by
// unknown kids. Default DefaultUnknownKIDInterval.
func WithUnknownKIDInterval(d time.Duration) Option {
	return func(s *settings) { s.unknownInterval = d }
}

// WithJWKSRefreshInterval sets how often JWKS is refetched without a
// trigger. Default DefaultJWKSRefreshInterval.
func WithJWKSRefreshInterval(d time.Duration) Option {
	return func(s *settings) { s.refreshInterval = d }
}

// WithSweepInterval sets how often expired entries are dropped. Default
// DefaultSweepInterval.
func WithSweepInterval(d time.Duration) Option { return func(s *settings) { s.sweepInterval = d } }

// WithHTTPClient sets the client JWKS is fetched with. Default a client
// with a 10 s timeout.
func WithHTTPClient(c *http.Client) Option { return func(s *settings) { s.client = c } }

// WithObserver sets the observer.
func WithObserver(o Observer) Option { return func(s *settings) { s.obs = o } }

// WithClock sets the clock for token times, deny-state expiry and the
// staleness bound. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// validate checks cfg and the settings after defaults, naming every problem.
func validate(cfg Config, s *settings) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.Issuer == "" {
		add("Issuer is required")
	}
	if cfg.Audience == "" {
		add("Audience is required")
	}
	if cfg.JetStream == nil {
		add("JetStream is required")
	}
	if cfg.MaxTokenLifetime <= 0 {
		add("MaxTokenLifetime is required: it sizes the replay window")
	}
	if err := checkJWKSURL(cfg.JWKSURL); err != nil {
		errs = append(errs, err)
	}
	if !validPrefix(s.prefix) {
		add("subject prefix %q must be one token of [A-Za-z0-9_-]", s.prefix)
	}
	if s.skew < 0 || s.skew > 5*time.Minute {
		add("clock skew %s must be within 0..5m", s.skew)
	}
	if s.bound <= 0 {
		add("staleness bound must be positive")
	}
	if s.replayWindow < cfg.MaxTokenLifetime+s.skew {
		add("replay window %s must cover MaxTokenLifetime plus skew (%s)", s.replayWindow, cfg.MaxTokenLifetime+s.skew)
	}
	if s.cacheSize < 0 {
		add("cache size must not be negative")
	}
	if s.unknownInterval < 0 || s.refreshInterval <= 0 || s.sweepInterval <= 0 {
		add("JWKS and sweep intervals must be positive")
	}
	if s.client == nil || s.now == nil {
		add("HTTP client and clock must not be nil")
	}
	if len(errs) > 0 {
		return fmt.Errorf("edge: invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// checkJWKSURL accepts https URLs, and http ones for a loopback host only.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("JWKSURL %q is not an absolute URL", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("JWKSURL %q must be https (http only for a loopback host)", raw)
}

// validPrefix mirrors the events package's rule for a subject token.
func validPrefix(p string) bool {
	if len(p) == 0 || len(p) > 128 {
		return false
	}
	return strings.IndexFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}
