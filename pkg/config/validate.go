package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Allowed values, listed once so that validation messages and documentation agree.
var (
	algorithms     = []string{"ES256", "EdDSA", "RS256"}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"json", "console"}
	redisModes     = []string{"single", "cluster", "sentinel"}
	subjectPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Bounds on numeric settings. Lifetimes are bounded because every one of them is a window in
// which a stolen artefact still works; the rest are bounded to catch unit mistakes (1h for 1s).
const (
	minAccessTokenLifetime = time.Second
	maxAccessTokenLifetime = 24 * time.Hour
	maxClockSkew           = 5 * time.Minute
	maxRefreshLifetime     = 365 * 24 * time.Hour
	maxRefreshGrace        = time.Minute
	maxGraceReplays        = 10
	maxAuthCodeLifetime    = 10 * time.Minute
	minDeviceCodeLifetime  = time.Minute
	maxDeviceCodeLifetime  = time.Hour
	maxDevicePollInterval  = time.Minute
	minRotationInterval    = time.Minute
	maxRotationInterval    = 365 * 24 * time.Hour
	maxStalenessBound      = 5 * time.Minute
	maxStreamReplicas      = 5
	minStreamMargin        = time.Minute
	maxStreamMargin        = 7 * 24 * time.Hour
	minHeartbeatInterval   = 100 * time.Millisecond
	maxHeartbeatInterval   = time.Minute
	maxPoolSize            = 10000
	maxNetTimeout          = time.Minute
	minMaxBodyBytes        = 1 << 10
	maxMaxBodyBytes        = 16 << 20
	minRequestTimeout      = 100 * time.Millisecond
	maxRequestTimeout      = 5 * time.Minute
	maxLoginFailures       = 1000
)

// Validate checks the whole configuration and returns every problem found, joined with
// errors.Join, or nil. Each problem starts with the key it concerns. Unsafe settings are refused
// here, at start, rather than discovered in production: plain-http URLs outside dev mode, an
// issuer with query or fragment, lifetimes out of range, a missing key-encryption key, an unknown
// signing algorithm, missing Redis or NATS outside dev mode.
func (c *Config) Validate() error {
	v := &validator{dev: c.Dev}

	v.url("issuer", c.Issuer, true)
	v.service("services.issuer", c.Services.Issuer, true)
	v.service("services.introspection", c.Services.Introspection, true)
	v.service("services.revocation", c.Services.Revocation, true)
	v.service("services.edge", c.Services.Edge.Service, false)
	if b := c.Services.Edge.StalenessBound; b < 2*c.NATS.HeartbeatInterval || b > maxStalenessBound {
		v.addf("services.edge.staleness_bound", "%s must be at least twice nats.heartbeat_interval (%s) and at most %s",
			formatDuration(b), formatDuration(c.NATS.HeartbeatInterval), formatDuration(maxStalenessBound))
	}

	if up := c.Services.Edge.Upstream; up != "" {
		// The upstream is usually a plain-http sidecar or internal address, so http is allowed
		// outside dev mode; anything but an absolute URL without query, fragment or userinfo is not.
		if u, err := url.Parse(up); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			v.addf("services.edge.upstream", "%q must be an absolute http(s) URL without query, fragment or user information", up)
		}
	}

	v.redis(c.Redis)
	v.nats(c.NATS)
	v.tokens(c.Tokens)
	v.keys(c.Keys)

	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)
	if n := c.Limits.MaxBodyBytes; n < minMaxBodyBytes || n > maxMaxBodyBytes {
		v.addf("limits.max_body_bytes", "%d is out of range %d..%d", n, minMaxBodyBytes, maxMaxBodyBytes)
	}
	v.between("limits.request_timeout", c.Limits.RequestTimeout, minRequestTimeout, maxRequestTimeout)
	if _, err := c.Limits.TrustedProxyPrefixes(); err != nil {
		v.addf("limits.trusted_proxies", "%v", err)
	}
	if n := c.Limits.LoginFailuresPerAccount; n < 1 || n > maxLoginFailures {
		v.addf("limits.login_failures_per_account", "%d is out of range 1..%d", n, maxLoginFailures)
	}
	if n := c.Limits.LoginFailuresPerIP; n < 1 || n > maxLoginFailures {
		v.addf("limits.login_failures_per_ip", "%d is out of range 1..%d", n, maxLoginFailures)
	}
	return errors.Join(v.errs...)
}

// validator collects problems.
type validator struct {
	dev  bool
	errs []error
}

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
}

func (v *validator) between(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		v.addf(key, "%s is out of range %s..%s", formatDuration(d), formatDuration(lo), formatDuration(hi))
	}
}

