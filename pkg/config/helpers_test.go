package config

import (
	"errors"
	"strings"
	"testing"
)

// noEnv is a lookupEnv that sees no variables, so tests do not depend on the environment they
// run in.
func noEnv(string) (string, bool) { return "", false }

// envMap returns a lookupEnv backed by m.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// validProd returns a production configuration that validates, as a base for tests that break
// one setting at a time.
func validProd(t *testing.T) Config {
	t.Helper()
	c := Default()
	c.Issuer = "https://auth.example.com"
	c.Services.Issuer.PublicURL = "https://auth.example.com"
	c.Services.Introspection.PublicURL = "https://introspect.example.com"
	c.Services.Revocation.PublicURL = "https://revoke.example.com"
	c.Services.Edge.PublicURL = ""
	c.Redis.URL = "redis://redis:6379/0"
	c.NATS.URL = "nats://nats:4222"
	c.Keys.EncryptionKeys = []KeyEncryptionKey{{ID: "kek-1", Source: "env:KEK_1"}}
	c.Keys.ActiveEncryptionKey = "kek-1"
	if err := c.Validate(); err != nil {
		t.Fatalf("validProd does not validate:\n%v", err)
	}
	return c
}

// problems splits an error from Validate, Parse or Load into its lines, one per problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// wantProblem fails unless err has a problem line that starts with key and contains text.
func wantProblem(t *testing.T, err error, key, text string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a problem with %s containing %q", key, text)
	}
	for _, p := range problems(t, err) {
		if strings.HasPrefix(p, key+":") && strings.Contains(p, text) {
			return
		}
	}
	t.Fatalf("no problem starts with %q and contains %q; got:\n%v", key+":", text, err)
}

// countJoined returns how many errors errors.Join combined into err.
func countJoined(err error) int {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return len(j.Unwrap())
	}
	if err != nil {
		return 1
	}
	return 0
}
