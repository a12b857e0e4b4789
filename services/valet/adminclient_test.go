package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/services/issuer"
)

// issuerEnv is a running issuer with its admin API on real Redis and
// JetStream, the admin resource server registered, and the admin client
// "ops" (valet:admin) whose credentials the CLI's environment holds.
type issuerEnv struct {
	*servicetest.Env
	publicURL string
}

func newIssuerEnv(t *testing.T) *issuerEnv {
	t.Helper()
	e := &issuerEnv{Env: servicetest.New(t, cliIssuer)}
	cfg := e.Config()
	cfg.Services.Issuer = config.Service{PublicURL: cliIssuer, Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	// No event consumer: the cache is untrusted and reads the store.
	cache, err := clients.New(e.Store, clients.Config{Prefix: e.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := revoke.New(revoke.Config{Source: cliIssuer, Prefix: e.Prefix, Retain: time.Hour}, e.Store, e.Pub)
	if err != nil {
		t.Fatal(err)
	}
	chk := servicetest.Checker(t, edge.CheckerConfig{Issuer: cliIssuer, JWKSURL: cliIssuer + "/jwks.json", MaxTokenLifetime: 15 * time.Minute,
		HTTPClient: &http.Client{Transport: issuer.LocalJWKS(e.Keys)}, UnknownKIDInterval: 10 * time.Millisecond})
	svc, err := issuer.New(cfg, issuer.Deps{Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: e.Store, Keys: e.Keys, Clients: cache, Secrets: e.Hasher,
		Admin: &issuer.AdminDeps{Store: e.Store, Checker: chk, Revoker: rev, Publisher: e.Env, Keys: e.Keys, Hasher: e.Hasher, Cache: cache}})
	if err != nil {
		t.Fatal(err)
	}
	var adminURL string
	e.publicURL, adminURL = servicetest.Serve(t, svc)

	aud := adminauth.Audience(cliIssuer)
	e.CreateResourceServers(store.ResourceServer{ID: aud, Scopes: []string{adminauth.Scope}})
	opsSec := e.CreateClient(store.Client{ID: "ops", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{aud: {adminauth.Scope}}, DefaultResource: aud})
	for k, v := range map[string]string{
		envIssuerAdminURL: adminURL, envTokenURL: e.publicURL + "/token",
		envClientID: "ops", envClientSecret: opsSec, envIssuer: cliIssuer,
	} {
		t.Setenv(k, v)
	}
	return e
}

// cli runs the valet command in-process and returns its exit code and
// output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliStep is one CLI invocation and what it must answer.
type cliStep struct {
	name     string
	args     []string
	wantCode int
	wantOut  string
}

func runSteps(t *testing.T, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errOut := cli(t, s.args...)
			if code != s.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, s.wantCode, out, errOut)
			}
			// Compare with runs of blanks collapsed: tables are aligned.
			squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if !strings.Contains(squash(out+errOut), squash(s.wantOut)) {
				t.Fatalf("output lacks %q:\n%s%s", s.wantOut, out, errOut)
			}
		})
	}
}
