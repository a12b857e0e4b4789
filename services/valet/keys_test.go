package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestKeysCommands(t *testing.T) {
	e := newIssuerEnv(t)
	inJWKS := func(kid string) bool {
		b, err := e.Keys.JWKS()
		return err == nil && strings.Contains(string(b), `"`+kid+`"`)
	}
	code, out, errOut := cli(t, "keys", "rotate")
	m := regexp.MustCompile(`new key (\S+) is in JWKS`).FindStringSubmatch(out)
	if code != 0 || m == nil || !inJWKS(m[1]) {
		t.Fatalf("rotate: %d %s %s", code, out, errOut)
	}
	kid := m[1]
	runSteps(t, []cliStep{
		{"rotate immediate", []string{"keys", "rotate", "--immediate"}, 0, "signs now"},
		{"revoke", []string{"keys", "revoke", kid}, 0, "revoked key " + kid},
		{"revoke unknown", []string{"keys", "revoke", "nokid"}, 1, "not_found"},
		{"rewrap", []string{"keys", "rewrap", "--json"}, 0, `"rewrapped"`},
		{"revoke without kid", []string{"keys", "revoke"}, 2, "KID"},
		{"unknown verb", []string{"keys", "list"}, 2, "unknown verb"},
	})
	if inJWKS(kid) {
		t.Fatal("a revoked key is still in JWKS")
	}
}
