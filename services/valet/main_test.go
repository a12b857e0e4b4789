package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("dev: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("issuer: http://auth.example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no args", nil, 2, "usage"},
		{"check good", []string{"config", "check", "--config", good}, 0, "configuration ok"},
		{"check bad lists the key", []string{"config", "check", "--config=" + bad}, 1, "issuer:"},
		{"check unknown flag", []string{"config", "check", "--nope"}, 2, "unexpected argument"},
		{"keys", []string{"config", "keys"}, 0, "VALET_TOKENS_MAX_ACCESS_TOKEN_LIFETIME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), tc.wantOut) {
				t.Fatalf("output lacks %q:\n%s%s", tc.wantOut, out.String(), errOut.String())
			}
		})
	}
}
