package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/loadtest/internal/cluster"
	"github.com/valetauth/valet/loadtest/internal/codeflow"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

// harness starts an issuer and returns it with refreshload's arguments for
// its web client, user and metrics.
func harness(t *testing.T) (*cluster.Cluster, []string) {
	t.Helper()
	r := testenv.Redis(t)
	ctx := context.Background()
	c, err := cluster.Start(ctx, cluster.Options{RedisURL: r.URL, KeyPrefix: r.Prefix,
		UserParams: users.Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("cluster: %v", err)
		}
	})
	adm, err := c.AdminAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, []string{
		"-token-url", c.TokenURL, "-authorize-url", c.AuthorizeURL, "-issuer", c.Issuer,
		"-client-id", c.WebClientID, "-client-secret", c.WebClientSecret, "-redirect-uri", c.RedirectURI,
		"-user", c.Username, "-password", c.Password, "-metrics-url", "http://" + adm.String() + "/metrics",
	}
}

// TestRotatesEveryChain: short runs against a real issuer pass, with
// every chain alive and the issuer counting rotations only (no grace
// replay, no reuse).
func TestRotatesEveryChain(t *testing.T) {
	c, base := harness(t)
	for name, extra := range map[string][]string{
		"confidential":  nil,
		"public narrow": {"-public", "-client-id", c.PublicClientID, "-narrow", "read"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			args := append(append(base[:len(base):len(base)], extra...), "-concurrency", "3", "-duration", "1s", "-warmup", "200ms")
			if err := run(context.Background(), args, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			for _, want := range []string{"PASS", "3 alive of 3", "grace 0, reuse 0", "errors        none"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestReuseFailsTheRun: a chain whose token was superseded two rotations
// ago (no grace) trips reuse detection, and the run says FAILED.
func TestReuseFailsTheRun(t *testing.T) {
	c, base := harness(t)
	ctx := context.Background()
	f, err := codeflow.New(codeflow.Config{
		AuthorizeURL: c.AuthorizeURL, TokenURL: c.TokenURL, ClientID: c.WebClientID, ClientSecret: c.WebClientSecret,
		RedirectURI: c.RedirectURI, Username: c.Username, Password: c.Password,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fams, err := f.Families(ctx, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{client: http.DefaultClient, url: c.TokenURL, auth: codeflow.BasicAuth(c.WebClientID, c.WebClientSecret),
		token: fams[1].RefreshToken, failures: map[string]int{}}
	for range 2 {
		next, fail := w.rotate(ctx)
		if fail != "" {
			t.Fatalf("rotate: %s", fail)
		}
		w.token = next
	}
	seed := filepath.Join(t.TempDir(), "seed.txt")
	if err := os.WriteFile(seed, []byte(fams[0].RefreshToken+"\n"+fams[1].RefreshToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(ctx, append(base, "-seed", seed, "-concurrency", "2", "-duration", "500ms", "-warmup", "0s"), &out)
	if err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Fatalf("run: %v, want FAILED\n%s", err, out.String())
	}
	for _, want := range []string{"1 × 400 invalid_grant (REUSE DETECTED", "reuse 1", "1 alive of 2", "FAILED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestMint: -mint writes one working refresh token a line.
func TestMint(t *testing.T) {
	_, base := harness(t)
	seed := filepath.Join(t.TempDir(), "seed.txt")
	var out bytes.Buffer
	if err := run(context.Background(), append(base, "-mint", "3", "-seed-out", seed), &out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(raw))
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "vrt_") {
		t.Fatalf("seed file: %d lines", len(lines))
	}
	out.Reset()
	if err := run(context.Background(), append(base, "-seed", seed, "-concurrency", "3", "-duration", "300ms", "-warmup", "0s"), &out); err != nil {
		t.Fatalf("rotating the minted families: %v\n%s", err, out.String())
	}
}

func TestParse(t *testing.T) {
	for name, args := range map[string][]string{
		"no secret":         {"-token-url", "http://x/token", "-client-id", "web", "-seed", "s"},
		"mint without out":  {"-token-url", "http://x/token", "-client-id", "web", "-client-secret", "s", "-authorize-url", "http://x/authorize", "-redirect-uri", "http://c/cb", "-user", "u", "-password", "p", "-mint", "3"},
		"mint without user": {"-token-url", "http://x/token", "-client-id", "web", "-client-secret", "s", "-mint", "3", "-seed-out", "f"},
		"zero concurrency":  {"-token-url", "http://x/token", "-client-id", "web", "-client-secret", "s", "-seed", "s", "-concurrency", "0"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"TOKEN_URL", "AUTHORIZE_URL", "WEB_CLIENT_ID", "WEB_CLIENT_SECRET", "REDIRECT_URI", "LOGIN_USER", "LOGIN_PASSWORD", "PUBLIC_CLIENT_ID"} {
				t.Setenv(k, "")
			}
			if _, err := parse(args); err == nil {
				t.Error("parsed")
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 90: 90, 99: 99, 100: 100, 0: 1} {
		if got := percentile(s, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("empty")
	}
}
