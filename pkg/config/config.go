// Package config is the one configuration format shared by every Valet service and the valet CLI:
// a strictly decoded YAML file, then VALET_* environment overrides, then validation that refuses
// unsafe settings before anything starts.
//
// The format is documented in docs/configuration.md; tests in this package keep that document and
// the Config struct in step, so a key cannot be added, renamed or removed without the table
// following.
package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// FileEnv is the environment variable that names the configuration file when no --config flag
// is given. It is no key of its own, so it cannot collide with an override.
const FileEnv = "VALET_CONFIG_FILE"

// Config is the whole configuration file. Every service reads the same file and uses the parts it
// needs, so one file describes a deployment and the services cannot disagree about shared values
// such as the maximum access-token lifetime.
type Config struct {
	// Dev turns on dev mode: plain-http URLs, embedded Redis and NATS stand-ins and a missing
	// key-encryption key are allowed. It is never inferred, so production cannot fall into it.
	Dev bool `yaml:"dev"`
	// Issuer is the issuer identifier (RFC 8414 §2): an https URL without query or fragment that
	// appears as "iss" in every token and in discovery.
	Issuer string `yaml:"issuer"`
	// Services holds where each service listens and how clients reach it.
	Services Services `yaml:"services"`
	// Redis is the shared token state.
	Redis Redis `yaml:"redis"`
	// NATS is the security-event stream.
	NATS NATS `yaml:"nats"`
	// Tokens holds lifetimes and the refresh-token grace rules.
	Tokens Tokens `yaml:"tokens"`
	// Keys holds signing-key policy and the key-encryption keys that protect keys at rest.
	Keys SigningKeys `yaml:"keys"`
	// Log holds logging settings.
	Log Log `yaml:"log"`
	// Limits bounds what one request may cost.
	Limits Limits `yaml:"limits"`
	// Bootstrap declares resource servers, clients, admin clients and users that every issuer
	// applies to the store at start (docs/bootstrap.md), so a deployment can be described in
	// version control instead of being written to the store by hand.
	Bootstrap Bootstrap `yaml:"bootstrap"`
}

// Services holds one entry per Valet service. Each service reads its own entry for its listeners;
// the issuer reads the others' public URLs because discovery advertises the introspection and
// revocation endpoints where those services are actually reached.
type Services struct {
	// Issuer serves discovery, JWKS, /authorize, /token and the login UI.
	Issuer Service `yaml:"issuer"`
	// Introspection serves RFC 7662 introspection.
	Introspection Service `yaml:"introspection"`
	// Revocation serves RFC 7009 revocation and the admin revocation API.
	Revocation Service `yaml:"revocation"`
	// Edge is the reference forward-auth authorizer.
	Edge EdgeService `yaml:"edge"`
}

// Service is where one service listens and the URL clients use to reach it. The admin listener is
// separate so that metrics, health checks and the admin API can be kept off the public network.
type Service struct {
	// PublicURL is the externally visible base URL (scheme, host, optional path prefix). It is
	// optional for the edge, which gateways usually call on an internal address.
	PublicURL string `yaml:"public_url"`
	// Listen is the public listener address, host:port.
	Listen string `yaml:"listen"`
	// AdminListen is the admin listener address (metrics, /healthz, /readyz, admin API).
	AdminListen string `yaml:"admin_listen"`
}

// URL returns the public URL of path on this service, joining the two with exactly one slash, so
// that a public_url written with or without a trailing slash gives the same endpoint.
func (s Service) URL(path string) string {
	return strings.TrimSuffix(s.PublicURL, "/") + "/" + strings.TrimPrefix(path, "/")
}

