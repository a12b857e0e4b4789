package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// KeyEncryptionKeySize is the length of a key-encryption key: 32 bytes, an AES-256 key.
const KeyEncryptionKeySize = 32

// KeyEncryptionKey names a key-encryption key and says where to read it. The file holds only the
// reference (env:NAME or file:/path), never the key, so the configuration can be stored and shared
// without protecting it like a secret.
type KeyEncryptionKey struct {
	// ID names the key; wrapped signing keys record it so the right key unwraps them.
	ID string `yaml:"id"`
	// Source is env:NAME (an environment variable) or file:/absolute/path.
	Source string `yaml:"source"`
}

var (
	kekIDPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// checkSource returns why source is not a valid reference, or nil. It never quotes the source:
// a mistake here may be the key itself pasted into the file.
func checkSource(source string) error {
	kind, ref, ok := strings.Cut(source, ":")
	switch {
	case ok && kind == "env":
		if !envNamePattern.MatchString(ref) {
			return errors.New("env: must be followed by an environment variable name")
		}
	case ok && kind == "file":
		if !filepath.IsAbs(ref) {
			return errors.New("file: must be followed by an absolute path")
		}
	default:
		return errors.New("must be a reference, env:NAME or file:/path, never the key itself")
	}
	return nil
}

// Resolve reads the key the reference points at, from lookupEnv (os.LookupEnv when nil) or from
// the file, and decodes it: 64 hexadecimal characters, or base64 (standard or URL alphabet,
// padded or not) of exactly 32 bytes. Surrounding whitespace is ignored. Errors name the key id
// and the reference, never the key material.
func (k KeyEncryptionKey) Resolve(lookupEnv func(string) (string, bool)) ([]byte, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if err := checkSource(k.Source); err != nil {
		return nil, fmt.Errorf("key-encryption key %q: source %w", k.ID, err)
	}
	kind, ref, _ := strings.Cut(k.Source, ":")
	var text string
	switch kind {
	case "env":
		v, ok := lookupEnv(ref)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("key-encryption key %q: environment variable %s is not set", k.ID, ref)
		}
		text = v
	case "file":
		b, err := os.ReadFile(ref)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key %q: read %s: %w", k.ID, ref, err)
		}
		text = string(b)
	}
	key, err := decodeKey(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %q from %s: %w", k.ID, k.Source, err)
	}
	return key, nil
}

// decodeKey decodes a 32-byte key written as hex or base64.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeyEncryptionKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KeyEncryptionKeySize {
			return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), KeyEncryptionKeySize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("not %d bytes as 64 hex characters or base64", KeyEncryptionKeySize)
}
