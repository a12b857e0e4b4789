package config

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestValidateRefusesUnsafe breaks one setting of a valid production configuration per case and
// checks that it is refused with a message naming the key.
func TestValidateRefusesUnsafe(t *testing.T) {
	const key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	tests := []struct {
		name   string
		mutate func(*Config)
		key    string
		text   string
	}{
		{"http issuer", func(c *Config) { c.Issuer = "http://x" }, "issuer", `"http://x" must use https outside dev mode (set dev: true for local use)`},
		{"issuer query", func(c *Config) { c.Issuer = "https://a.example?x=1" }, "issuer", "query"},
		{"issuer empty query", func(c *Config) { c.Issuer = "https://a.example?" }, "issuer", "query"},
		{"issuer fragment", func(c *Config) { c.Issuer = "https://a.example#f" }, "issuer", "fragment"},
		{"issuer missing", func(c *Config) { c.Issuer = "" }, "issuer", "required"},
		{"issuer relative", func(c *Config) { c.Issuer = "auth.example.com" }, "issuer", "absolute https URL"},
		{"issuer unparsable", func(c *Config) { c.Issuer = "https://[::1" }, "issuer", "not a valid URL"},
		{"issuer other scheme", func(c *Config) { c.Issuer = "ftp://a.example" }, "issuer", "absolute https URL"},
		{"issuer user info", func(c *Config) { c.Issuer = "https://u@a.example" }, "issuer", "user information"},
		{"http introspection url", func(c *Config) { c.Services.Introspection.PublicURL = "http://i.example" }, "services.introspection.public_url", "https"},
		{"http revocation url", func(c *Config) { c.Services.Revocation.PublicURL = "http://r.example" }, "services.revocation.public_url", "https"},
		{"http edge url", func(c *Config) { c.Services.Edge.PublicURL = "http://e.example" }, "services.edge.public_url", "https"},
		{"issuer public url missing", func(c *Config) { c.Services.Issuer.PublicURL = "" }, "services.issuer.public_url", "required"},
		{"bad listen", func(c *Config) { c.Services.Issuer.Listen = "8080" }, "services.issuer.listen", "host:port"},
		{"bad port", func(c *Config) { c.Services.Issuer.Listen = ":http" }, "services.issuer.listen", "port"},
		{"admin on public port", func(c *Config) { c.Services.Revocation.AdminListen = "127.0.0.1:8082" }, "services.revocation.admin_listen", "same port"},
		{"staleness below heartbeats", func(c *Config) { c.Services.Edge.StalenessBound = 6 * time.Second }, "services.edge.staleness_bound", "twice"},
		{"staleness too long", func(c *Config) { c.Services.Edge.StalenessBound = time.Hour }, "services.edge.staleness_bound", "at most 5m"},
		{"relative upstream", func(c *Config) { c.Services.Edge.Upstream = "/api" }, "services.edge.upstream", "absolute"},
		{"upstream with query", func(c *Config) { c.Services.Edge.Upstream = "http://api:8080/?x=1" }, "services.edge.upstream", "without query"},
		{"redis url missing", func(c *Config) { c.Redis.URL = "" }, "redis.url", "required outside dev mode"},
		{"redis scheme", func(c *Config) { c.Redis.URL = "http://r:6379" }, "redis.url", "redis://"},
		{"redis password in url", func(c *Config) { c.Redis.URL = "redis://:pa55@r:6379" }, "redis.url", "credentials"},
		{"redis db", func(c *Config) { c.Redis.URL = "redis://r:6379/x" }, "redis.url", "database number"},
		{"redis mode", func(c *Config) { c.Redis.Mode = "ring" }, "redis.mode", "single, cluster, sentinel"},
		{"sentinel without master", func(c *Config) { c.Redis.Mode = "sentinel" }, "redis.master_name", "required"},
		{"master without sentinel", func(c *Config) { c.Redis.MasterName = "m" }, "redis.master_name", "only used"},
		{"two redis passwords", func(c *Config) { c.Redis.Password, c.Redis.PasswordFile = "p", "/pw" }, "redis.password_file", "VALET_REDIS_PASSWORD"},
		{"redis prefix braces", func(c *Config) { c.Redis.KeyPrefix = "{valet}:" }, "redis.key_prefix", "braces"},
		{"redis prefix empty", func(c *Config) { c.Redis.KeyPrefix = "" }, "redis.key_prefix", "non-empty"},
		{"redis cert without key", func(c *Config) { c.Redis.TLS = TLS{Enabled: true, CertFile: "/c.pem"} }, "redis.tls.cert_file", "key_file"},
		{"redis tls files while off", func(c *Config) { c.Redis.TLS.CAFile = "/ca.pem" }, "redis.tls.enabled", "TLS is off"},
		{"redis pool", func(c *Config) { c.Redis.PoolSize = -1 }, "redis.pool_size", "out of range"},
		{"redis dial timeout", func(c *Config) { c.Redis.DialTimeout = 0 }, "redis.dial_timeout", "out of range"},
		{"redis read timeout", func(c *Config) { c.Redis.ReadTimeout = time.Hour }, "redis.read_timeout", "out of range"},
		{"nats url missing", func(c *Config) { c.NATS.URL = " , " }, "nats.url", "required outside dev mode"},
		{"nats scheme", func(c *Config) { c.NATS.URL = "nats://a:4222,http://b:4222" }, "nats.url", `"http://b:4222"`},
		{"nats credentials in url", func(c *Config) { c.NATS.URL = "nats://tok3n@a:4222" }, "nats.url", "credentials"},
		{"nats two credentials", func(c *Config) { c.NATS.CredentialsFile, c.NATS.NKeySeedFile = "/c", "/n" }, "nats.nkey_seed_file", "credentials_file"},
		{"inbox prefix empty", func(c *Config) { c.NATS.InboxPrefix = "" }, "nats.inbox_prefix", "must not be empty"},
		{"inbox prefix star", func(c *Config) { c.NATS.InboxPrefix = "_INBOX_*" }, "nats.inbox_prefix", "wildcards"},
		{"inbox prefix full wildcard", func(c *Config) { c.NATS.InboxPrefix = "_INBOX.>" }, "nats.inbox_prefix", "wildcards"},
		{"inbox prefix space", func(c *Config) { c.NATS.InboxPrefix = "_INBOX issuer" }, "nats.inbox_prefix", "whitespace"},
		{"inbox prefix tab", func(c *Config) { c.NATS.InboxPrefix = "_INBOX\tissuer" }, "nats.inbox_prefix", "whitespace"},
		{"inbox prefix newline", func(c *Config) { c.NATS.InboxPrefix = "_INBOX_issuer\n" }, "nats.inbox_prefix", "whitespace"},
		{"inbox prefix not utf-8", func(c *Config) { c.NATS.InboxPrefix = "_INBOX_\xff" }, "nats.inbox_prefix", "UTF-8"},
		{"inbox prefix trailing dot", func(c *Config) { c.NATS.InboxPrefix = "_INBOX." }, "nats.inbox_prefix", "end with '.'"},
		{"inbox prefix leading dot", func(c *Config) { c.NATS.InboxPrefix = ".issuer" }, "nats.inbox_prefix", "empty subject token"},
		{"inbox prefix empty token", func(c *Config) { c.NATS.InboxPrefix = "_INBOX..issuer" }, "nats.inbox_prefix", "empty subject token"},
		{"nats tls files while off", func(c *Config) { c.NATS.TLS.ServerName = "n" }, "nats.tls.enabled", "TLS is off"},
		{"subject prefix with dot", func(c *Config) { c.NATS.SubjectPrefix = "valet.prod" }, "nats.subject_prefix", "one subject token"},
		{"subject prefix wildcard", func(c *Config) { c.NATS.SubjectPrefix = "*" }, "nats.subject_prefix", "one subject token"},
		{"subject prefix empty", func(c *Config) { c.NATS.SubjectPrefix = "" }, "nats.subject_prefix", "one subject token"},
		{"no replicas", func(c *Config) { c.NATS.StreamReplicas = 0 }, "nats.stream_replicas", "1..5"},
		{"too many replicas", func(c *Config) { c.NATS.StreamReplicas = 6 }, "nats.stream_replicas", "1..5"},
		{"no margin", func(c *Config) { c.NATS.StreamMargin = 0 }, "nats.stream_margin", "1m..168h"},
		{"no heartbeat", func(c *Config) { c.NATS.HeartbeatInterval = 0 }, "nats.heartbeat_interval", "out of range"},
		{"zero max lifetime", func(c *Config) { c.Tokens.MaxAccessTokenLifetime = 0 }, "tokens.max_access_token_lifetime", "1s..24h"},
		{"max lifetime too long", func(c *Config) { c.Tokens.MaxAccessTokenLifetime = 25 * time.Hour }, "tokens.max_access_token_lifetime", "1s..24h"},
		{"default above max", func(c *Config) { c.Tokens.DefaultAccessTokenLifetime = 30 * time.Minute }, "tokens.default_access_token_lifetime", "at most tokens.max_access_token_lifetime (15m)"},
		{"zero default", func(c *Config) { c.Tokens.DefaultAccessTokenLifetime = 0 }, "tokens.default_access_token_lifetime", "at least 1s"},
		{"skew too large", func(c *Config) { c.Tokens.ClockSkew = 6 * time.Minute }, "tokens.clock_skew", "0s..5m"},
		{"negative skew", func(c *Config) { c.Tokens.ClockSkew = -time.Second }, "tokens.clock_skew", "0s..5m"},
		{"idle above absolute", func(c *Config) { c.Tokens.RefreshIdleLifetime = 100 * 24 * time.Hour }, "tokens.refresh_idle_lifetime", "refresh_absolute_lifetime"},
		{"zero absolute", func(c *Config) { c.Tokens.RefreshAbsoluteLifetime = 0 }, "tokens.refresh_absolute_lifetime", "out of range"},
		{"long grace", func(c *Config) { c.Tokens.RefreshGraceConfidential = 2 * time.Minute }, "tokens.refresh_grace_confidential", "out of range"},
		{"negative public grace", func(c *Config) { c.Tokens.RefreshGracePublic = -time.Second }, "tokens.refresh_grace_public", "out of range"},
		{"many replays", func(c *Config) { c.Tokens.RefreshGraceMaxReplays = 11 }, "tokens.refresh_grace_max_replays", "0..10"},
		{"long code", func(c *Config) { c.Tokens.AuthorizationCodeLifetime = 11 * time.Minute }, "tokens.authorization_code_lifetime", "1s..10m"},
		{"zero code", func(c *Config) { c.Tokens.AuthorizationCodeLifetime = 0 }, "tokens.authorization_code_lifetime", "1s..10m"},
		{"long device code", func(c *Config) { c.Tokens.DeviceCodeLifetime = 2 * time.Hour }, "tokens.device_code_lifetime", "1m..1h"},
		{"zero poll", func(c *Config) { c.Tokens.DevicePollInterval = 0 }, "tokens.device_poll_interval", "out of range"},
		{"hmac algorithm", func(c *Config) { c.Keys.Algorithm = "HS256" }, "keys.algorithm", `"HS256" is not one of ES256, EdDSA, RS256`},
		{"none algorithm", func(c *Config) { c.Keys.Algorithm = "none" }, "keys.algorithm", "not one of"},
		{"algorithm case", func(c *Config) { c.Keys.Algorithm = "es256" }, "keys.algorithm", "not one of"},
		{"zero rotation", func(c *Config) { c.Keys.RotationInterval = 0 }, "keys.rotation_interval", "out of range"},
		{"lead time not shorter", func(c *Config) { c.Keys.PublishLeadTime = 24 * time.Hour }, "keys.publish_lead_time", "shorter than keys.rotation_interval"},
		{"no key-encryption key", func(c *Config) { c.Keys.EncryptionKeys, c.Keys.ActiveEncryptionKey = nil, "" }, "keys.encryption_keys", "required outside dev mode"},
		{"unknown active key", func(c *Config) { c.Keys.ActiveEncryptionKey = "kek-9" }, "keys.active_encryption_key", `"kek-9" is not an id`},
		{"no active key", func(c *Config) { c.Keys.ActiveEncryptionKey = "" }, "keys.active_encryption_key", "required"},
		{"key inline", func(c *Config) { c.Keys.EncryptionKeys[0].Source = key32 }, "keys.encryption_keys[0].source", "never the key itself"},
		{"relative key file", func(c *Config) { c.Keys.EncryptionKeys[0].Source = "file:kek" }, "keys.encryption_keys[0].source", "absolute path"},
		{"bad key variable", func(c *Config) { c.Keys.EncryptionKeys[0].Source = "env:1-X" }, "keys.encryption_keys[0].source", "variable name"},
		{"duplicate key id", func(c *Config) { c.Keys.EncryptionKeys = append(c.Keys.EncryptionKeys, c.Keys.EncryptionKeys[0]) }, "keys.encryption_keys[1].id", "twice"},
		{"bad key id", func(c *Config) { c.Keys.EncryptionKeys[0].ID = "kek 1" }, "keys.encryption_keys[0].id", "letters"},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level", "not one of"},
		{"log format", func(c *Config) { c.Log.Format = "text" }, "log.format", "not one of"},
		{"tiny body limit", func(c *Config) { c.Limits.MaxBodyBytes = 0 }, "limits.max_body_bytes", "out of range"},
		{"huge body limit", func(c *Config) { c.Limits.MaxBodyBytes = 1 << 30 }, "limits.max_body_bytes", "out of range"},
		{"zero request timeout", func(c *Config) { c.Limits.RequestTimeout = 0 }, "limits.request_timeout", "out of range"},
		{"bad trusted proxy", func(c *Config) { c.Limits.TrustedProxies = "10.0.0.0/8, proxy.local" }, "limits.trusted_proxies", "not an address"},
		{"zero account failures", func(c *Config) { c.Limits.LoginFailuresPerAccount = 0 }, "limits.login_failures_per_account", "out of range"},
		{"huge ip failures", func(c *Config) { c.Limits.LoginFailuresPerIP = 5000 }, "limits.login_failures_per_ip", "out of range"},
		{"negative client auth failure rate", func(c *Config) { c.Limits.ClientAuthFailuresPerSecond = -1 }, "limits.client_auth_failures_per_second", "out of range 0..10000"},
		{"huge client auth failure rate", func(c *Config) { c.Limits.ClientAuthFailuresPerSecond = 10_001 }, "limits.client_auth_failures_per_second", "out of range 0..10000"},
		{"negative client auth failure burst", func(c *Config) { c.Limits.ClientAuthFailuresBurst = -1 }, "limits.client_auth_failures_burst", "out of range 0..100000"},
		{"huge client auth failure burst", func(c *Config) { c.Limits.ClientAuthFailuresBurst = 100_001 }, "limits.client_auth_failures_burst", "out of range 0..100000"},
		{"negative client request rate", func(c *Config) { c.Limits.ClientRequestsPerSecond = -5 }, "limits.client_requests_per_second", "out of range 0..1000000"},
		{"huge client request rate", func(c *Config) { c.Limits.ClientRequestsPerSecond = 1_000_001 }, "limits.client_requests_per_second", "out of range 0..1000000"},
		{"negative client request burst", func(c *Config) { c.Limits.ClientRequestsBurst = -1 }, "limits.client_requests_burst", "out of range 0..10000000"},
		{"huge client request burst", func(c *Config) { c.Limits.ClientRequestsBurst = 10_000_001 }, "limits.client_requests_burst", "out of range 0..10000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validProd(t)
			tt.mutate(&c)
			err := c.Validate()
			wantProblem(t, err, tt.key, tt.text)
			for _, secret := range []string{key32, "pa55", "tok3n"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the message repeats a secret: %v", err)
				}
			}
		})
	}
}