// EdgeService is the reference edge authorizer: a Service plus how stale its deny state may become
// before it fails closed.
type EdgeService struct {
	Service `yaml:",inline"`
	// StalenessBound is how long the edge may go without a heartbeat or event from the stream
	// before it rejects every token rather than guess (MISSION invariant 2).
	StalenessBound time.Duration `yaml:"staleness_bound"`
	// Audience is the resource identifier (RFC 8707) every token the authorizer accepts must
	// carry in aud. Required to run the authorizer.
	Audience string `yaml:"audience"`
	// RoutesFile is the route policy: the scopes each route requires (docs/gateway.md).
	RoutesFile string `yaml:"routes_file"`
	// JWKSURL overrides where the edge fetches the issuer's keys (default: the issuer's
	// public_url + /jwks.json), for gateways that reach the issuer on an internal address.
	JWKSURL string `yaml:"jwks_url"`
	// Upstream, when set, turns the authorizer into a reverse proxy as well: requests to its
	// public listener outside the forward-auth paths are authorized and, when allowed, passed to
	// this URL with the identity headers (docs/gateway.md). Empty means forward auth only.
	Upstream string `yaml:"upstream"`
}

// TLS is the client side of a TLS connection, shared by Redis and NATS so both are configured the
// same way.
type TLS struct {
	// Enabled turns TLS on (rediss:// and tls:// URLs turn it on as well).
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of roots to trust instead of the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile is a PEM client certificate, for mutual TLS; it needs KeyFile.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the name the server certificate is checked against.
	ServerName string `yaml:"server_name"`
}

// Redis is the connection to the shared token state.
type Redis struct {
	// URL is redis://host:port/db or rediss://…; empty in dev mode selects the embedded store.
	URL string `yaml:"url"`
	// Mode is single, cluster or sentinel; it decides how URL is interpreted.
	Mode string `yaml:"mode"`
	// MasterName is the Sentinel master set name (mode sentinel only).
	MasterName string `yaml:"master_name"`
	// Username is the Redis ACL user.
	Username string `yaml:"username"`
	// PasswordFile holds the ACL password; the file format never holds the secret itself.
	PasswordFile string `yaml:"password_file"`
	// Password is read from VALET_REDIS_PASSWORD at load, never from the file, and is never
	// marshalled, so a dumped or logged Config does not carry it.
	Password string `yaml:"-" json:"-" env:"password"`
	// KeyPrefix starts every Redis key, so several deployments can share one Redis.
	KeyPrefix string `yaml:"key_prefix"`
	// TLS configures TLS to Redis.
	TLS TLS `yaml:"tls"`
	// PoolSize is the connection pool size per instance; 0 takes the client default.
	PoolSize int `yaml:"pool_size"`
	// DialTimeout bounds opening a connection.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds one command, so a stuck Redis becomes a 503 rather than a pile-up.
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// Format prints r like fmt's default formatting with the password replaced, so that a Config
// printed with %v, %+v or %#v (in a panic, a debug log) does not leak it (MISSION invariant 5).
func (r Redis) Format(f fmt.State, verb rune) {
	type plain Redis // no Format method: prints the fields
	if r.Password != "" {
		r.Password = "[redacted]"
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), plain(r))
}

// UseTLS reports whether connections to Redis use TLS: when tls.enabled is set or the URL scheme
// is rediss.
func (r Redis) UseTLS() bool {
	return r.TLS.Enabled || strings.HasPrefix(strings.ToLower(r.URL), "rediss://")
}

