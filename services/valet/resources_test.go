package main

import (
	"regexp"
	"testing"
)

func TestResourcesCommands(t *testing.T) {
	newIssuerEnv(t)
	const id = "https://orders.example.test/"
	runSteps(t, []cliStep{
		{"create", []string{"resources", "create", id, "--scope", "orders:read", "--scope", "orders:write", "--lifetime", "2m"}, 0, "orders:read,orders:write"},
		{"duplicate", []string{"resources", "create", id, "--scope", "x"}, 1, "conflict"},
		{"invalid", []string{"resources", "create", "not-a-uri"}, 1, "invalid_request"},
		{"get", []string{"resources", "get", id}, 0, "2m0s"},
		{"update", []string{"resources", "update", id, "--name", "Orders"}, 0, "version                2"},
		{"get json", []string{"resources", "get", id, "--json"}, 0, `"name": "Orders"`},
		{"list", []string{"resources", "list"}, 0, "Orders"},
		{"delete", []string{"resources", "delete", id}, 0, "deleted resource server"},
		{"get deleted", []string{"resources", "get", id}, 1, "not_found"},
		{"bad lifetime", []string{"resources", "create", "urn:x", "--lifetime", "1.5s"}, 2, "whole number"},
		{"unknown verb", []string{"resources", "frob"}, 2, "unknown verb"},
	})
	_, out, _ := cli(t, "resources", "list")
	if !regexp.MustCompile(`(?m)^ID\s+NAME\s+SCOPES\s+LIFETIME\s+VERSION$`).MatchString(out) {
		t.Fatalf("list output:\n%s", out)
	}
}
