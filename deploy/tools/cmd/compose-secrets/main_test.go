package main

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minClientSecretLength is what the issuer's bootstrap requires of a client secret it reads
// from a file (config.MinClientSecretLength; this module does not import Valet).
const minClientSecretLength = 32

// TestGenerate runs the generator twice into one directory: the first run writes every secret
// in the modes the non-root containers need, the second keeps every secret byte for byte (only
// the public nkeys.conf is rewritten), and the client secrets are long random base64url.
func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	gen := func() (string, map[string][]byte) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-out", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		files := map[string][]byte{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if info.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644 (the containers' non-root user reads it)", rel, info.Mode().Perm())
			}
			b, err := os.ReadFile(p)
			files[filepath.ToSlash(rel)] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), files
	}

	_, first := gen()
	want := []string{"kek-1", "redis-password", "grafana-admin-password", "nats/nkeys.conf",
		"tls/ca.pem", "tls/server.pem", "tls/server-key.pem"}
	want = append(want, ClientSecrets...)
	for _, u := range NATSUsers {
		want = append(want, "nats/"+u+".nk")
	}
	for _, f := range want {
		if len(first[f]) == 0 {
			t.Errorf("%s: not written", f)
		}
	}
	if len(first) != len(want) {
		t.Errorf("wrote %d files, want %d (a leftover .tmp?)", len(first), len(want))
	}
	if info, err := os.Stat(dir); err != nil {
		t.Error(err)
	} else if info.Mode().Perm() != 0o700 {
		t.Errorf("the secrets directory has mode %v, want 0700", info.Mode().Perm())
	}

	seen := map[string]bool{}
	for _, name := range ClientSecrets {
		s, ok := strings.CutSuffix(string(first[name]), "\n")
		if !ok || len(s) < minClientSecretLength {
			t.Errorf("%s: %d characters and newline %v; want at least %d and one line", name, len(s), ok, minClientSecretLength)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(s); err != nil || len(raw) != 32 {
			t.Errorf("%s: not 32 bytes of base64url (%v)", name, err)
		}
		if seen[s] {
			t.Errorf("%s: the same secret as another client", name)
		}
		seen[s] = true
	}

	out, second := gen()
	for f, b := range first {
		if f != "nats/nkeys.conf" && !bytes.Equal(second[f], b) {
			t.Errorf("%s: changed by the second run", f)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "wrote") && !strings.HasSuffix(line, "nats/nkeys.conf") {
			t.Errorf("second run: %q, want every secret kept", line)
		}
	}
}