// NATS is the connection to the JetStream security-event stream.
type NATS struct {
	// URL is one server URL or several separated by commas; empty in dev mode selects the
	// embedded server.
	URL string `yaml:"url"`
	// CredentialsFile is a .creds file (JWT and NKey seed).
	CredentialsFile string `yaml:"credentials_file"`
	// NKeySeedFile is a file holding an NKey seed, for servers configured with bare NKeys.
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// InboxPrefix is the first part of every reply subject this process creates (request replies,
	// JetStream API answers, PubAcks, the messages its pull consumers fetch). Each service has its
	// own and its NATS user may subscribe only to InboxPrefix.> (deploy/nats/accounts.conf), so no
	// other user can read its replies. DefaultInboxPrefix is NATS's own.
	InboxPrefix string `yaml:"inbox_prefix"`
	// TLS configures TLS to NATS.
	TLS TLS `yaml:"tls"`
	// SubjectPrefix is the first token of every Valet subject and names the stream.
	SubjectPrefix string `yaml:"subject_prefix"`
	// StreamReplicas is the JetStream replica count of the event stream.
	StreamReplicas int `yaml:"stream_replicas"`
	// StreamMargin is retention kept beyond the replay window, as headroom for late consumers.
	StreamMargin time.Duration `yaml:"stream_margin"`
	// HeartbeatInterval is how often each issuer-side service publishes a heartbeat, which edges
	// use to prove they are current.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
}

// DefaultInboxPrefix is NATS's own reply-inbox prefix (nats.go's nats.InboxPrefix without its
// trailing dot): the default of nats.inbox_prefix, under which a connection is made exactly as
// without the setting.
const DefaultInboxPrefix = "_INBOX"

// Servers returns the NATS server URLs listed in URL, trimmed, without empty entries.
func (n NATS) Servers() []string {
	return splitList(n.URL)
}

// UseTLS reports whether connections to NATS use TLS: when tls.enabled is set or any server URL
// has the tls or wss scheme.
func (n NATS) UseTLS() bool {
	if n.TLS.Enabled {
		return true
	}
	for _, s := range n.Servers() {
		if u, err := url.Parse(s); err == nil && (u.Scheme == "tls" || u.Scheme == "wss") {
			return true
		}
	}
	return false
}

// Tokens holds token lifetimes. There is one global maximum access-token lifetime because the
// event stream's retention and the edges' replay window are derived from it: a per-client
// lifetime may be shorter, never longer.
type Tokens struct {
	// MaxAccessTokenLifetime is the longest any access token may live.
	MaxAccessTokenLifetime time.Duration `yaml:"max_access_token_lifetime"`
	// DefaultAccessTokenLifetime applies to clients without a lifetime of their own.
	DefaultAccessTokenLifetime time.Duration `yaml:"default_access_token_lifetime"`
	// ClockSkew is the allowance for clocks that disagree, applied to exp, iat and nbf.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RefreshIdleLifetime ends a refresh family unused for this long.
	RefreshIdleLifetime time.Duration `yaml:"refresh_idle_lifetime"`
	// RefreshAbsoluteLifetime ends a refresh family this long after it was issued, used or not.
	RefreshAbsoluteLifetime time.Duration `yaml:"refresh_absolute_lifetime"`
	// RefreshGraceConfidential is how long a superseded refresh token of a confidential client
	// may be replayed (a network retry) and get the current token back instead of killing the
	// family.
	RefreshGraceConfidential time.Duration `yaml:"refresh_grace_confidential"`
	// RefreshGracePublic is the same for public clients, shorter because nothing authenticates
	// them.
	RefreshGracePublic time.Duration `yaml:"refresh_grace_public"`
	// RefreshGraceMaxReplays caps how many replays one grace period forgives.
	RefreshGraceMaxReplays int `yaml:"refresh_grace_max_replays"`
	// AuthorizationCodeLifetime is how long an authorization code may be redeemed.
	AuthorizationCodeLifetime time.Duration `yaml:"authorization_code_lifetime"`
	// DeviceCodeLifetime is how long a device code and its user code live (RFC 8628 expires_in).
	DeviceCodeLifetime time.Duration `yaml:"device_code_lifetime"`
	// DevicePollInterval is the minimum polling interval given to devices (RFC 8628 interval).
	DevicePollInterval time.Duration `yaml:"device_poll_interval"`
}

// ReplayWindow returns how far back deny state must reach: a token issued that long ago may still
// be accepted somewhere (maximum lifetime plus clock skew), so a revocation older than that no
// longer matters. Edges replay this window on start.
func (t Tokens) ReplayWindow() time.Duration {
	return t.MaxAccessTokenLifetime + t.ClockSkew
}

