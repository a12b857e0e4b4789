package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/valetauth/valet/pkg/secret"
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
	// Bounds of the per-replica request limits: far above any sane setting, low enough that
	// a typo (an extra few zeros) is caught rather than silently meaning "no limit".
	maxClientAuthFailuresPerSecond = 10_000
	maxClientAuthFailuresBurst     = 100_000
	maxClientRequestsPerSecond     = 1_000_000
	maxClientRequestsBurst         = 10_000_000
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
	v.intRange("limits.client_auth_failures_per_second", c.Limits.ClientAuthFailuresPerSecond, 0, maxClientAuthFailuresPerSecond)
	v.intRange("limits.client_auth_failures_burst", c.Limits.ClientAuthFailuresBurst, 0, maxClientAuthFailuresBurst)
	v.intRange("limits.client_requests_per_second", c.Limits.ClientRequestsPerSecond, 0, maxClientRequestsPerSecond)
	v.intRange("limits.client_requests_burst", c.Limits.ClientRequestsBurst, 0, maxClientRequestsBurst)
	v.bootstrap(c.Bootstrap, c.Tokens.MaxAccessTokenLifetime)
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

// intRange adds a problem unless lo <= n <= hi.
func (v *validator) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.addf(key, "%d is out of range %d..%d", n, lo, hi)
	}
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
	if problem := inboxPrefixProblem(n.InboxPrefix); problem != "" {
		v.addf("nats.inbox_prefix", "%q %s", n.InboxPrefix, problem)
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

// inboxPrefixProblem says what is wrong with a reply-inbox prefix, or returns "" when nothing is.
// The rules are nats.go's nats.CustomInboxPrefix (not empty, no '*' or '>', no trailing '.'),
// which would otherwise refuse the prefix only when the service connects, and those of a literal
// NATS subject (no whitespace or control character, no empty token), which the server would
// otherwise refuse only at the first reply subscription.
func inboxPrefixProblem(p string) string {
	switch {
	case p == "":
		return "must not be empty (NATS's own prefix is " + DefaultInboxPrefix + ")"
	case strings.ContainsAny(p, "*>"):
		return "must not hold the wildcards '*' or '>'"
	case !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "must be UTF-8 without whitespace or control characters"
	case strings.HasSuffix(p, "."):
		return "must not end with '.'"
	case strings.HasPrefix(p, ".") || strings.Contains(p, ".."):
		return "must not have an empty subject token (a leading '.' or '..')"
	}
	return ""
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

// Grant and client types a bootstrap client may declare (the admin API's rules, docs/admin.md).
var (
	grantTypes  = []string{"client_credentials", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}
	clientTypes = []string{"confidential", "public"}
)

// Bounds of bootstrap records, those of the admin API and the stores.
const (
	maxBootstrapName   = 256
	maxBootstrapList   = 100
	maxClientIDLength  = 128
	maxURILength       = 2048
	maxUsernameLength  = 128
	maxArgon2MemoryKiB = 1 << 20
)

// MinClientSecretLength is the shortest client secret a bootstrap reference may yield: 32
// characters, so that a declared secret is not much weaker than what `openssl rand -base64 32`
// or a generated vcs_ secret gives. pkg/bootstrap checks it when it reads the reference; the
// file cannot, since it holds only the reference.
const MinClientSecretLength = 32

// bootstrap checks the declarative bootstrap section. Every problem names the record by its
// index (bootstrap.clients[2].secret). Secrets and password hashes are never quoted: a mistake
// there may be the secret itself pasted into the file.
func (v *validator) bootstrap(b Bootstrap, maxLife time.Duration) {
	declared := map[string][]string{} // resource server id -> scopes
	for i, r := range b.ResourceServers {
		key := fmt.Sprintf("bootstrap.resource_servers[%d]", i)
		if v.resourceURI(key+".id", r.ID) {
			if _, dup := declared[r.ID]; dup {
				v.addf(key+".id", "%q is declared twice", r.ID)
			}
			declared[r.ID] = r.Scopes
		}
		v.recordName(key+".name", r.Name)
		v.scopes(key+".scopes", r.Scopes)
		v.between(key+".access_token_lifetime", r.AccessTokenLifetime, 0, maxLife)
	}

	ids := map[string]bool{}
	clientID := func(key, id string) {
		if id == "" || len(id) > maxClientIDLength || !visible(id) {
			v.addf(key, "must be 1 to %d visible ASCII characters without spaces (RFC 6749 Appendix A.1)", maxClientIDLength)
			return
		}
		if ids[id] {
			v.addf(key, "%q is declared twice (clients and admin_clients share one id space)", id)
		}
		ids[id] = true
	}
	for i, c := range b.Clients {
		key := fmt.Sprintf("bootstrap.clients[%d]", i)
		clientID(key+".id", c.ID)
		v.recordName(key+".name", c.Name)
		typ := c.Type
		if typ == "" {
			typ = "confidential"
		}
		v.oneOf(key+".type", typ, clientTypes)
		if typ == "public" {
			if c.Secret != "" {
				v.addf(key+".secret", "a public client has no secret (RFC 6749 §2.1)")
			}
			if c.PreviousSecret != "" {
				v.addf(key+".previous_secret", "a public client has no secret (RFC 6749 §2.1)")
			}
		} else {
			v.clientSecrets(key, c.Secret, c.PreviousSecret)
		}

		v.list(key+".grant_types", len(c.GrantTypes))
		if len(c.GrantTypes) == 0 {
			v.addf(key+".grant_types", "must name at least one of %s", strings.Join(grantTypes, ", "))
		}
		for j, g := range c.GrantTypes {
			gk := fmt.Sprintf("%s.grant_types[%d]", key, j)
			switch {
			case !slices.Contains(grantTypes, g):
				v.addf(gk, "%q is not one of %s", g, strings.Join(grantTypes, ", "))
			case slices.Index(c.GrantTypes, g) != j:
				v.addf(gk, "%q is listed twice", g)
			case g == "client_credentials" && typ == "public":
				v.addf(gk, "a public client cannot use client_credentials (RFC 6749 §4.4)")
			}
		}

		v.list(key+".redirect_uris", len(c.RedirectURIs))
		for j, u := range c.RedirectURIs {
			v.redirectURI(fmt.Sprintf("%s.redirect_uris[%d]", key, j), u)
		}
		if slices.Contains(c.GrantTypes, "authorization_code") && len(c.RedirectURIs) == 0 {
			v.addf(key+".redirect_uris", "authorization_code needs at least one redirect URI")
		}

		v.list(key+".resources", len(c.Resources))
		allowed := map[string]bool{}
		for j, a := range c.Resources {
			ak := fmt.Sprintf("%s.resources[%d]", key, j)
			if !v.resourceURI(ak+".id", a.ID) {
				continue
			}
			if allowed[a.ID] {
				v.addf(ak+".id", "%q is listed twice", a.ID)
			}
			allowed[a.ID] = true
			v.scopes(ak+".scopes", a.Scopes)
			if defined, ok := declared[a.ID]; ok {
				for k, sc := range a.Scopes {
					if !slices.Contains(defined, sc) {
						v.addf(fmt.Sprintf("%s.scopes[%d]", ak, k), "%q is not defined by the declared resource server %q", sc, a.ID)
					}
				}
			}
		}
		if c.DefaultResource != "" && !allowed[c.DefaultResource] {
			v.addf(key+".default_resource", "%q must be one of the client's resources", c.DefaultResource)
		}
		v.list(key+".resource_ids", len(c.ResourceIDs))
		for j, id := range c.ResourceIDs {
			v.resourceURI(fmt.Sprintf("%s.resource_ids[%d]", key, j), id)
		}
		v.between(key+".access_token_lifetime", c.AccessTokenLifetime, 0, maxLife)
		v.list(key+".cors_origins", len(c.CORSOrigins))
		for j, o := range c.CORSOrigins {
			if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				v.addf(fmt.Sprintf("%s.cors_origins[%d]", key, j), "%q must be scheme://host[:port]", o)
			}
		}
	}

	for i, a := range b.AdminClients {
		key := fmt.Sprintf("bootstrap.admin_clients[%d]", i)
		clientID(key+".id", a.ID)
		v.recordName(key+".name", a.Name)
		v.clientSecrets(key, a.Secret, a.PreviousSecret)
	}

	names := map[string]bool{}
	for i, u := range b.Users {
		key := fmt.Sprintf("bootstrap.users[%d]", i)
		switch {
		case !validUsername(u.Username):
			v.addf(key+".username", "must be 1 to %d bytes without control characters or surrounding spaces", maxUsernameLength)
		case names[u.Username]:
			v.addf(key+".username", "%q is declared twice", u.Username)
		}
		names[u.Username] = true
		switch {
		case u.Password == "":
			v.addf(key+".password", "is required: env:NAME, file:/path or an argon2id hash ($argon2id$v=19$...)")
		case IsReference(u.Password):
			if err := checkSource(u.Password); err != nil {
				v.addf(key+".password", "%s", referenceProblem(err))
			}
		case strings.HasPrefix(u.Password, "$argon2id$"):
			if err := checkPasswordHash(u.Password); err != nil {
				v.addf(key+".password", "%v", err)
			}
		default:
			v.addf(key+".password", "must be env:NAME, file:/path or an argon2id hash ($argon2id$v=19$...), never the password itself")
		}
	}
}

// clientSecrets checks the secret (required) and previous_secret (optional) of a confidential
// client at key.
func (v *validator) clientSecrets(key, sec, previous string) {
	if sec == "" {
		v.addf(key+".secret", "is required for a confidential client: env:NAME, file:/path or a hash from `valet hash-secret` (sha256$...)")
	} else {
		v.secretValue(key+".secret", sec)
	}
	if previous != "" {
		v.secretValue(key+".previous_secret", previous)
		if previous == sec {
			v.addf(key+".previous_secret", "is the same as %s.secret", key)
		}
	}
}

// secretValue checks one declared client secret: a reference or a stored hash, never the secret.
func (v *validator) secretValue(key, s string) {
	switch {
	case IsReference(s):
		if err := checkSource(s); err != nil {
			v.addf(key, "%s", referenceProblem(err))
		}
	case secret.ValidFormat([]byte(s)):
	case strings.HasPrefix(s, secret.FormatSHA256+"$") || strings.HasPrefix(s, secret.FormatHMAC+"$"):
		v.addf(key, "is not a valid hash; print one with `valet hash-secret`")
	default:
		v.addf(key, "must be env:NAME, file:/path or a hash from `valet hash-secret` (sha256$...), never the secret itself")
	}
}

// referenceProblem rewords checkSource's message for a secret rather than a key.
func referenceProblem(err error) string {
	return strings.Replace(err.Error(), "never the key itself", "never the secret itself", 1)
}

// resourceURI checks a resource indicator (RFC 8707 §2) and reports whether it is valid.
func (v *validator) resourceURI(key, id string) bool {
	u, err := url.Parse(id)
	if id == "" || len(id) > maxURILength || !visible(id) || err != nil || !u.IsAbs() || strings.Contains(id, "#") {
		v.addf(key, "%q must be an absolute URI without a fragment (RFC 8707 §2)", id)
		return false
	}
	return true
}

// redirectURI checks a redirect URI: absolute, no fragment, plain http only for loopback hosts
// (RFC 6749 §3.1.2, RFC 8252 §7.3).
func (v *validator) redirectURI(key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || strings.Contains(raw, "#") || len(raw) > maxURILength {
		v.addf(key, "%q must be an absolute URI without a fragment (RFC 6749 §3.1.2)", raw)
		return
	}
	if h := u.Hostname(); u.Scheme == "http" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		v.addf(key, "%q: plain http is allowed only for loopback hosts (RFC 8252 §7.3)", raw)
	}
}

