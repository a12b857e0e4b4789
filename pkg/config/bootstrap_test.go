package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/secret"
)

// A well-formed argon2id hash (of "pw", with small parameters) and an unkeyed secret hash.
const (
	testArgon2 = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMDE"
	plainText  = "vcs_thisisthesecretitselfpastedintothefile01234"
)

// validBootstrap returns a bootstrap section that validates, as a base for cases that break one
// field at a time.
func validBootstrap() Bootstrap {
	return Bootstrap{
		ResourceServers: []BootstrapResourceServer{{ID: "https://api.example.com", Name: "API", Scopes: []string{"read", "write"}}},
		Clients: []BootstrapClient{
			{ID: "worker", Secret: "env:WORKER_SECRET", GrantTypes: []string{"client_credentials"},
				Resources: []BootstrapAllowance{{ID: "https://api.example.com", Scopes: []string{"read"}}}, DefaultResource: "https://api.example.com"},
			{ID: "spa", Type: "public", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1/cb"},
				CORSOrigins: []string{"https://spa.example.com"}},
		},
		AdminClients: []BootstrapAdminClient{{ID: "ops", Secret: string(secret.HashUnkeyed(plainText))}},
		Users:        []BootstrapUser{{Username: "alice", Password: "file:/run/secrets/alice"}, {Username: "bob", Password: testArgon2}},
	}
}

func TestBootstrapValidates(t *testing.T) {
	c := validProd(t)
	c.Bootstrap = validBootstrap()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid bootstrap refused:\n%v", err)
	}
	if c.Bootstrap.Empty() || !(Bootstrap{}).Empty() {
		t.Error("Empty is wrong")
	}
}

// TestBootstrapRefusals breaks one field per case: each problem names its key, and none quotes
// a secret or a hash.
func TestBootstrapRefusals(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Bootstrap)
		key    string
		text   string
	}{
		{"plaintext client secret", func(b *Bootstrap) { b.Clients[0].Secret = plainText }, "bootstrap.clients[0].secret", "never the secret itself"},
		{"plaintext previous secret", func(b *Bootstrap) { b.Clients[0].PreviousSecret = "hunter2hunter2" }, "bootstrap.clients[0].previous_secret", "never the secret itself"},
		{"plaintext admin secret", func(b *Bootstrap) { b.AdminClients[0].Secret = plainText }, "bootstrap.admin_clients[0].secret", "never the secret itself"},
		{"plaintext password", func(b *Bootstrap) { b.Users[0].Password = "correct horse" }, "bootstrap.users[0].password", "never the password itself"},
		{"broken sha256 hash", func(b *Bootstrap) { b.Clients[0].Secret = "sha256$abc" }, "bootstrap.clients[0].secret", "not a valid hash"},
		{"broken argon2 hash", func(b *Bootstrap) { b.Users[1].Password = "$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$aGFzaA" }, "bootstrap.users[1].password", "parameters"},
		{"argon2 version", func(b *Bootstrap) { b.Users[1].Password = strings.Replace(testArgon2, "v=19", "v=16", 1) }, "bootstrap.users[1].password", "version"},
		{"env without name", func(b *Bootstrap) { b.Clients[0].Secret = "env:" }, "bootstrap.clients[0].secret", "environment variable name"},
		{"relative file", func(b *Bootstrap) { b.Users[0].Password = "file:secrets/alice" }, "bootstrap.users[0].password", "absolute path"},
		{"confidential without secret", func(b *Bootstrap) { b.Clients[0].Secret = "" }, "bootstrap.clients[0].secret", "required"},
		{"admin without secret", func(b *Bootstrap) { b.AdminClients[0].Secret = "" }, "bootstrap.admin_clients[0].secret", "required"},
		{"previous equals secret", func(b *Bootstrap) { b.Clients[0].PreviousSecret = b.Clients[0].Secret }, "bootstrap.clients[0].previous_secret", "same as"},
		{"public with secret", func(b *Bootstrap) { b.Clients[1].Secret = "env:X" }, "bootstrap.clients[1].secret", "public client has no secret"},
		{"user without password", func(b *Bootstrap) { b.Users[0].Password = "" }, "bootstrap.users[0].password", "required"},
		{"unknown type", func(b *Bootstrap) { b.Clients[0].Type = "trusted" }, "bootstrap.clients[0].type", "confidential, public"},
		{"no grant", func(b *Bootstrap) { b.Clients[0].GrantTypes = nil }, "bootstrap.clients[0].grant_types", "at least one"},
		{"unknown grant", func(b *Bootstrap) { b.Clients[0].GrantTypes = []string{"password"} }, "bootstrap.clients[0].grant_types[0]", "not one of"},
		{"public client credentials", func(b *Bootstrap) { b.Clients[1].GrantTypes = []string{"client_credentials"} }, "bootstrap.clients[1].grant_types[0]", "RFC 6749 §4.4"},
		{"code without redirect", func(b *Bootstrap) { b.Clients[1].RedirectURIs = nil }, "bootstrap.clients[1].redirect_uris", "at least one redirect URI"},
		{"http redirect", func(b *Bootstrap) { b.Clients[1].RedirectURIs = []string{"http://spa.example.com/cb"} }, "bootstrap.clients[1].redirect_uris[0]", "loopback"},
		{"redirect fragment", func(b *Bootstrap) { b.Clients[1].RedirectURIs = []string{"https://spa.example.com/cb#x"} }, "bootstrap.clients[1].redirect_uris[0]", "fragment"},
		{"bad origin", func(b *Bootstrap) { b.Clients[1].CORSOrigins = []string{"https://spa.example.com/app"} }, "bootstrap.clients[1].cors_origins[0]", "scheme://host"},
		{"scope not declared", func(b *Bootstrap) { b.Clients[0].Resources[0].Scopes = []string{"admin"} }, "bootstrap.clients[0].resources[0].scopes[0]", "not defined by the declared resource server"},
		{"default not allowed", func(b *Bootstrap) { b.Clients[0].DefaultResource = "https://other.example.com" }, "bootstrap.clients[0].default_resource", "one of the client's resources"},
		{"relative resource", func(b *Bootstrap) { b.Clients[0].Resources[0].ID = "/api" }, "bootstrap.clients[0].resources[0].id", "absolute URI"},
		{"duplicate resource", func(b *Bootstrap) { b.ResourceServers = append(b.ResourceServers, b.ResourceServers[0]) }, "bootstrap.resource_servers[1].id", "declared twice"},
		{"resource fragment", func(b *Bootstrap) { b.ResourceServers[0].ID = "https://api.example.com#x" }, "bootstrap.resource_servers[0].id", "fragment"},
		{"bad scope", func(b *Bootstrap) { b.ResourceServers[0].Scopes = []string{"a b"} }, "bootstrap.resource_servers[0].scopes[0]", "scope-token"},
		{"duplicate scope", func(b *Bootstrap) { b.ResourceServers[0].Scopes = []string{"read", "read"} }, "bootstrap.resource_servers[0].scopes[1]", "twice"},
		{"lifetime over max", func(b *Bootstrap) { b.ResourceServers[0].AccessTokenLifetime = time.Hour }, "bootstrap.resource_servers[0].access_token_lifetime", "out of range"},
		{"client lifetime negative", func(b *Bootstrap) { b.Clients[0].AccessTokenLifetime = -time.Second }, "bootstrap.clients[0].access_token_lifetime", "out of range"},
		{"client id with space", func(b *Bootstrap) { b.Clients[0].ID = "my client" }, "bootstrap.clients[0].id", "visible ASCII"},
		{"client and admin share id", func(b *Bootstrap) { b.AdminClients[0].ID = "worker" }, "bootstrap.admin_clients[0].id", "declared twice"},
		{"duplicate user", func(b *Bootstrap) { b.Users[1].Username = "alice" }, "bootstrap.users[1].username", "declared twice"},
		{"control character in username", func(b *Bootstrap) { b.Users[0].Username = "a\nb" }, "bootstrap.users[0].username", "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validProd(t)
			c.Bootstrap = validBootstrap()
			tt.mutate(&c.Bootstrap)
			err := c.Validate()
			wantProblem(t, err, tt.key, tt.text)
			for _, leak := range []string{plainText, "hunter2", "correct horse", "c2FsdHNhbHQ"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("the problem quotes a secret or hash:\n%v", err)
				}
			}
		})
	}
}

