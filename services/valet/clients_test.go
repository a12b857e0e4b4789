package main

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestClientsCommands(t *testing.T) {
	e := newIssuerEnv(t)
	const api = "https://api.example.test/"
	runSteps(t, []cliStep{
		{"resource for the clients", []string{"resources", "create", api, "--scope", "read,write", "--name", "API"}, 0, "version                1"},
		{"create", []string{"clients", "create", "svc-cli", "--grant", "client_credentials", "--resource", api + "=read", "--default-resource", api}, 0, "client_secret: vcs_"},
	})
	// The secret printed by create works with x/oauth2.
	code, out, _ := cli(t, "clients", "rotate-secret", "svc-cli", "--previous-ttl", "1h", "--json")
	var rot struct {
		Secret  string `json:"client_secret"`
		Secrets []any  `json:"secrets"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rot) != nil || rot.Secret == "" || len(rot.Secrets) != 2 {
		t.Fatalf("rotate-secret --json: %d %s", code, out)
	}
	tokenOK := func(sec string) bool {
		cc := clientcredentials.Config{ClientID: "svc-cli", ClientSecret: sec, TokenURL: e.publicURL + "/token", Scopes: []string{"read"},
			EndpointParams: url.Values{"resource": {api}}, AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cc.Token(context.Background())
		return err == nil
	}
	if !tokenOK(rot.Secret) {
		t.Fatal("the rotated secret does not work")
	}
	runSteps(t, []cliStep{
		{"list", []string{"clients", "list"}, 0, "svc-cli    confidential  client_credentials"},
		{"get", []string{"clients", "get", "svc-cli"}, 0, "default_resource"},
		{"update", []string{"clients", "update", "svc-cli", "--name", "Renamed", "--resource", api + "=read,write"}, 0, api + "=read,write"},
		{"update keeps other fields", []string{"clients", "get", "svc-cli", "--json"}, 0, `"name": "Renamed"`},
		{"disable", []string{"clients", "disable", "svc-cli"}, 0, "disabled               true"},
		{"update --enable", []string{"clients", "update", "svc-cli", "--enable"}, 0, "disabled               false"},
		{"delete", []string{"clients", "delete", "svc-cli"}, 0, "deleted client svc-cli"},
		{"get deleted", []string{"clients", "get", "svc-cli"}, 1, "not_found"},
		{"create invalid", []string{"clients", "create", "bad", "--grant", "password"}, 1, "invalid_request"},
		{"no verb", []string{"clients"}, 2, "usage"},
		{"unknown verb", []string{"clients", "frob", "x"}, 2, "unknown verb"},
		{"missing id", []string{"clients", "get"}, 2, "CLIENT_ID"},
		{"bad resource flag", []string{"clients", "create", "x", "--resource", "=read"}, 2, "URI=SCOPE"},
	})
	if tokenOK(rot.Secret) {
		t.Fatal("a deleted client got a token")
	}
	// Table output is aligned.
	_, out, _ = cli(t, "clients", "list")
	if !regexp.MustCompile(`(?m)^CLIENT_ID\s+TYPE\s+GRANTS`).MatchString(out) {
		t.Fatalf("list output:\n%s", out)
	}
}

func TestAdminCommandsNeedCredentials(t *testing.T) {
	for _, k := range []string{envIssuerAdminURL, envTokenURL, envClientID, envClientSecret, envIssuer} {
		t.Setenv(k, "")
	}
	runSteps(t, []cliStep{
		{"clients", []string{"clients", "list"}, 2, "$" + envClientSecret},
		{"resources", []string{"resources", "list"}, 2, "--admin-url or $" + envIssuerAdminURL},
		{"keys", []string{"keys", "rewrap"}, 2, "--issuer or $" + envIssuer},
	})
}

func TestAdminCommandsWrongSecret(t *testing.T) {
	newIssuerEnv(t)
	t.Setenv(envClientSecret, "wrong")
	runSteps(t, []cliStep{{"wrong secret", []string{"clients", "list"}, 1, "invalid_client"}})
}
