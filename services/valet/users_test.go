package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

// usersCLI runs `valet users args...` with stdin.
func usersCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runUsers(args, os.Getenv, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestUsersCommands runs every verb against a real issuer (its admin API on
// Redis, whose users the login page would check).
func TestUsersCommands(t *testing.T) {
	e := newIssuerEnv(t)
	const pw1, pw2, pw3 = "correct horse battery", "staple-2-horse", "third password!"
	steps := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"add", pw1 + "\n", []string{"add", "alice"}, 0, "username alice"},
		{"add with --password-stdin, CRLF", "long enough\r\n", []string{"add", "bob", "--password-stdin"}, 0, "disabled false"},
		{"add duplicate", pw1 + "\n", []string{"add", "alice"}, 1, "conflict"},
		{"add short password", "short\n", []string{"add", "carol"}, 1, "invalid_request"},
		{"add without password", "", []string{"add", "carol"}, 2, "no password on stdin"},
		{"password as an argument", pw1 + "\n", []string{"add", "carol", pw1}, 2, "want 1 USERNAME"},
		{"get", "", []string{"get", "alice"}, 0, "sub usr_"},
		{"passwd", pw2 + "\n", []string{"passwd", "alice"}, 0, "Password changed. Existing sessions and tokens of alice stay valid"},
		{"passwd --revoke", pw3 + "\n", []string{"passwd", "alice", "--revoke"}, 0, "issued until now is revoked (subject.revoked)"},
		{"disable", "", []string{"disable", "alice"}, 0, "disabled true"},
		{"enable", "", []string{"enable", "alice"}, 0, "alice may sign in again"},
		{"get unknown", "", []string{"get", "nobody"}, 1, "not_found"},
		{"passwd unknown", pw1 + "\n", []string{"passwd", "nobody"}, 1, "not_found"},
		{"no verb", "", nil, 2, "usage"},
		{"unknown verb", "", []string{"frob", "x"}, 2, "unknown verb"},
		{"missing username", "", []string{"get"}, 2, "USERNAME"},
		{"invalid username", "", []string{"get", " alice"}, 2, "not a valid username"},
		{"--revoke outside passwd", "", []string{"disable", "alice", "--revoke"}, 2, "--revoke for passwd"},
		{"--password-stdin outside add and passwd", "", []string{"get", "alice", "--password-stdin"}, 2, "--password-stdin is for add and passwd"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errOut := usersCLI(t, s.stdin, s.args...)
			if code != s.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, s.wantCode, out, errOut)
			}
			squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if !strings.Contains(squash(out+errOut), squash(s.wantOut)) {
				t.Fatalf("output lacks %q:\n%s%s", s.wantOut, out, errOut)
			}
			for _, secret := range []string{pw1, pw2, pw3, "argon2"} {
				if strings.Contains(out+errOut, secret) {
					t.Fatalf("output shows %q:\n%s%s", secret, out, errOut)
				}
			}
		})
	}

	// list and get --json through the main dispatch.
	code, out, _ := cli(t, "users", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^USERNAME\s+SUB\s+DISABLED`).MatchString(out) ||
		!strings.Contains(out, "alice") || !strings.Contains(out, "bob") || strings.Contains(out, "argon2") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "users", "get", "alice", "--json")
	var got struct {
		Username string `json:"username"`
		Subject  string `json:"sub"`
		Disabled bool   `json:"disabled"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Username != "alice" || got.Disabled ||
		strings.Contains(out, "password") {
		t.Fatalf("get --json: %d %s", code, out)
	}

	// What the login page sees: the last password, the account enabled; the
	// disable and passwd --revoke left a subject cut-off for alice.
	ua, err := users.NewAuthenticator(users.NewRedis(e.Store.Client(), "valet:"), users.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ua.Authenticate(ctx, "alice", pw3); err != nil {
		t.Fatalf("alice with the last password: %v", err)
	}
	if _, err := ua.Authenticate(ctx, "alice", pw1); err == nil {
		t.Fatal("alice's first password still works")
	}
	d, err := e.Store.DenyState(ctx, store.DenyQuery{SubjectType: events.SubjectUser, Subject: got.Subject})
	if err != nil || d.SubjectCutoff.IsZero() {
		t.Fatalf("alice's deny state %+v, %v", d, err)
	}
}

func TestUsersNeedCredentials(t *testing.T) {
	for _, k := range []string{envIssuerAdminURL, envTokenURL, envClientID, envClientSecret, envIssuer} {
		t.Setenv(k, "")
	}
	if code, _, errOut := usersCLI(t, "", "list"); code != 2 || !strings.Contains(errOut, "$"+envClientSecret) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// TestUsersPasswordFromPipe: a stdin that is not a terminal gives its first
// line, never a prompt.
func TestUsersPasswordFromPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() { _, _ = w.WriteString("piped secret\nsecond line\n"); _ = w.Close() }()
	var prompt bytes.Buffer
	pw, err := readPassword(r, &prompt, "alice", false)
	if err != nil || pw != "piped secret" || prompt.Len() != 0 {
		t.Fatalf("readPassword = %q, %v; prompt %q", pw, err, prompt.String())
	}
}