// StreamRetention returns how long the event stream keeps events: the replay window plus
// nats.stream_margin, so that every consumer can rebuild complete deny state by replay.
func (c *Config) StreamRetention() time.Duration {
	return c.Tokens.ReplayWindow() + c.NATS.StreamMargin
}

// SigningKeys is the signing-key policy shared by all issuers.
type SigningKeys struct {
	// Algorithm is the JWS algorithm of new signing keys: ES256, EdDSA or RS256.
	Algorithm string `yaml:"algorithm"`
	// RotationInterval is how often a new signing key takes over.
	RotationInterval time.Duration `yaml:"rotation_interval"`
	// PublishLeadTime is how long a new key is in JWKS before it signs anything, so caches
	// outside the event stream learn it first.
	PublishLeadTime time.Duration `yaml:"publish_lead_time"`
	// EncryptionKeys are the key-encryption keys that wrap signing keys at rest. Older entries stay
	// listed so keys they wrapped can still be unwrapped.
	EncryptionKeys []KeyEncryptionKey `yaml:"encryption_keys"`
	// ActiveEncryptionKey is the id of the entry that wraps new keys.
	ActiveEncryptionKey string `yaml:"active_encryption_key"`
}

// Active returns the key-encryption key named by ActiveEncryptionKey, and false when there is
// none (dev mode without keys, or a config that did not validate).
func (k SigningKeys) Active() (KeyEncryptionKey, bool) {
	for _, e := range k.EncryptionKeys {
		if e.ID == k.ActiveEncryptionKey && e.ID != "" {
			return e, true
		}
	}
	return KeyEncryptionKey{}, false
}

// Log holds logging settings.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json (for collectors) or console (for people).
	Format string `yaml:"format"`
}

// Limits bounds the cost of one request, so bad or hostile input cannot exhaust an instance.
type Limits struct {
	// MaxBodyBytes is the largest request body read; larger bodies are refused.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RequestTimeout bounds the handling of one request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// TrustedProxies lists, comma-separated, the addresses or CIDR prefixes of the reverse
	// proxies whose X-Forwarded-For is believed. Empty: the peer address is the client.
	TrustedProxies string `yaml:"trusted_proxies"`
	// LoginFailuresPerAccount is how many wrong passwords an account takes before each further
	// attempt must wait a growing back-off.
	LoginFailuresPerAccount int `yaml:"login_failures_per_account"`
	// LoginFailuresPerIP is the same per client address (IPv6 per /64).
	LoginFailuresPerIP int `yaml:"login_failures_per_ip"`
	// ClientAuthFailuresPerSecond is the sustained rate of failed client authentications
	// (invalid_client at /token, /device_authorization, /introspect and /revoke) a client
	// address (IPv6 per /64) may make on one replica; past its burst, the address's requests
	// to those endpoints are refused with 429 before they are authenticated. 0 turns it off.
	// Per replica, in memory: no Redis round trip on the hot path (docs/security.md).
	ClientAuthFailuresPerSecond int `yaml:"client_auth_failures_per_second"`
	// ClientAuthFailuresBurst is how many failures an address may make at once before the
	// rate applies; 0 means one second's worth (the rate).
	ClientAuthFailuresBurst int `yaml:"client_auth_failures_burst"`
	// ClientRequestsPerSecond is the sustained rate of requests one confidential client (by
	// client_id) may make to those endpoints on one replica; past its burst, 429. 0 (the
	// default) turns it off: machine clients of a platform IdP legitimately run thousands of
	// tokens per second.
	ClientRequestsPerSecond int `yaml:"client_requests_per_second"`
	// ClientRequestsBurst is how many requests a client may make at once before the rate
	// applies; 0 means one second's worth (the rate).
	ClientRequestsBurst int `yaml:"client_requests_burst"`
}

