package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb, 0xef, 0x01, 0x7e}, 8) // base64 std and url alphabets differ on it
	short := key[:16]
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hexFile := write("hex", hex.EncodeToString(key)+"\n")
	shortFile := write("short", base64.StdEncoding.EncodeToString(short))
	env := envMap(map[string]string{
		"HEX":     hex.EncodeToString(key),
		"HEX_UP":  strings.ToUpper(hex.EncodeToString(key)),
		"STD":     base64.StdEncoding.EncodeToString(key),
		"URL":     base64.URLEncoding.EncodeToString(key),
		"RAW_URL": " " + base64.RawURLEncoding.EncodeToString(key) + "\n",
		"SHORT":   base64.StdEncoding.EncodeToString(short),
		"LONG":    base64.StdEncoding.EncodeToString(append(key, 0)),
		"GARBAGE": "not a key at all!",
		"EMPTY":   "",
	})
	tests := []struct {
		name   string
		source string
		err    string // "" for success
	}{
		{"env hex", "env:HEX", ""},
		{"env upper-case hex", "env:HEX_UP", ""},
		{"env base64", "env:STD", ""},
		{"env base64url", "env:URL", ""},
		{"env raw base64url with whitespace", "env:RAW_URL", ""},
		{"file hex with newline", "file:" + hexFile, ""},
		{"env too short", "env:SHORT", "decodes to 16 bytes, want 32"},
		{"env too long", "env:LONG", "decodes to 33 bytes, want 32"},
		{"file too short", "file:" + shortFile, "decodes to 16 bytes"},
		{"bad encoding", "env:GARBAGE", "not 32 bytes as 64 hex characters or base64"},
		{"env missing", "env:MISSING", "MISSING is not set"},
		{"env empty", "env:EMPTY", "EMPTY is not set"},
		{"file missing", "file:" + filepath.Join(dir, "missing"), "no such file"},
		{"inline key", "inline:" + hex.EncodeToString(key), "never the key itself"},
		{"relative file", "file:kek", "absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KeyEncryptionKey{ID: "k", Source: tt.source}.Resolve(env)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, key) {
					t.Fatalf("got %x, want %x", got, key)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want an error containing %q", err, tt.err)
			}
			if !strings.Contains(err.Error(), `"k"`) {
				t.Errorf("the error does not name the key id: %v", err)
			}
			for _, material := range []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(short)} {
				if strings.Contains(err.Error(), material) {
					t.Errorf("the error repeats key material: %v", err)
				}
			}
		})
	}
}

func TestResolveDefaultsToProcessEnvironment(t *testing.T) {
	t.Setenv("VALET_TEST_KEK", strings.Repeat("ab", 32))
	got, err := KeyEncryptionKey{ID: "k", Source: "env:VALET_TEST_KEK"}.Resolve(nil)
	if err != nil || len(got) != KeyEncryptionKeySize {
		t.Fatalf("got %x, %v", got, err)
	}
}