func (v *validator) oneOf(key, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.addf(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

// url checks an http(s) URL clients use: the issuer identifier (RFC 8414 §2) or a public URL.
// Outside dev mode it must be https, because tokens and credentials travel over it.
func (v *validator) url(key, raw string, required bool) {
	if raw == "" {
		if required {
			v.addf(key, "is required")
		}
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.addf(key, "%q is not a valid URL", raw)
		return
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Opaque != "":
		v.addf(key, "%q must be an absolute https URL such as https://auth.example.com", raw)
		return
	case u.Scheme == "http" && !v.dev:
		v.addf(key, "%q must use https outside dev mode (set dev: true for local use)", raw)
	}
	if u.RawQuery != "" || u.ForceQuery {
		v.addf(key, "%q must not have a query", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		v.addf(key, "%q must not have a fragment", raw)
	}
	if u.User != nil {
		v.addf(key, "must not contain user information")
	}
}

func (v *validator) service(key string, s Service, publicURLRequired bool) {
	v.url(key+".public_url", s.PublicURL, publicURLRequired)
	listen := v.listen(key+".listen", s.Listen)
	admin := v.listen(key+".admin_listen", s.AdminListen)
	if listen != "" && listen == admin && listen != "0" {
		v.addf(key+".admin_listen", "%q uses the same port as %s.listen; the admin listener must be separate", s.AdminListen, key)
	}
}

// listen checks a host:port listener address and returns its port ("" when invalid).
func (v *validator) listen(key, addr string) string {
	if addr == "" {
		v.addf(key, "is required (host:port, or :port for every interface)")
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "%q is not a host:port address", addr)
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf(key, "%q has no valid port", addr)
		return ""
	}
	return port
}

func (v *validator) redis(r Redis) {
	if r.URL == "" {
		if !v.dev {
			v.addf("redis.url", "is required outside dev mode (redis://host:6379 or rediss://host:6380)")
		}
	} else if u, err := url.Parse(r.URL); err != nil {
		v.addf("redis.url", "is not a valid URL")
	} else {
		switch {
		case u.Scheme != "redis" && u.Scheme != "rediss" || u.Host == "":
			v.addf("redis.url", "%q must be redis://host:port or rediss://host:port", redactURL(u))
		case u.User != nil:
			v.addf("redis.url", "must not contain credentials; use redis.username with redis.password_file or VALET_REDIS_PASSWORD")
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if _, err := strconv.Atoi(db); err != nil {
				v.addf("redis.url", "%q: the path must be a database number", redactURL(u))
			}
		}
	}
	v.oneOf("redis.mode", r.Mode, redisModes)
	switch {
	case r.Mode == "sentinel" && r.MasterName == "":
		v.addf("redis.master_name", "is required with redis.mode sentinel")
	case r.Mode != "sentinel" && r.MasterName != "":
		v.addf("redis.master_name", "is only used with redis.mode sentinel")
	}
	if r.Password != "" && r.PasswordFile != "" {
		v.addf("redis.password_file", "is set together with VALET_REDIS_PASSWORD; use one of them")
	}
	if r.KeyPrefix == "" || strings.ContainsAny(r.KeyPrefix, "{} \t\r\n") {
		v.addf("redis.key_prefix", "%q must be non-empty, without spaces or braces (braces are Redis Cluster hash tags)", r.KeyPrefix)
	}
	v.tls("redis.tls", r.TLS, r.UseTLS(), "use rediss:// or set redis.tls.enabled: true")
	if r.PoolSize < 0 || r.PoolSize > maxPoolSize {
		v.addf("redis.pool_size", "%d is out of range 0..%d (0 takes the client default)", r.PoolSize, maxPoolSize)
	}
	v.between("redis.dial_timeout", r.DialTimeout, time.Millisecond, maxNetTimeout)
	v.between("redis.read_timeout", r.ReadTimeout, time.Millisecond, maxNetTimeout)
}

// redactURL prints a URL without its password, for messages about a URL that wrongly holds one.
func redactURL(u *url.URL) string {
	return u.Redacted()
}

func (v *validator) nats(n NATS) {
	servers := n.Servers()
	if len(servers) == 0 {
		if !v.dev {
			v.addf("nats.url", "is required outside dev mode (nats://host:4222, several separated by commas)")
		}
	}
	for _, s := range servers {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			v.addf("nats.url", "an entry is not a valid URL")
		case !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) || u.Host == "":
			v.addf("nats.url", "%q must be nats://, tls://, ws:// or wss:// host:port", u.Redacted())
		case u.User != nil:
			v.addf("nats.url", "must not contain credentials; use nats.credentials_file or nats.nkey_seed_file")
		}
	}
	if n.CredentialsFile != "" && n.NKeySeedFile != "" {
		v.addf("nats.nkey_seed_file", "is set together with nats.credentials_file; use one of them")
	}
	v.tls("nats.tls", n.TLS, n.UseTLS(), "use tls:// or set nats.tls.enabled: true")
	if !subjectPattern.MatchString(n.SubjectPrefix) || len(n.SubjectPrefix) > 64 {
		v.addf("nats.subject_prefix", "%q must be one subject token of letters, digits, '_' or '-' (at most 64)", n.SubjectPrefix)
	}
	if n.StreamReplicas < 1 || n.StreamReplicas > maxStreamReplicas {
		v.addf("nats.stream_replicas", "%d is out of range 1..%d", n.StreamReplicas, maxStreamReplicas)
	}
	v.between("nats.stream_margin", n.StreamMargin, minStreamMargin, maxStreamMargin)
	v.between("nats.heartbeat_interval", n.HeartbeatInterval, minHeartbeatInterval, maxHeartbeatInterval)
}