// TrustedProxyPrefixes parses TrustedProxies; a bare address is a one-address prefix.
func (l Limits) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(l.TrustedProxies) {
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR prefix", item)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", item)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Bootstrap is the declarative bootstrap: records the issuer creates, or re-applies when they
// drifted, at every start (pkg/bootstrap, docs/bootstrap.md). Records of the store that are not
// declared here are left alone. Secrets and passwords are never written in the file: each is a
// reference (env:NAME or file:/path) or a hash, so the file can be kept in version control.
// These keys exist only in the file; lists have no environment override.
type Bootstrap struct {
	// ResourceServers are the declared APIs (RFC 8707 resource indicators).
	ResourceServers []BootstrapResourceServer `yaml:"resource_servers"`
	// Clients are the declared OAuth clients.
	Clients []BootstrapClient `yaml:"clients"`
	// AdminClients are confidential client-credentials clients allowed valet:admin at the admin
	// audience (<issuer>/admin). Declaring one also declares that resource server, unless
	// resource_servers declares it explicitly; this is how the first admin comes to exist.
	AdminClients []BootstrapAdminClient `yaml:"admin_clients"`
	// Users are the declared accounts of the login page.
	Users []BootstrapUser `yaml:"users"`
}

// Empty reports whether nothing is declared, so that a service can skip bootstrap entirely.
func (b Bootstrap) Empty() bool {
	return len(b.ResourceServers) == 0 && len(b.Clients) == 0 && len(b.AdminClients) == 0 && len(b.Users) == 0
}

// BootstrapResourceServer declares one resource server.
type BootstrapResourceServer struct {
	// ID is the resource indicator, an absolute URI without a fragment; the tokens' aud.
	ID string `yaml:"id"`
	// Name is shown to operators.
	Name string `yaml:"name"`
	// Scopes are the scopes the API defines.
	Scopes []string `yaml:"scopes"`
	// AccessTokenLifetime is its tokens' lifetime; 0 for the client's or the default.
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime"`
}

// BootstrapClient declares one OAuth client.
type BootstrapClient struct {
	// ID is the client id.
	ID string `yaml:"id"`
	// Name is shown to operators and on the consent page.
	Name string `yaml:"name"`
	// Type is confidential (the default) or public.
	Type string `yaml:"type"`
	// Secret is where the confidential client's secret comes from: env:NAME, file:/path, or its
	// hash from `valet hash-secret` (sha256$...). Never the secret itself.
	Secret string `yaml:"secret"`
	// PreviousSecret is a second secret that stays valid, in the same forms, for a rotation
	// without downtime: move the old secret here, deploy the new one, then remove it.
	PreviousSecret string `yaml:"previous_secret"`
	// GrantTypes are the grants the client may use.
	GrantTypes []string `yaml:"grant_types"`
	// RedirectURIs are its exact redirect URIs (authorization code grant).
	RedirectURIs []string `yaml:"redirect_uris"`
	// Resources are the resource servers it may get tokens for, with the scopes it may ask.
	Resources []BootstrapAllowance `yaml:"resources"`
	// DefaultResource is used when a request names none; one of Resources.
	DefaultResource string `yaml:"default_resource"`
	// ResourceIDs are the resource servers this client is, for introspection (RFC 7662 §4).
	ResourceIDs []string `yaml:"resource_ids"`
	// AccessTokenLifetime is its tokens' lifetime; 0 for the resource's or the default.
	AccessTokenLifetime time.Duration `yaml:"access_token_lifetime"`
	// CORSOrigins are the browser origins of a public client.
	CORSOrigins []string `yaml:"cors_origins"`
	// FirstParty clients skip the consent page.
	FirstParty bool `yaml:"first_party"`
	// Disabled clients authenticate to nothing; disabling revokes the client's tokens.
	Disabled bool `yaml:"disabled"`
}

