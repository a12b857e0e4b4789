package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// IsReference reports whether s has the form of a secret reference, env:NAME or file:/path, as
// opposed to a value written in the file (a hash, or a secret pasted by mistake).
func IsReference(s string) bool {
	return strings.HasPrefix(s, "env:") || strings.HasPrefix(s, "file:")
}

// ReadReference returns the secret a reference points at: the environment variable NAME of
// env:NAME, read through lookupEnv (os.LookupEnv when nil) and taken as is, or the content of the
// file of file:/absolute/path without its trailing line ending. An unset or empty variable and an
// empty file are errors: a missing secret must stop a start, not become an empty secret. Errors
// name the variable or file, never the value.
func ReadReference(source string, lookupEnv func(string) (string, bool)) (string, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if err := checkSource(source); err != nil {
		return "", fmt.Errorf("source %s", referenceProblem(err))
	}
	kind, ref, _ := strings.Cut(source, ":")
	switch kind {
	case "env":
		v, ok := lookupEnv(ref)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", ref)
		}
		return v, nil
	default: // file, as checkSource allows nothing else
		b, err := os.ReadFile(ref)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return "", fmt.Errorf("read %s: %w", ref, pe.Err)
			}
			return "", fmt.Errorf("read %s: %w", ref, err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("file %s is empty", ref)
		}
		return v, nil
	}
}