// tls checks that TLS files are given in pairs and are not set where TLS is off, where they would
// be silently ignored.
func (v *validator) tls(key string, t TLS, on bool, how string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.addf(key+".cert_file", "and %s.key_file must be set together", key)
	}
	if !on && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "") {
		v.addf(key+".enabled", "TLS settings are given but TLS is off; %s", how)
	}
}

func (v *validator) tokens(t Tokens) {
	v.between("tokens.max_access_token_lifetime", t.MaxAccessTokenLifetime, minAccessTokenLifetime, maxAccessTokenLifetime)
	if d := t.DefaultAccessTokenLifetime; d < minAccessTokenLifetime || d > t.MaxAccessTokenLifetime {
		v.addf("tokens.default_access_token_lifetime", "%s must be at least %s and at most tokens.max_access_token_lifetime (%s)",
			formatDuration(d), formatDuration(minAccessTokenLifetime), formatDuration(t.MaxAccessTokenLifetime))
	}
	v.between("tokens.clock_skew", t.ClockSkew, 0, maxClockSkew)
	v.between("tokens.refresh_absolute_lifetime", t.RefreshAbsoluteLifetime, time.Minute, maxRefreshLifetime)
	if d := t.RefreshIdleLifetime; d < time.Minute || d > t.RefreshAbsoluteLifetime {
		v.addf("tokens.refresh_idle_lifetime", "%s must be at least 1m and at most tokens.refresh_absolute_lifetime (%s)",
			formatDuration(d), formatDuration(t.RefreshAbsoluteLifetime))
	}
	v.between("tokens.refresh_grace_confidential", t.RefreshGraceConfidential, 0, maxRefreshGrace)
	v.between("tokens.refresh_grace_public", t.RefreshGracePublic, 0, maxRefreshGrace)
	if n := t.RefreshGraceMaxReplays; n < 0 || n > maxGraceReplays {
		v.addf("tokens.refresh_grace_max_replays", "%d is out of range 0..%d", n, maxGraceReplays)
	}
	v.between("tokens.authorization_code_lifetime", t.AuthorizationCodeLifetime, time.Second, maxAuthCodeLifetime)
	v.between("tokens.device_code_lifetime", t.DeviceCodeLifetime, minDeviceCodeLifetime, maxDeviceCodeLifetime)
	v.between("tokens.device_poll_interval", t.DevicePollInterval, time.Second, maxDevicePollInterval)
}

func (v *validator) keys(k SigningKeys) {
	v.oneOf("keys.algorithm", k.Algorithm, algorithms)
	v.between("keys.rotation_interval", k.RotationInterval, minRotationInterval, maxRotationInterval)
	if d := k.PublishLeadTime; d < 0 || d >= k.RotationInterval {
		v.addf("keys.publish_lead_time", "%s must be at least 0 and shorter than keys.rotation_interval (%s)",
			formatDuration(d), formatDuration(k.RotationInterval))
	}
	seen := map[string]bool{}
	for i, e := range k.EncryptionKeys {
		key := fmt.Sprintf("keys.encryption_keys[%d]", i)
		if !kekIDPattern.MatchString(e.ID) {
			v.addf(key+".id", "must be 1 to 64 letters, digits, '.', '_' or '-'") // not quoted: it may be a pasted key
		} else if seen[e.ID] {
			v.addf(key+".id", "%q is listed twice", e.ID)
		}
		seen[e.ID] = true
		if err := checkSource(e.Source); err != nil {
			v.addf(key+".source", "%v", err)
		}
	}
	switch {
	case k.ActiveEncryptionKey != "" && !seen[k.ActiveEncryptionKey]:
		v.addf("keys.active_encryption_key", "%q is not an id in keys.encryption_keys", k.ActiveEncryptionKey)
	case k.ActiveEncryptionKey == "" && len(k.EncryptionKeys) > 0:
		v.addf("keys.active_encryption_key", "is required when keys.encryption_keys is set")
	case len(k.EncryptionKeys) == 0 && !v.dev:
		v.addf("keys.encryption_keys", "at least one key-encryption key is required outside dev mode; signing keys are never stored in clear")
	}
}