// recordName checks an optional display name.
func (v *validator) recordName(key, name string) {
	if len(name) > maxBootstrapName || !utf8.ValidString(name) {
		v.addf(key, "must be UTF-8 of at most %d bytes", maxBootstrapName)
	}
}

// scopes checks a list of scope-tokens (RFC 6749 §3.3) without duplicates.
func (v *validator) scopes(key string, scopes []string) {
	v.list(key, len(scopes))
	for i, sc := range scopes {
		switch {
		case !scopeToken(sc):
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a scope-token (RFC 6749 §3.3)", sc)
		case slices.Index(scopes, sc) != i:
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is listed twice", sc)
		}
	}
}

// list bounds the length of a declared list.
func (v *validator) list(key string, n int) {
	if n > maxBootstrapList {
		v.addf(key, "%d entries, at most %d", n, maxBootstrapList)
	}
}

// scopeToken reports whether s is a scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), at most 256.
func scopeToken(s string) bool {
	if s == "" || len(s) > maxBootstrapName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b == '"' || b == '\\' || b > 0x7e {
			return false
		}
	}
	return true
}

// visible reports whether s is only %x21-7E (visible ASCII, no space).
func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validUsername mirrors pkg/users.ValidUsername: 1 to 128 bytes of UTF-8 without control
// characters or surrounding spaces (the login page trims them, so such a user could never sign in).
func validUsername(s string) bool {
	if s == "" || len(s) > maxUsernameLength || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// checkPasswordHash checks the shape of an argon2id PHC string as pkg/users writes it,
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, so that a broken hash is refused at
// start rather than found at the first login. Its messages never quote the hash.
func checkPasswordHash(s string) error {
	parts := strings.Split(s, "$")
	if len(parts) != 6 {
		return errors.New("is not an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
	}
	if parts[2] != "v=19" {
		return errors.New("is an argon2id hash of an unsupported version (want v=19)")
	}
	var m, t, p uint64
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
		m == 0 || m > maxArgon2MemoryKiB || t == 0 || p == 0 || p > 255 ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) {
		return fmt.Errorf("has bad argon2id parameters (m 1..%d KiB, t at least 1, p 1..255)", maxArgon2MemoryKiB)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return errors.New("has a bad salt (unpadded base64 of at least 8 bytes)")
	}
	sum, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(sum) < 16 {
		return errors.New("has a bad hash (unpadded base64 of at least 16 bytes)")
	}
	return nil
}
