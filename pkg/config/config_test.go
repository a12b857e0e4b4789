package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultValidatesInDevMode(t *testing.T) {
	c := Default()
	c.Dev = true
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() with dev: true does not validate:\n%v", err)
	}
}

// TestDefaultRefusedOutsideDevMode checks that the defaults cannot reach production by accident:
// each local-only default is refused, and all of them in one error.
func TestDefaultRefusedOutsideDevMode(t *testing.T) {
	c := Default()
	err := c.Validate()
	for _, key := range []string{
		"issuer", "services.issuer.public_url", "services.introspection.public_url",
		"services.revocation.public_url", "redis.url", "nats.url", "keys.encryption_keys",
	} {
		wantProblem(t, err, key, "")
	}
	if n := countJoined(err); n != 7 {
		t.Errorf("got %d problems, want 7:\n%v", n, err)
	}
}

func TestUnknownKeysRefused(t *testing.T) {
	tests := []struct {
		name, yaml string
		keys       []string
	}{
		{"top level", "isuer: https://a.example\n", []string{"isuer"}},
		{"section", "redis:\n  tsl:\n    enabled: true\n", []string{"redis.tsl"}},
		{"nested", "redis:\n  tls:\n    ca_fil: /ca.pem\n", []string{"redis.tls.ca_fil"}},
		{"list item", "keys:\n  encryption_keys:\n    - id: a\n      sorce: env:A\n", []string{"keys.encryption_keys[0].sorce"}},
		{"inline struct", "services:\n  edge:\n    stalness_bound: 20s\n", []string{"services.edge.stalness_bound"}},
		{"secret inline", "redis:\n  password: hunter2\n", []string{"redis.password"}},
		{"several at once", "dev: true\nfoo: 1\nlog:\n  colour: red\n", []string{"foo", "log.colour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), noEnv)
			for _, k := range tt.keys {
				wantProblem(t, err, k, "unknown key")
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats a secret: %v", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml, key, text string
	}{
		{"bad duration", "tokens:\n  clock_skew: soon\n", "tokens.clock_skew", "duration"},
		{"bare number as duration", "tokens:\n  clock_skew: 30\n", "tokens.clock_skew", "duration"},
		{"bad bool", "dev: maybe\n", "dev", "boolean"},
		{"bad int", "nats:\n  stream_replicas: three\n", "nats.stream_replicas", "integer"},
		{"mapping for a string", "issuer:\n  url: https://a.example\n", "issuer", "got a mapping"},
		{"scalar for a section", "redis: redis://r:6379\n", "redis", "want a mapping"},
		{"scalar for a list", "keys:\n  encryption_keys: env:KEK\n", "keys.encryption_keys", "want a list"},
		{"empty value", "issuer:\n", "issuer", "no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("dev: true\n"+tt.yaml), noEnv)
			wantProblem(t, err, tt.key, tt.text)
		})
	}
	for name, doc := range map[string]string{
		"two documents": "dev: true\n---\ndev: false\n",
		"syntax":        "dev: [\n",
		"duplicate key": "dev: true\ndev: false\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(doc), noEnv); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestDecodeKeepsDefaults(t *testing.T) {
	tests := []struct {
		name, yaml string
	}{
		{"empty file", ""},
		{"comments only", "# nothing here\n"},
		{"empty section", "dev: true\nredis:\nlog: {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Default()
			if err := decode([]byte(tt.yaml), &got); err != nil {
				t.Fatal(err)
			}
			want := Default()
			want.Dev = strings.Contains(tt.yaml, "dev: true")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("defaults changed: got %+v", got)
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	file := []byte(`
dev: true
issuer: http://file.example
nats:
  stream_replicas: 3
keys:
  encryption_keys:
    - id: file-kek
      source: file:/file-kek
  active_encryption_key: file-kek
log:
  level: debug
`)
	env := map[string]string{
		"VALET_ISSUER":                     "http://env.example",
		"VALET_NATS_STREAM_REPLICAS":       "5",
		"VALET_KEYS_ENCRYPTION_KEYS":       "old=file:/old, new=env:NEW_KEK",
		"VALET_KEYS_ACTIVE_ENCRYPTION_KEY": "new",
		"VALET_LOG_LEVEL":                  "", // empty counts as unset
		"VALET_TOKENS_CLOCK_SKEW":          "1m",
		"VALET_REDIS_PASSWORD":             "s3cret",
	}
	cfg, err := Parse(file, envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"issuer", cfg.Issuer, "http://env.example"},
		{"stream replicas", cfg.NATS.StreamReplicas, 5},
		{"encryption keys", len(cfg.Keys.EncryptionKeys), 2},
		{"second key", cfg.Keys.EncryptionKeys[1], KeyEncryptionKey{ID: "new", Source: "env:NEW_KEK"}},
		{"active key", cfg.Keys.ActiveEncryptionKey, "new"},
		{"empty variable ignored", cfg.Log.Level, "debug"},
		{"key only in env", cfg.Tokens.ClockSkew, time.Minute},
		{"password", cfg.Redis.Password, "s3cret"},
		{"untouched default", cfg.Redis.KeyPrefix, "valet:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name, env, value, key string
	}{
		{"duration", "VALET_TOKENS_CLOCK_SKEW", "30", "tokens.clock_skew"},
		{"bool", "VALET_DEV", "maybe", "dev"},
		{"int", "VALET_NATS_STREAM_REPLICAS", "three", "nats.stream_replicas"},
		{"int overflow", "VALET_REDIS_POOL_SIZE", "99999999999999999999", "redis.pool_size"},
		{"key list", "VALET_KEYS_ENCRYPTION_KEYS", strings.Repeat("0f", 32), "keys.encryption_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(nil, envMap(map[string]string{"VALET_DEV": "true", tt.env: tt.value}))
			if err == nil || !strings.HasPrefix(err.Error(), tt.env+" ("+tt.key+"): ") {
				t.Fatalf("got %v, want an error naming %s and %s", err, tt.env, tt.key)
			}
			if tt.env == "VALET_KEYS_ENCRYPTION_KEYS" && strings.Contains(err.Error(), tt.value) {
				t.Errorf("the error repeats what may be a key: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("dev: true\nlog:\n  format: console\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("dev: true\nlog:\n  formt: console\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("no file", func(t *testing.T) {
		cfg, err := Load("", envMap(map[string]string{"VALET_DEV": "1"}))
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.Dev || cfg.Log.Format != "json" {
			t.Errorf("got %+v", cfg)
		}
	})
	t.Run("no file outside dev mode", func(t *testing.T) {
		if _, err := Load("", noEnv); err == nil {
			t.Fatal("the bare defaults were accepted outside dev mode")
		}
	})
	t.Run("file", func(t *testing.T) {
		cfg, err := Load(good, envMap(map[string]string{"VALET_LOG_LEVEL": "warn"}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.Format != "console" || cfg.Log.Level != "warn" {
			t.Errorf("got %+v", cfg.Log)
		}
	})
	t.Run("bad file names the file and the key", func(t *testing.T) {
		_, err := Load(bad, noEnv)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("got %v, want an error naming %s", err, bad)
		}
		wantProblem(t, err, "log.formt", "unknown key")
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := Load(filepath.Join(dir, "missing.yaml"), noEnv); !os.IsNotExist(unwrapAll(err)) {
			t.Fatalf("got %v, want a not-exist error", err)
		}
	})
}

// unwrapAll returns the innermost error of a chain.
func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestHelpers(t *testing.T) {
	c := Default()
	c.Services.Issuer.PublicURL = "https://auth.example.com/"
	c.Services.Revocation.PublicURL = "https://auth.example.com/rev"
	c.NATS.URL = " nats://a:4222, tls://b:4222 ,"
	tests := []struct {
		name      string
		got, want any
	}{
		{"url with trailing slash", c.Services.Issuer.URL("/token"), "https://auth.example.com/token"},
		{"url with prefix", c.Services.Revocation.URL("revoke"), "https://auth.example.com/rev/revoke"},
		{"replay window", c.Tokens.ReplayWindow(), 15*time.Minute + 30*time.Second},
		{"stream retention", c.StreamRetention(), time.Hour + 15*time.Minute + 30*time.Second},
		{"nats servers", strings.Join(c.NATS.Servers(), " "), "nats://a:4222 tls://b:4222"},
		{"nats tls from scheme", c.NATS.UseTLS(), true},
		{"redis tls off", c.Redis.UseTLS(), false},
		{"redis tls from scheme", Redis{URL: "rediss://r:6380"}.UseTLS(), true},
		{"redis tls from flag", Redis{URL: "redis://r:6379", TLS: TLS{Enabled: true}}.UseTLS(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	k := SigningKeys{EncryptionKeys: []KeyEncryptionKey{{ID: "a"}, {ID: "b"}}, ActiveEncryptionKey: "b"}
	if got, ok := k.Active(); !ok || got.ID != "b" {
		t.Errorf("Active() = %v, %v; want b", got, ok)
	}
	if _, ok := (SigningKeys{}).Active(); ok {
		t.Error("Active() found a key in an empty list")
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		redis   Redis
		want    string
		wantErr bool
	}{
		{"none", Redis{}, "", false},
		{"env", Redis{Password: "from-env"}, "from-env", false},
		{"file", Redis{PasswordFile: file}, "from-file", false},
		{"empty file", Redis{PasswordFile: empty}, "", true},
		{"missing file", Redis{PasswordFile: filepath.Join(dir, "missing")}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.redis.ReadPassword()
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestPasswordNeverPrinted checks that the Redis password from the environment does not leak
// through fmt, YAML or JSON.
func TestPasswordNeverPrinted(t *testing.T) {
	cfg, err := Parse([]byte("dev: true\n"), envMap(map[string]string{"VALET_REDIS_PASSWORD": "hunter2"}))
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":    fmt.Sprintf("%v", cfg),
		"%+v":   fmt.Sprintf("%+v", *cfg),
		"%#v":   fmt.Sprintf("%#v", *cfg),
		"%s":    fmt.Sprintf("%s", cfg.Redis),
		"yaml":  string(y),
		"json":  string(j),
		"redis": fmt.Sprint(cfg.Redis),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, "hunter2") {
				t.Errorf("the password leaks: %s", out)
			}
			if !strings.Contains(out, "valet:") {
				t.Errorf("the other fields are missing: %s", out)
			}
		})
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	got, err := Limits{TrustedProxies: "10.1.2.3, 192.168.0.0/16, ::ffff:172.16.0.0/108, 2001:db8::/32"}.TrustedProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.1.2.3/32", "192.168.0.0/16", "172.16.0.0/12", "2001:db8::/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d: %s, want %s", i, got[i], want[i])
		}
	}
}
