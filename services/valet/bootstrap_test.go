package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/secret"
)

func TestBootstrapCheck(t *testing.T) {
	dir := t.TempDir()
	adminSecret, _ := secret.New()
	workerSecret, _ := secret.New()
	secretFile := filepath.Join(dir, "admin-secret")
	if err := os.WriteFile(secretFile, []byte(adminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("dev: true\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `bootstrap:
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
  admin_clients:
    - id: ops
      secret: file:`+secretFile+`
  users:
    - username: alice
      password: env:ALICE_PASSWORD
`)
	plain := write("plain.yaml", "bootstrap:\n  admin_clients:\n    - id: ops\n      secret: "+adminSecret+"\n")
	empty := write("empty.yaml", "")
	env := map[string]string{"WORKER_SECRET": workerSecret, "ALICE_PASSWORD": "a long passphrase"}

	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     []string
	}{
		{"resolves every reference", []string{"check", "--config", good}, env, 0,
			[]string{"bootstrap ok", "worker", "secret from env:WORKER_SECRET", "secret from file:" + secretFile, "password from env:ALICE_PASSWORD", "https://auth.example.test/admin"}},
		{"config file from the environment", []string{"check"}, map[string]string{config.FileEnv: good, "WORKER_SECRET": workerSecret, "ALICE_PASSWORD": "a long passphrase"}, 0,
			[]string{"bootstrap ok: " + good}},
		{"missing variable names the key", []string{"check", "--config=" + good}, map[string]string{"ALICE_PASSWORD": "x"}, 1,
			[]string{"bootstrap.clients[0].secret: environment variable WORKER_SECRET is not set"}},
		{"plaintext refused", []string{"check", "--config", plain}, nil, 1,
			[]string{"bootstrap.admin_clients[0].secret: must be env:NAME, file:/path or a hash"}},
		{"nothing declared", []string{"check", "--config", empty}, nil, 0, []string{"declares nothing"}},
		{"no verb", nil, nil, 2, []string{"usage"}},
		{"unknown verb", []string{"apply"}, nil, 2, []string{"usage"}},
		{"stray argument", []string{"check", "extra"}, nil, 2, []string{"unexpected argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{"VALET_ISSUER": "https://auth.example.test", "VALET_SERVICES_ISSUER_PUBLIC_URL": "https://auth.example.test"}
			for k, v := range tt.env {
				e[k] = v
			}
			var out, errOut bytes.Buffer
			code := runBootstrap(tt.args, func(k string) string { return e[k] }, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tt.wantCode, all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, s := range []string{adminSecret, workerSecret, "a long passphrase"} {
				if strings.Contains(all, s) {
					t.Errorf("a secret is printed:\n%s", all)
				}
			}
		})
	}
}
