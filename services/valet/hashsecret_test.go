package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/secret"
)

func TestHashSecret(t *testing.T) {
	gen, _ := secret.New()
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"generated secret", nil, gen + "\n", 0, string(secret.HashUnkeyed(gen)) + "\n", ""},
		{"CRLF and no newline", nil, gen + "\r\n", 0, string(secret.HashUnkeyed(gen)) + "\n", ""},
		{"human secret warns", nil, "hunter2", 0, string(secret.HashUnkeyed("hunter2")) + "\n", "warning"},
		{"empty", nil, "", 2, "", "no secret"},
		{"argument refused", []string{gen}, "", 2, "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runHashSecret(tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			if code != tt.wantCode || out.String() != tt.wantOut || !strings.Contains(errOut.String(), tt.wantErr) {
				t.Fatalf("exit %d stdout %q stderr %q", code, out.String(), errOut.String())
			}
			if strings.Contains(out.String()+errOut.String(), gen) {
				t.Fatal("the secret was echoed")
			}
		})
	}
	if !strings.HasPrefix(string(secret.HashUnkeyed(gen)), "sha256$") {
		t.Fatal("format")
	}
}
