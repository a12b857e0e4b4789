package issuer_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/services/issuer"
)

// replica starts one more issuer with the user grants on the harness's
// Redis and JetStream, with login limits from lc (or l when set), and
// returns its URL.
func (a *authHarness) replica(t *testing.T, trusted string, lc ratelimit.LoginConfig, l issuer.LoginLimiter) string {
	t.Helper()
	if l == nil {
		opt, err := goredis.ParseURL(a.Redis.URL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := goredis.NewClient(opt)
		t.Cleanup(func() { _ = rdb.Close() })
		if l, err = ratelimit.NewLogin(rdb, a.Redis.Prefix, lc); err != nil {
			t.Fatal(err)
		}
	}
	cfg := *a.cfg
	cfg.Limits.TrustedProxies = trusted
	deps := a.userDeps(t, prometheus.NewRegistry())
	deps.LoginLimiter = l
	_, u := startIssuer(t, &cfg, deps)
	return u
}

// tryLogin opens the login page of the replica at base and posts
// username and password, with X-Forwarded-For xff when set.
func (a *authHarness) tryLogin(t *testing.T, base, username, password, xff string) pageResp {
	t.Helper()
	c := browser(t)
	conf := a.oauth(webID, a.webSecret, webRedir, "read")
	conf.Endpoint.AuthURL = base + "/authorize"
	p := get(t, c, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("no login page: %d %.300s", p.status, p.body)
	}
	f := hidden(t, p.body)
	f.Set("username", username)
	f.Set("password", password)
	req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return pageResp{res.StatusCode, res.Header, string(b)}
}

func wantThrottled(t *testing.T, what string, p pageResp) {
	t.Helper()
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Try again in") {
		t.Fatalf("%s: status %d, want 429 with a wait: %.300s", what, p.status, p.body)
	}
	if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("%s: Retry-After %q", what, p.header.Get("Retry-After"))
	}
	if !strings.Contains(p.body, `id="password"`) {
		t.Fatalf("%s: the 429 page has no login form", what)
	}
}

// TestPasswordGuessingAcrossReplicas: failures on replica A put the account
// in back-off on replica B too; even the right password is refused (429,
// Retry-After) until the wait is over, and then accepted.
func TestPasswordGuessingAcrossReplicas(t *testing.T) {
	a := newAuthHarness(t)
	lc := ratelimit.LoginConfig{AccountFailures: 2, AddrFailures: 100, Base: 2 * time.Second}
	ra, rb := a.replica(t, "", lc, nil), a.replica(t, "", lc, nil)
	for i := range 3 { // two free, the third earns the first wait
		if p := a.tryLogin(t, ra, alice, "guess-"+strconv.Itoa(i), ""); p.status != http.StatusUnauthorized {
			t.Fatalf("guess %d on A: status %d", i, p.status)
		}
	}
	wantThrottled(t, "right password on B in back-off", a.tryLogin(t, rb, alice, alicePW, ""))
	wantThrottled(t, "guess on A in back-off", a.tryLogin(t, ra, "ALICE", "guess", ""))
	// Not locked out: after the wait the right password works (and clears
	// the account's count).
	time.Sleep(2100 * time.Millisecond)
	if p := a.tryLogin(t, rb, alice, alicePW, ""); p.status != http.StatusSeeOther {
		t.Fatalf("right password after the wait: status %d: %.300s", p.status, p.body)
	}
	if p := a.tryLogin(t, ra, alice, "guess", ""); p.status != http.StatusUnauthorized {
		t.Fatalf("guess after success: status %d, want 401 (count cleared)", p.status)
	}
}

// TestPasswordGuessingGrows: each failure in back-off doubles the wait.
func TestPasswordGuessingGrows(t *testing.T) {
	a := newAuthHarness(t)
	r := a.replica(t, "", ratelimit.LoginConfig{AccountFailures: 1, AddrFailures: 100, Base: 500 * time.Millisecond}, nil)
	_ = a.tryLogin(t, r, alice, "g0", "") // free
	_ = a.tryLogin(t, r, alice, "g1", "") // wait 500ms
	time.Sleep(600 * time.Millisecond)    //
	_ = a.tryLogin(t, r, alice, "g2", "") // wait 1s
	time.Sleep(600 * time.Millisecond)    // past the first wait, not the second
	wantThrottled(t, "after 600ms of a 1s wait", a.tryLogin(t, r, alice, alicePW, ""))
	time.Sleep(500 * time.Millisecond)
	if p := a.tryLogin(t, r, alice, alicePW, ""); p.status != http.StatusSeeOther {
		t.Fatalf("after the wait: status %d", p.status)
	}
}

// TestPasswordGuessingPerAddress: many accounts from one address; and
// X-Forwarded-For believed only from a trusted proxy.
func TestPasswordGuessingPerAddress(t *testing.T) {
	a := newAuthHarness(t)
	lc := ratelimit.LoginConfig{AccountFailures: 100, AddrFailures: 2, Base: time.Minute}
	direct := a.replica(t, "", lc, nil)
	for i := range 3 { // varying X-Forwarded-For from an untrusted peer changes nothing
		p := a.tryLogin(t, direct, "user"+strconv.Itoa(i), "guess", "203.0.113."+strconv.Itoa(i+1))
		if p.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d", i, p.status)
		}
	}
	wantThrottled(t, "direct, spoofed X-Forwarded-For", a.tryLogin(t, direct, alice, alicePW, "198.51.100.77"))

	// Behind a trusted proxy (the loopback peer) each forwarded client
	// counts for itself: the right-most untrusted entry, not a spoofed left one.
	proxied := a.replica(t, "127.0.0.1/32, 10.0.0.0/8", lc, nil)
	for i := range 3 {
		p := a.tryLogin(t, proxied, "other"+strconv.Itoa(i), "guess", "1.2.3.4, 192.0.2.10, 10.1.1.1")
		if p.status != http.StatusUnauthorized {
			t.Fatalf("proxied guess %d: status %d", i, p.status)
		}
	}
	wantThrottled(t, "proxied client in back-off", a.tryLogin(t, proxied, alice, alicePW, "5.6.7.8, 192.0.2.10"))
	if p := a.tryLogin(t, proxied, alice, alicePW, "192.0.2.11"); p.status != http.StatusSeeOther {
		t.Fatalf("another proxied client: status %d: %.300s", p.status, p.body)
	}
}

// TestPasswordGuessingFailsClosed: limits that cannot be read refuse the
// login (503), never let it through unlimited.
func TestPasswordGuessingFailsClosed(t *testing.T) {
	a := newAuthHarness(t)
	dead := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	l, err := ratelimit.NewLogin(dead, "x:", ratelimit.LoginConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := a.replica(t, "", ratelimit.LoginConfig{}, l)
	p := a.tryLogin(t, r, alice, alicePW, "")
	if p.status != http.StatusServiceUnavailable || strings.Contains(strings.Join(p.header.Values("Set-Cookie"), ";"), "session") {
		t.Fatalf("status %d, want 503 without a session", p.status)
	}
}