// TestValidateReportsEverything checks that problems are reported together, not one per run.
func TestValidateReportsEverything(t *testing.T) {
	c := validProd(t)
	c.Issuer = "http://x"
	c.Tokens.ClockSkew = time.Hour
	c.Keys.Algorithm = "HS256"
	c.NATS.StreamReplicas = 9
	err := c.Validate()
	if n := countJoined(err); n != 4 {
		t.Fatalf("got %d problems, want 4:\n%v", n, err)
	}
	for _, key := range []string{"issuer", "tokens.clock_skew", "keys.algorithm", "nats.stream_replicas"} {
		wantProblem(t, err, key, "")
	}
}

// TestValidateAccepts covers settings that look unusual but are safe.
func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"dev mode allows http and embedded defaults", func(c *Config) {
			*c = Default()
			c.Dev = true
			c.Issuer = "http://127.0.0.1:8080"
		}},
		{"dev mode still accepts listed keys", func(c *Config) { c.Dev = true }},
		{"issuer with path", func(c *Config) { c.Issuer = "https://auth.example.com/tenant-a" }},
		{"rediss with CA", func(c *Config) { c.Redis.URL, c.Redis.TLS.CAFile = "rediss://r:6380", "/ca.pem" }},
		{"redis tls flag with mutual TLS", func(c *Config) {
			c.Redis.TLS = TLS{Enabled: true, CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "r"}
		}},
		{"sentinel", func(c *Config) {
			c.Redis.URL, c.Redis.Mode, c.Redis.MasterName = "redis://s1:26379?addr=s2:26379", "sentinel", "mymaster"
		}},
		{"cluster", func(c *Config) { c.Redis.Mode = "cluster" }},
		{"nats cluster over tls", func(c *Config) {
			c.NATS.URL = "tls://a:4222, tls://b:4222,tls://c:4222"
			c.NATS.TLS.CAFile = "/ca.pem"
			c.NATS.StreamReplicas = 3
		}},
		{"service inbox prefix", func(c *Config) { c.NATS.InboxPrefix = "_INBOX_issuer" }},
		{"inbox prefix of several tokens", func(c *Config) { c.NATS.InboxPrefix = "_R.valet-prod.issuer" }},
		{"no grace", func(c *Config) {
			c.Tokens.RefreshGraceConfidential, c.Tokens.RefreshGracePublic, c.Tokens.RefreshGraceMaxReplays = 0, 0, 0
		}},
		{"zero skew, short margin", func(c *Config) { c.Tokens.ClockSkew, c.NATS.StreamMargin = 0, time.Minute }},
		{"EdDSA", func(c *Config) { c.Keys.Algorithm = "EdDSA" }},
		{"RS256", func(c *Config) { c.Keys.Algorithm = "RS256" }},
		{"key file", func(c *Config) { c.Keys.EncryptionKeys[0].Source = "file:/run/secrets/kek" }},
		{"retired key kept", func(c *Config) {
			c.Keys.EncryptionKeys = append(c.Keys.EncryptionKeys, KeyEncryptionKey{ID: "kek-2", Source: "env:KEK_2"})
			c.Keys.ActiveEncryptionKey = "kek-2"
		}},
		{"max lifetime at bounds", func(c *Config) {
			c.Tokens.MaxAccessTokenLifetime, c.Tokens.DefaultAccessTokenLifetime = 24*time.Hour, 24*time.Hour
		}},
		{"listen on port 0", func(c *Config) { c.Services.Edge.Listen, c.Services.Edge.AdminListen = ":0", ":0" }},
		{"plain-http upstream outside dev mode", func(c *Config) { c.Services.Edge.Upstream = "http://api.internal:8080/v1" }},
		{"client auth failure limit off", func(c *Config) { c.Limits.ClientAuthFailuresPerSecond, c.Limits.ClientAuthFailuresBurst = 0, 0 }},
		{"client auth failure limit at bounds", func(c *Config) {
			c.Limits.ClientAuthFailuresPerSecond, c.Limits.ClientAuthFailuresBurst = 10_000, 100_000
		}},
		{"per-client limit on", func(c *Config) { c.Limits.ClientRequestsPerSecond, c.Limits.ClientRequestsBurst = 5000, 10_000 }},
		{"per-client limit with default burst", func(c *Config) { c.Limits.ClientRequestsPerSecond = 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validProd(t)
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("refused:\n%v", err)
			}
		})
	}
}