// TestBootstrapFromYAML checks the file form: nested lists decode strictly, and a typo or a
// plaintext secret is reported with the record's index.
func TestBootstrapFromYAML(t *testing.T) {
	good := `dev: true
bootstrap:
  resource_servers:
    - id: https://api.example.com
      scopes: [read]
  clients:
    - id: worker
      secret: env:WORKER_SECRET
      grant_types: [client_credentials]
      resources:
        - id: https://api.example.com
          scopes: [read]
`
	cfg, err := Parse([]byte(good), noEnv)
	if err != nil {
		t.Fatalf("refused:\n%v", err)
	}
	if got := cfg.Bootstrap.Clients[0].Resources[0].Scopes; len(got) != 1 || got[0] != "read" {
		t.Errorf("resources decoded as %+v", cfg.Bootstrap.Clients[0].Resources)
	}
	_, err = Parse([]byte(strings.Replace(good, "      grant_types:", "      grant_type:", 1)), noEnv)
	wantProblem(t, err, "bootstrap.clients[0].grant_type", "unknown key")
	_, err = Parse([]byte(strings.Replace(good, "env:WORKER_SECRET", plainText, 1)), noEnv)
	wantProblem(t, err, "bootstrap.clients[0].secret", "never the secret itself")
	if strings.Contains(err.Error(), plainText) {
		t.Errorf("the problem quotes the secret:\n%v", err)
	}
	_, err = Parse([]byte(strings.Replace(good, "scopes: [read]\n  clients", "scopes: read\n  clients", 1)), noEnv)
	wantProblem(t, err, "bootstrap.resource_servers[0].scopes", "want a list")
}

func TestReadReference(t *testing.T) {
	dir := t.TempDir()
	withNewline := filepath.Join(dir, "secret")
	if err := os.WriteFile(withNewline, []byte("s3cret-value\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envMap(map[string]string{"SET": " spaced value ", "EMPTY": ""})
	tests := []struct {
		name, ref, want, err string
	}{
		{"env", "env:SET", " spaced value ", ""},
		{"env unset", "env:UNSET", "", "environment variable UNSET is not set"},
		{"env empty", "env:EMPTY", "", "environment variable EMPTY is not set"},
		{"file trims the line ending", "file:" + withNewline, "s3cret-value", ""},
		{"file empty", "file:" + empty, "", "is empty"},
		{"file missing", "file:" + filepath.Join(dir, "nope"), "", "no such file"},
		{"not a reference", "s3cret", "", "never the secret itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadReference(tt.ref, env)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.err)
			}
		})
	}
}
