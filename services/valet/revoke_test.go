package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
	"github.com/valetauth/valet/services/revocation"
)

const cliIssuer = "https://auth.example.test"

// cliEnv is a running revocation service on real Redis and JetStream, and a
// token endpoint that issues admin tokens signed by a real key ring to the
// client "ops" (secret opsSecret) and, without the admin scope, to "weak".
type cliEnv struct {
	*servicetest.Env
	adminURL string
	tokenURL string
}

const opsSecret = "ops-secret-for-tests"

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	e := &cliEnv{Env: servicetest.New(t, cliIssuer)}
	cfg := e.Config()
	cfg.Services.Revocation = config.Service{PublicURL: "http://revoke.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	// The issuer's part: JWKS and a client-credentials token endpoint.
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks.json", func(w http.ResponseWriter, _ *http.Request) { b, _ := e.Keys.JWKS(); _, _ = w.Write(b) })
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, _ := r.BasicAuth()
		_ = r.ParseForm()
		fail := func(code string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
		}
		switch {
		case sec != opsSecret || (id != "ops" && id != "weak"):
			fail("invalid_client")
			return
		case r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("resource") != adminauth.Audience(cliIssuer) || r.PostForm.Get("scope") != adminauth.Scope:
			fail("invalid_request")
			return
		}
		scope := adminauth.Scope
		if id == "weak" {
			scope = "read"
		}
		jti, _ := token.NewID()
		now := time.Now().Unix()
		c, _ := json.Marshal(map[string]any{"iss": cliIssuer, "sub": id, "client_id": id, "aud": adminauth.Audience(cliIssuer),
			"iat": now, "nbf": now, "exp": now + 300, "jti": jti, "scope": scope})
		s, _ := e.Keys.Current()
		at, _ := s.Sign(keys.TypeAccessToken, c)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": string(at), "token_type": "Bearer", "expires_in": 300})
	})
	iss := httptest.NewServer(mux)
	t.Cleanup(iss.Close)
	e.tokenURL = iss.URL + "/token"

	rev, err := revoke.New(revoke.Config{Source: cliIssuer, Prefix: e.Prefix, Retain: time.Hour}, e.Store, e.Pub)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := clients.New(e.Store, clients.Config{Prefix: e.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	chk := servicetest.Checker(t, edge.CheckerConfig{Issuer: cliIssuer, JWKSURL: iss.URL + "/jwks.json", MaxTokenLifetime: 15 * time.Minute})
	svc, err := revocation.New(cfg, revocation.Deps{Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: e.Store, Revoker: rev, Clients: cache, Secrets: e.Hasher, Checker: chk})
	if err != nil {
		t.Fatal(err)
	}
	_, e.adminURL = servicetest.Serve(t, svc)
	return e
}

func TestRevokeCommands(t *testing.T) {
	e := newCLIEnv(t)
	fid, _ := token.NewFamilyID()
	env := map[string]string{
		envAdminURL: e.adminURL, envTokenURL: e.tokenURL, envClientID: "ops", envClientSecret: opsSecret, envIssuer: cliIssuer,
	}
	getenv := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	without := func(k string) map[string]string {
		m := map[string]string{}
		for a, b := range env {
			if a != k {
				m[a] = b
			}
		}
		return m
	}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantOut  string
	}{
		{"family", []string{"family", fid}, env, 0, "revoked family " + fid},
		{"subject", []string{"subject", "alice"}, env, 0, "revoked subject alice (cut-off"},
		{"client subject with the flag last", []string{"subject", "svc-x", "--type", "client"}, env, 0, "revoked subject svc-x"},
		{"client", []string{"client", "svc-b"}, env, 0, "as ops: durable"},
		{"token", []string{"token", "jti-1", "--exp", "4102444800"}, env, 0, "revoked token jti-1"},
		{"flags from the command line", []string{"client", "--client-id", "ops", "svc-c"}, without(envClientID), 0, "revoked client svc-c"},
		{"no kind", nil, env, 2, "usage"},
		{"unknown kind", []string{"user", "x"}, env, 2, "unknown kind"},
		{"no argument", []string{"client"}, env, 2, "exactly one"},
		{"token without exp", []string{"token", "j"}, env, 2, "--exp"},
		{"bad subject type", []string{"subject", "a", "--type", "robot"}, env, 2, "--type"},
		{"no secret", []string{"client", "x"}, without(envClientSecret), 2, "$" + envClientSecret},
		{"bad family id", []string{"family", "nope"}, env, 1, "invalid_request"},
		{"wrong secret", []string{"client", "x"}, map[string]string{envAdminURL: e.adminURL, envTokenURL: e.tokenURL, envClientID: "ops", envClientSecret: "wrong", envIssuer: cliIssuer}, 1, "invalid_client"},
		{"a token without the admin scope", []string{"client", "x"}, map[string]string{envAdminURL: e.adminURL, envTokenURL: e.tokenURL, envClientID: "weak", envClientSecret: opsSecret, envIssuer: cliIssuer}, 1, "insufficient_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runRevoke(tt.args, getenv(tt.env), &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, tt.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), tt.wantOut) {
				t.Fatalf("output lacks %q:\n%s%s", tt.wantOut, out.String(), errOut.String())
			}
		})
	}
	// The revocations are in the store.
	d, err := e.Store.DenyState(context.Background(), store.DenyQuery{FID: fid, Subject: "alice", ClientID: "svc-b", JTI: "jti-1"})
	if err != nil || !d.FamilyRevoked || !d.JTIRevoked || d.SubjectCutoff.IsZero() || d.ClientCutoff.IsZero() {
		t.Fatalf("deny state %+v, %v", d, err)
	}
}
