package codeflow_test

import (
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/valetauth/valet/loadtest/internal/cluster"
	"github.com/valetauth/valet/loadtest/internal/codeflow"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

func start(t *testing.T) *cluster.Cluster {
	t.Helper()
	r := testenv.Redis(t)
	c, err := cluster.Start(context.Background(), cluster.Options{RedisURL: r.URL, KeyPrefix: r.Prefix,
		UserParams: users.Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("cluster: %v", err)
		}
	})
	return c
}

func config(c *cluster.Cluster) codeflow.Config {
	return codeflow.Config{
		AuthorizeURL: c.AuthorizeURL, TokenURL: c.TokenURL, Issuer: c.Issuer,
		ClientID: c.WebClientID, ClientSecret: c.WebClientSecret, RedirectURI: c.RedirectURI,
		Resource: c.Resource, Scope: "read write", Username: c.Username, Password: c.Password,
	}
}

// counter returns a counter of the issuer's registry by name and label
// value, 0 when absent.
func counter(t *testing.T, c *cluster.Cluster, name, label string) float64 {
	t.Helper()
	mfs, err := c.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestFamilies: every family comes from its own code exchange, after one
// login and one consent, as a browser with a session would get them.
func TestFamilies(t *testing.T) {
	c := start(t)
	f, err := codeflow.New(config(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	fams, err := f.Families(context.Background(), 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, fam := range fams {
		fid, _, ok := strings.Cut(strings.TrimPrefix(fam.RefreshToken, "vrt_"), ".")
		if !strings.HasPrefix(fam.RefreshToken, "vrt_") || !ok || fam.TokenType != "Bearer" || fam.Scope != "read write" {
			t.Errorf("family %d: refresh token %.8s…, type %q, scope %q", i, fam.RefreshToken, fam.TokenType, fam.Scope)
		}
		if seen[fid] {
			t.Errorf("family %d: fid %s twice", i, fid)
		}
		seen[fid] = true
	}
	if n := counter(t, c, "valet_login_attempts_total", "success"); n != 1 {
		t.Errorf("%v logins, want 1 (the session is kept)", n)
	}
	if n := counter(t, c, "valet_authorize_requests_total", "consent"); n != 1 {
		t.Errorf("%v consent pages, want 1 (the consent is remembered)", n)
	}
	if n := counter(t, c, "valet_authorize_requests_total", "code"); n != 6 {
		t.Errorf("%v codes, want 6", n)
	}
}

// TestPublicClient: a public client exchanges its code with client_id and
// the PKCE verifier alone.
func TestPublicClient(t *testing.T) {
	c := start(t)
	cfg := config(c)
	cfg.ClientID, cfg.ClientSecret = c.PublicClientID, ""
	f, err := codeflow.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Family(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRefusals: the flow stops with a readable error instead of a code it
// should not trust.
func TestRefusals(t *testing.T) {
	c := start(t)
	for name, tc := range map[string]struct {
		edit func(*codeflow.Config)
		want string
	}{
		"wrong password": {func(c *codeflow.Config) { c.Password += "x" }, "login answered 401"},
		"foreign issuer": {func(c *codeflow.Config) { c.Issuer = "https://elsewhere.example" }, "iss"},
		"unknown scope":  {func(c *codeflow.Config) { c.Scope = "admin" }, "invalid_scope"},
		"wrong secret":   {func(c *codeflow.Config) { c.ClientSecret += "x" }, "invalid_client"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config(c)
			tc.edit(&cfg)
			f, err := codeflow.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Family(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