// TestInboxPrefixAsNATS checks nats.inbox_prefix against nats.go itself: every prefix that
// nats.CustomInboxPrefix refuses, and so would stop a service at connect, is refused at load,
// naming the key. Validate refuses more (whitespace, empty tokens), which the server would refuse
// at the first reply subscription.
func TestInboxPrefixAsNATS(t *testing.T) {
	tests := []struct {
		prefix string
		valid  bool
	}{
		{"_INBOX", true}, {"_INBOX_issuer", true}, {"_INBOX_edge", true}, {"_R.valet.issuer", true},
		{"inbox-1", true}, {"ü", true},
		{"", false}, {"*", false}, {">", false}, {"_INBOX.*", false}, {"_INBOX.>", false}, {"a*b", false},
		{"a>b", false}, {"_INBOX.", false}, {".", false}, {"a..b", false}, {".a", false}, {"a b", false},
		{"a\tb", false}, {"a\r\n", false}, {"a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			c := validProd(t)
			c.NATS.InboxPrefix = tt.prefix
			err := c.Validate()
			if natsErr := nats.CustomInboxPrefix(tt.prefix)(&nats.Options{}); natsErr != nil && tt.valid {
				t.Fatalf("the table says %q is valid, nats.go refuses it: %v", tt.prefix, natsErr)
			}
			switch {
			case tt.valid && err != nil:
				t.Errorf("refused:\n%v", err)
			case !tt.valid:
				wantProblem(t, err, "nats.inbox_prefix", "")
			}
		})
	}
}
