package loadtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/valetauth/valet/loadtest/internal/cluster"
	"github.com/valetauth/valet/loadtest/internal/codeflow"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

func startCluster(t *testing.T) *cluster.Cluster {
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

// issuerCount sums an issuer counter over the series with a label of
// value.
func issuerCount(t *testing.T, c *cluster.Cluster, name, value string) float64 {
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
			if labelled(m, value) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelled(m *dto.Metric, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == value {
			return true
		}
	}
	return false
}

// refreshEnv is k6/refresh.js's environment for the harness's web client.
func refreshEnv(c *cluster.Cluster, vus string) map[string]string {
	return map[string]string{
		"TOKEN_URL": c.TokenURL, "AUTHORIZE_URL": c.AuthorizeURL, "ISSUER": c.Issuer,
		"CLIENT_ID": c.WebClientID, "CLIENT_SECRET": c.WebClientSecret, "REDIRECT_URI": c.RedirectURI,
		"RESOURCE": c.Resource, "LOGIN_USER": c.Username, "LOGIN_PASSWORD": c.Password, "VUS": vus,
	}
}

// TestK6RefreshAgainstIssuer runs k6/refresh.js on the shim against a real
// issuer: setup obtains one family per VU through the login and consent
// pages, every VU rotates its own chain, and every check passes — what
// the script's thresholds demand. The issuer counts exactly those
// rotations, no grace replay and no reuse.
func TestK6RefreshAgainstIssuer(t *testing.T) {
	c := startCluster(t)
	const vus, iterations = 3, 4
	for _, tc := range []struct {
		name string
		env  func(map[string]string)
	}{
		{"confidential", func(map[string]string) {}},
		{"public, narrowing", func(e map[string]string) {
			e["CLIENT_ID"], e["CLIENT_SECRET"], e["PUBLIC"], e["NARROW"] = c.PublicClientID, "", "1", "read"
		}},
		{"seed file", func(e map[string]string) {
			e["SEED_FILE"] = seedFile(t, c, vus)
			e["LOGIN_PASSWORD"] = "unused: the families come from the file"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := refreshEnv(c, "3")
			tc.env(env)
			rotated := issuerCount(t, c, "valet_refresh_rotations_total", "rotated")
			run := newK6Run(t, "k6/refresh.js", env)
			run.runK6(vus, iterations)
			if len(run.failed) > 0 {
				t.Errorf("failed checks: %v (passed %v)", run.failed, run.passed)
			}
			if got := run.metrics["refresh_rotations"]; got != vus*iterations {
				t.Errorf("refresh_rotations = %v, want %d", got, vus*iterations)
			}
			if n := run.metrics["refresh_chains_broken"] + run.metrics["refresh_reuse_detected"]; n != 0 {
				t.Errorf("broken chains or reuse: %v", run.metrics)
			}
			if got := issuerCount(t, c, "valet_refresh_rotations_total", "rotated") - rotated; got != vus*iterations {
				t.Errorf("the issuer rotated %v times, want %d", got, vus*iterations)
			}
		})
	}
	if n := issuerCount(t, c, "valet_refresh_rotations_total", "reuse") + issuerCount(t, c, "valet_refresh_rotations_total", "grace"); n != 0 {
		t.Errorf("the issuer saw %v reuse or grace replays", n)
	}
}

// TestK6RefreshReportsReuse: a family whose token the script starts from
// was superseded two rotations ago; the script must count reuse detection
// and a broken chain, and fail its checks (so its thresholds fail the run).
func TestK6RefreshReportsReuse(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	f := newFlow(t, c)
	fam, err := f.Family(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := fam.RefreshToken
	for range 2 {
		tok = rotateOnce(t, c, tok)
	}
	seed := filepath.Join(t.TempDir(), "seed.txt")
	must(t, os.WriteFile(seed, []byte(fam.RefreshToken+"\n"), 0o600))
	env := refreshEnv(c, "1")
	env["SEED_FILE"] = seed
	run := newK6Run(t, "k6/refresh.js", env)
	run.runK6(1, 3)
	if run.metrics["refresh_reuse_detected"] != 1 || run.metrics["refresh_chains_broken"] != 1 || run.metrics["refresh_rotations"] != 0 {
		t.Errorf("metrics %v: want one reuse detected, one broken chain, no rotation", run.metrics)
	}
	if run.failed["status is 200"] != 1 {
		t.Errorf("failed checks %v: want one failed status check", run.failed)
	}
}

// TestK6ClientCredentialsAgainstIssuer: k6/client_credentials.js against
// the real issuer passes every check.
func TestK6ClientCredentialsAgainstIssuer(t *testing.T) {
	c := startCluster(t)
	for _, auth := range []string{"basic", "post"} {
		run := newK6Run(t, "k6/client_credentials.js", map[string]string{
			"TOKEN_URL": c.TokenURL, "CLIENT_ID": c.ClientID, "CLIENT_SECRET": c.ClientSecret, "RESOURCE": c.Resource, "AUTH": auth,
		})
		run.runK6(2, 2)
		if len(run.failed) > 0 || run.passed["status is 200"] != 4 {
			t.Errorf("%s: failed checks %v, passed %v", auth, run.failed, run.passed)
		}
	}
}

func newFlow(t *testing.T, c *cluster.Cluster) *codeflow.Flow {
	t.Helper()
	f, err := codeflow.New(codeflow.Config{
		AuthorizeURL: c.AuthorizeURL, TokenURL: c.TokenURL, Issuer: c.Issuer,
		ClientID: c.WebClientID, ClientSecret: c.WebClientSecret, RedirectURI: c.RedirectURI,
		Username: c.Username, Password: c.Password,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// seedFile mints n families and writes their refresh tokens, one a line.
func seedFile(t *testing.T, c *cluster.Cluster, n int) string {
	t.Helper()
	fams, err := newFlow(t, c).Families(context.Background(), n, 2)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# minted by the test\n")
	for _, f := range fams {
		b.WriteString(f.RefreshToken + "\n")
	}
	p := filepath.Join(t.TempDir(), "seed.txt")
	must(t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

// rotateOnce rotates tok with the web client and returns the successor.
func rotateOnce(t *testing.T, c *cluster.Cluster, tok string) string {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}}
	req, err := http.NewRequest(http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", codeflow.BasicAuth(c.WebClientID, c.WebClientSecret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		RefreshToken string `json:"refresh_token"`
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("rotate: status %d", res.StatusCode)
	}
	must(t, json.NewDecoder(res.Body).Decode(&body))
	return body.RefreshToken
}