// BootstrapAllowance is one resource a client may get tokens for and the scopes it may ask there.
type BootstrapAllowance struct {
	// ID is the resource server's identifier.
	ID string `yaml:"id"`
	// Scopes are the scopes the client may ask at it; each must be defined by the resource.
	Scopes []string `yaml:"scopes"`
}

// BootstrapAdminClient declares one admin client: confidential, client credentials, valet:admin
// at the admin audience, nothing else.
type BootstrapAdminClient struct {
	// ID is the client id; the actor of its admin actions.
	ID string `yaml:"id"`
	// Name is shown to operators.
	Name string `yaml:"name"`
	// Secret is env:NAME, file:/path or a hash from `valet hash-secret`, as for clients.
	Secret string `yaml:"secret"`
	// PreviousSecret is a second valid secret during a rotation, as for clients.
	PreviousSecret string `yaml:"previous_secret"`
}

// BootstrapUser declares one account of the login page.
type BootstrapUser struct {
	// Username is what the person types.
	Username string `yaml:"username"`
	// Password is env:NAME, file:/path, or an argon2id PHC hash ($argon2id$v=19$...). Never the
	// password itself.
	Password string `yaml:"password"`
	// Disabled accounts cannot sign in.
	Disabled bool `yaml:"disabled"`
}

// Default returns the built-in configuration. Its values are safe: what it leaves unset or
// local-only (plain-http URLs, no Redis or NATS URL, no key-encryption key) is refused by
// Validate outside dev mode, so production must set it explicitly. With Dev set it validates as is.
func Default() Config {
	return Config{
		Issuer: "http://localhost:8080",
		Services: Services{
			Issuer:        Service{PublicURL: "http://localhost:8080", Listen: ":8080", AdminListen: "127.0.0.1:9080"},
			Introspection: Service{PublicURL: "http://localhost:8081", Listen: ":8081", AdminListen: "127.0.0.1:9081"},
			Revocation:    Service{PublicURL: "http://localhost:8082", Listen: ":8082", AdminListen: "127.0.0.1:9082"},
			Edge: EdgeService{
				Service:        Service{Listen: ":8083", AdminListen: "127.0.0.1:9083"},
				StalenessBound: 15 * time.Second,
			},
		},
		Redis: Redis{
			Mode:        "single",
			KeyPrefix:   "valet:",
			DialTimeout: 2 * time.Second,
			ReadTimeout: time.Second,
		},
		NATS: NATS{
			InboxPrefix:       DefaultInboxPrefix,
			SubjectPrefix:     "valet",
			StreamReplicas:    1,
			StreamMargin:      time.Hour,
			HeartbeatInterval: 5 * time.Second,
		},
		Tokens: Tokens{
			MaxAccessTokenLifetime:     15 * time.Minute,
			DefaultAccessTokenLifetime: 5 * time.Minute,
			ClockSkew:                  30 * time.Second,
			RefreshIdleLifetime:        14 * 24 * time.Hour,
			RefreshAbsoluteLifetime:    90 * 24 * time.Hour,
			RefreshGraceConfidential:   10 * time.Second,
			RefreshGracePublic:         2 * time.Second,
			RefreshGraceMaxReplays:     3,
			AuthorizationCodeLifetime:  60 * time.Second,
			DeviceCodeLifetime:         10 * time.Minute,
			DevicePollInterval:         5 * time.Second,
		},
		Keys: SigningKeys{
			Algorithm:        "ES256",
			RotationInterval: 24 * time.Hour,
			PublishLeadTime:  10 * time.Minute,
		},
		Log: Log{Level: "info", Format: "json"},
		Limits: Limits{MaxBodyBytes: 64 << 10, RequestTimeout: 10 * time.Second,
			LoginFailuresPerAccount: 5, LoginFailuresPerIP: 20,
			ClientAuthFailuresPerSecond: 10, ClientAuthFailuresBurst: 50},
	}
}

// splitList splits a comma-separated list, trimming spaces and dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
