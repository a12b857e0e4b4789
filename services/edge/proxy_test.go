package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/services/edge"
)

// caseHeader names the request in the upstream's record.
const caseHeader = "X-Test-Case"

// seen is one request as the upstream received it.
type seen struct {
	method, path, rawPath, query, host string
	header                             http.Header
	body                               []byte
}

// recorder is a test upstream: it records every request and answers 200
// with a fixed body, echoing X-Request-Id as some upstreams do.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]seen // by caseHeader
	n   int
}

func newRecorder(t testing.TB) *recorder {
	t.Helper()
	u := &recorder{got: map[string]seen{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		u.mu.Lock()
		u.n++
		u.got[r.Header.Get(caseHeader)] = seen{
			method: r.Method, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery, host: r.Host,
			header: r.Header.Clone(), body: body,
		}
		u.mu.Unlock()
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"upstream":"ok"}`))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// request returns what the upstream received for the named case.
func (u *recorder) request(name string) (seen, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.got[name]
	return s, ok
}

// count returns how many requests the upstream received.
func (u *recorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// startProxy runs an authorizer in reverse-proxy mode for upstream (a URL)
// with the test policy; edit, when not nil, changes the configuration
// further.
func (e *env) startProxy(t testing.TB, upstream string, edit func(*config.Config)) *authz {
	t.Helper()
	return e.startAuthzWith(t, testPolicy, func(cfg *config.Config, _ *edge.Deps) {
		cfg.Services.Edge.Upstream = upstream
		if edit != nil {
			edit(cfg)
		}
	})
}

// newReq builds a request to the proxy with a bearer token (none when
// token is "").
func newReq(t testing.TB, method, url, token string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// send sends req and returns the status, headers and body.
func send(t testing.TB, req *http.Request) (int, http.Header, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

// TestReverseProxy checks that the proxy decides exactly as forward auth
// does, passes accepted requests upstream (path, query, body, identity,
// X-Forwarded-*) and never lets a refused one through.
func TestReverseProxy(t *testing.T) {
	e := newEnv(t)
	up := newRecorder(t)
	a := e.startProxy(t, up.srv.URL+"/base", nil)
	tok := e.sign(t, claims())
	readOnly := e.sign(t, with(claims(), "scope", "read"))
	forge := func(r *http.Request) {
		r.Header.Set(edge.HeaderSubject, "root")
		r.Header.Set(edge.HeaderScope, "admin")
		r.Header.Set("X-Valet-Other", "x")
		r.Header["X_Valet_Subject"] = []string{"root"} // CGI-style upstreams read it as X-Valet-Subject
		r.Header.Set("Forwarded", "for=198.51.100.1")
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		r.Header.Set("X-Forwarded-Host", "evil.test")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Real-Ip", "198.51.100.1")
	}

	tests := []struct {
		name   string
		method string
		target string // path and query, as sent
		token  string
		body   string
		edit   func(r *http.Request)
		// want is the status; 200 means the upstream answered.
		want int
		// wantPath and wantQuery are what the upstream must receive.
		wantPath, wantQuery string
		// wantWWW is the exact WWW-Authenticate of a refusal; "" none.
		wantWWW   string
		wantError string
	}{
		{
			name: "GET with read, query kept", method: "GET", target: "/reports/1?page=2&q=a%20b&q=c", token: tok, edit: forge,
			want: 200, wantPath: "/base/reports/1", wantQuery: "page=2&q=a%20b&q=c",
		},
		{
			name: "escaped path kept", method: "GET", target: "/public/a%2Fb/%C3%A9", token: tok,
			want: 200, wantPath: "/base/public/a%2Fb/%C3%A9",
		},
		{
			name: "POST body passes", method: "POST", target: "/reports?draft=1", token: tok, body: `{"title":"q3"}`,
			want: 200, wantPath: "/base/reports", wantQuery: "draft=1",
		},
		{
			name: "a custom method", method: "PURGE", target: "/public/cache", token: tok,
			want: 200, wantPath: "/base/public/cache",
		},
		{
			name: "Connection cannot strip the identity", method: "GET", target: "/public/x", token: tok,
			edit: func(r *http.Request) { r.Header.Set("Connection", "X-Valet-Subject, X-Valet-Scope") },
			want: 200, wantPath: "/base/public/x",
		},
		{
			name: "no token", method: "GET", target: "/reports/1", edit: forge,
			want: 401, wantWWW: `Bearer realm="valet"`,
		},
		{
			name: "invalid token", method: "GET", target: "/reports/1", token: "not.a.token",
			want: 401, wantError: "invalid_token",
			wantWWW: `Bearer realm="valet", error="invalid_token", error_description="the access token is malformed"`,
		},
		{
			name: "insufficient scope", method: "POST", target: "/reports", token: readOnly, body: "{}",
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="write"`,
		},
		{
			name: "admin needs admin", method: "GET", target: "/admin/users", token: tok,
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="the access token lacks a scope this route requires", scope="admin"`,
		},
		{
			name: "unmatched route denied", method: "GET", target: "/elsewhere", token: tok,
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
		},
		{
			name: "root is a route like any other", method: "GET", target: "/", token: tok,
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
		},
		{
			name: "metrics are not the edge's on the public listener", method: "GET", target: "/metrics", token: tok,
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
		},
		{
			name: "token in the query", method: "GET", target: "/public/x?access_token=" + tok, token: tok,
			want: 400, wantError: "invalid_request",
			wantWWW: `Bearer realm="valet", error="invalid_request", error_description="access tokens are accepted in the Authorization header only"`,
		},
		{
			name: "dot segments", method: "GET", target: "/public/%2e%2e/admin/users", token: tok,
			want: 400, wantError: "invalid_request",
		},
		{name: "TRACE is not proxied", method: "TRACE", target: "/public/x", token: tok, want: 405, wantError: "method_not_allowed"},
		{name: "CONNECT is not proxied", method: "CONNECT", target: "/public/x", token: tok, want: 405, wantError: "method_not_allowed"},
		{
			name: "POST /healthz is the upstream's", method: "POST", target: "/healthz", token: tok,
			want: 403, wantError: "insufficient_scope",
			wantWWW: `Bearer realm="valet", error="insufficient_scope", error_description="no route policy allows this request"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := newReq(t, tt.method, a.url+tt.target, tt.token, body)
			req.Header.Set(caseHeader, tt.name)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.edit != nil {
				tt.edit(req)
			}
			status, hdr, respBody := send(t, req)
			if status != tt.want {
				t.Fatalf("status %d, want %d (body %s)", status, tt.want, respBody)
			}
			got, reached := up.request(tt.name)
			if tt.want != 200 {
				if reached {
					t.Fatalf("a %d reached the upstream: %+v", tt.want, got)
				}
				if www := hdr.Get("WWW-Authenticate"); www != tt.wantWWW {
					t.Errorf("WWW-Authenticate %q, want %q", www, tt.wantWWW)
				}
				if hdr.Get("X-Upstream") != "" {
					t.Error("refusal carries the upstream's headers")
				}
				if tt.wantError != "" && !strings.Contains(respBody, `"error":"`+tt.wantError+`"`) {
					t.Errorf("body %s, want error %s", respBody, tt.wantError)
				}
				return
			}

			// Accepted: the upstream's answer, and what it received.
			if !reached {
				t.Fatal("the upstream was not reached")
			}
			if hdr.Get("X-Upstream") != "yes" || respBody != `{"upstream":"ok"}` {
				t.Errorf("answer is not the upstream's: %v %s", hdr, respBody)
			}
			if got.method != tt.method || got.rawPath != tt.wantPath || got.query != tt.wantQuery {
				t.Errorf("upstream got %s %s ? %s, want %s %s ? %s", got.method, got.rawPath, got.query, tt.method, tt.wantPath, tt.wantQuery)
			}
			if string(got.body) != tt.body {
				t.Errorf("upstream body %q, want %q", got.body, tt.body)
			}
			for h, want := range map[string]string{
				edge.HeaderSubject: "alice", edge.HeaderClient: "web-portal", edge.HeaderScope: "read write",
				"Authorization":     "Bearer " + tt.token,
				"X-Forwarded-For":   "127.0.0.1",
				"X-Forwarded-Host":  req.URL.Host,
				"X-Forwarded-Proto": "http",
			} {
				if v := got.header.Values(h); len(v) != 1 || v[0] != want {
					t.Errorf("upstream %s = %q, want [%s]", h, v, want)
				}
			}
			if got.header.Get(edge.HeaderTokenID) == "" {
				t.Errorf("upstream %s missing", edge.HeaderTokenID)
			}
			for k := range got.header {
				if lk := strings.ToLower(k); strings.HasPrefix(lk, "x_valet_") || lk == "x-valet-other" || lk == "forwarded" || lk == "x-real-ip" {
					t.Errorf("client-sent %s reached the upstream: %q", k, got.header[k])
				}
			}
			if id := hdr.Values("X-Request-Id"); len(id) != 1 || id[0] != got.header.Get("X-Request-Id") {
				t.Errorf("X-Request-Id: answer %q, upstream got %q", id, got.header.Get("X-Request-Id"))
			}
		})
	}

	// Every decision is counted as forward auth counts them, and every
	// upstream answer by code.
	if got := a.metric(t, `valet_edge_decisions_total{code="200",reason="ok"}`); got != "5" {
		t.Errorf("ok decisions = %q, want 5", got)
	}
	if got := a.metric(t, `valet_edge_decisions_total{code="401",reason="no_token"}`); got != "1" {
		t.Errorf("no_token decisions = %q, want 1", got)
	}
	if got := a.metric(t, `valet_edge_upstream_requests_total{code="200"}`); got != "5" {
		t.Errorf("upstream 200s = %q, want 5", got)
	}
	if got := a.metric(t, `valet_edge_upstream_duration_seconds_count`); got != "5" {
		t.Errorf("upstream latency observations = %q, want 5", got)
	}
}

// TestReverseProxyKeepsEdgePaths checks that in reverse-proxy mode the
// forward-auth endpoints and the health probes answer as before, and never
// reach the upstream.
func TestReverseProxyKeepsEdgePaths(t *testing.T) {
	e := newEnv(t)
	up := newRecorder(t)
	a := e.startProxy(t, up.srv.URL, nil)
	tok := e.sign(t, claims())

	r := ask(t, a.traefik(t, "GET", "/reports/1", tok))
	if r.status != 200 || r.header.Get(edge.HeaderSubject) != "alice" {
		t.Errorf("traefik: %d %v", r.status, r.header)
	}
	if r := ask(t, a.traefik(t, "GET", "/admin/x", tok)); r.status != 403 {
		t.Errorf("traefik admin: %d", r.status)
	}
	nginx := newReq(t, "GET", a.url+edge.PathNGINX, tok, nil)
	nginx.Header.Set("X-Original-URI", "/reports/1")
	nginx.Header.Set("X-Original-Method", "GET")
	if r := ask(t, nginx); r.status != 200 || r.header.Get(edge.HeaderScope) != "read write" {
		t.Errorf("nginx: %d %v", r.status, r.header)
	}
	if r := ask(t, newReq(t, "POST", a.url+edge.PathEnvoy+"/reports", tok, nil)); r.status != 200 {
		t.Errorf("envoy: %d", r.status)
	}
	if r := ask(t, newReq(t, "GET", a.url+edge.PathEnvoy+"/admin", tok, nil)); r.status != 403 {
		t.Errorf("envoy admin: %d", r.status)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		code, body := get(t, a.url+path)
		if code != 200 || !strings.Contains(body, `"status"`) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream received %d requests, want 0", n)
	}
}

// TestReverseProxyRevokedToken revokes a token that was being proxied and
// expects 401 within the generous deadline, the upstream no longer reached.
func TestReverseProxyRevokedToken(t *testing.T) {
	e := newEnv(t)
	up := newRecorder(t)
	a := e.startProxy(t, up.srv.URL, nil)
	victim := claims()
	tok := e.sign(t, victim)
	if code, _, body := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil)); code != 200 {
		t.Fatalf("before revocation: %d %s", code, body)
	}

	e.revoke(t, victim)
	servicetest.Eventually(t, wait, func() error {
		code, hdr, _ := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil))
		if code != 401 {
			return fmt.Errorf("status %d, want 401", code)
		}
		want := `Bearer realm="valet", error="invalid_token", error_description="the access token is revoked"`
		if got := hdr.Get("WWW-Authenticate"); got != want {
			return fmt.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
		return nil
	})
	before := up.count()
	req := newReq(t, "GET", a.url+"/public/x", tok, nil)
	req.Header.Set(caseHeader, "after")
	if code, _, _ := send(t, req); code != 401 {
		t.Errorf("after revocation: %d", code)
	}
	if _, reached := up.request("after"); reached || up.count() != before {
		t.Error("a revoked token reached the upstream")
	}
}

// TestReverseProxyStale stops NATS beyond the staleness bound: the proxy
// answers 503 like forward auth, without reaching the upstream, and
// recovers by itself.
func TestReverseProxyStale(t *testing.T) {
	e := newEnv(t)
	up := newRecorder(t)
	a := e.startProxy(t, up.srv.URL, nil)
	tok := e.sign(t, claims())
	if code, _, body := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil)); code != 200 {
		t.Fatalf("before the outage: %d %s", code, body)
	}

	e.nats.Shutdown()
	servicetest.Eventually(t, wait, func() error {
		code, hdr, body := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil))
		if code != 503 {
			return fmt.Errorf("status %d, want 503", code)
		}
		if hdr.Get("WWW-Authenticate") != "" || hdr.Get("Retry-After") == "" || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
			t.Errorf("503: WWW-Authenticate %q, Retry-After %q, body %s", hdr.Get("WWW-Authenticate"), hdr.Get("Retry-After"), body)
		}
		return nil
	})
	req := newReq(t, "POST", a.url+"/reports", tok, strings.NewReader("{}"))
	req.Header.Set(caseHeader, "stale")
	if code, _, _ := send(t, req); code != 503 {
		t.Errorf("while stale: %d, want 503", code)
	}
	if _, reached := up.request("stale"); reached {
		t.Error("a request reached the upstream while the edge was stale")
	}

	e.nats.Start()
	servicetest.Eventually(t, wait, func() error {
		if code, _, _ := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil)); code != 200 {
			return fmt.Errorf("status %d, want 200", code)
		}
		return nil
	})
}

// TestReverseProxyUpstreamFailures checks the answers when the upstream
// does not answer: 502 when it is down, 504 when it takes longer than
// limits.request_timeout to send its headers; plain text without a Bearer
// challenge either way.
func TestReverseProxyUpstreamFailures(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(t, claims())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name     string
		upstream string
		want     int
		label    string
	}{
		{name: "upstream down", upstream: down, want: http.StatusBadGateway, label: "error"},
		{name: "upstream too slow", upstream: slow.URL, want: http.StatusGatewayTimeout, label: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.startProxy(t, tt.upstream, func(cfg *config.Config) { cfg.Limits.RequestTimeout = 500 * time.Millisecond })
			code, hdr, body := send(t, newReq(t, "GET", a.url+"/public/x", tok, nil))
			if code != tt.want {
				t.Fatalf("status %d, want %d (%s)", code, tt.want, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if www := hdr.Get("WWW-Authenticate"); www != "" {
				t.Errorf("WWW-Authenticate %q on an upstream failure", www)
			}
			if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "error") {
				t.Errorf("body %q says more than it should", body)
			}
			if got := a.metric(t, `valet_edge_upstream_requests_total{code="`+tt.label+`"}`); got != "1" {
				t.Errorf("upstream %s = %q, want 1", tt.label, got)
			}
			// The decision itself was an accept.
			if got := a.metric(t, `valet_edge_decisions_total{code="200",reason="ok"}`); got != "1" {
				t.Errorf("ok decisions = %q, want 1", got)
			}
		})
	}
}

// TestReverseProxyBodyLimit checks that limits.max_body_bytes bounds
// proxied bodies too, with or without a Content-Length.
func TestReverseProxyBodyLimit(t *testing.T) {
	e := newEnv(t)
	up := newRecorder(t)
	a := e.startProxy(t, up.srv.URL, func(cfg *config.Config) { cfg.Limits.MaxBodyBytes = 1024 })
	tok := e.sign(t, claims())
	big := bytes.Repeat([]byte("x"), 4096)

	sized := newReq(t, "POST", a.url+"/reports", tok, bytes.NewReader(big))
	if code, _, body := send(t, sized); code != http.StatusRequestEntityTooLarge {
		t.Errorf("with Content-Length: %d %s, want 413", code, body)
	}
	chunked := newReq(t, "POST", a.url+"/reports", tok, io.MultiReader(bytes.NewReader(big)))
	chunked.ContentLength = -1
	if code, _, body := send(t, chunked); code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: %d %s, want 413", code, body)
	}
	small := newReq(t, "POST", a.url+"/reports", tok, bytes.NewReader(big[:512]))
	small.Header.Set(caseHeader, "small")
	if code, _, body := send(t, small); code != 200 {
		t.Errorf("within the limit: %d %s, want 200", code, body)
	}
	if got, _ := up.request("small"); len(got.body) != 512 {
		t.Errorf("upstream body %d bytes, want 512", len(got.body))
	}
}

// TestReverseProxyTrustedProxies checks that X-Forwarded-* are extended
// for a peer in limits.trusted_proxies and replaced for any other.
func TestReverseProxyTrustedProxies(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(t, claims())
	tests := []struct {
		name, trusted           string
		wantFor, wantHost, prot string
		wantRealIP              bool
	}{
		{name: "untrusted peer", trusted: "", wantFor: "127.0.0.1", wantHost: "", prot: "http"},
		{name: "trusted peer", trusted: "127.0.0.0/8", wantFor: "203.0.113.7, 127.0.0.1", wantHost: "api.example", prot: "https", wantRealIP: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newRecorder(t)
			a := e.startProxy(t, up.srv.URL, func(cfg *config.Config) { cfg.Limits.TrustedProxies = tt.trusted })
			req := newReq(t, "GET", a.url+"/public/x", tok, nil)
			req.Header.Set(caseHeader, "x")
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("X-Forwarded-Host", "api.example")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Real-Ip", "203.0.113.7")
			if code, _, body := send(t, req); code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			got, _ := up.request("x")
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = req.URL.Host
			}
			if v := got.header.Get("X-Forwarded-For"); v != tt.wantFor {
				t.Errorf("X-Forwarded-For %q, want %q", v, tt.wantFor)
			}
			if v := got.header.Get("X-Forwarded-Host"); v != wantHost {
				t.Errorf("X-Forwarded-Host %q, want %q", v, wantHost)
			}
			if v := got.header.Get("X-Forwarded-Proto"); v != tt.prot {
				t.Errorf("X-Forwarded-Proto %q, want %q", v, tt.prot)
			}
			if v := got.header.Get("X-Real-Ip"); (v != "") != tt.wantRealIP {
				t.Errorf("X-Real-Ip %q", v)
			}
		})
	}
}

// TestReverseProxyStreams checks that a streamed response (chunked, and
// server-sent events) reaches the client event by event, and that it may
// outlive limits.request_timeout.
func TestReverseProxyStreams(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(t, claims())
	const timeout = 300 * time.Millisecond
	for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) {
			next := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				rc := http.NewResponseController(w)
				for i := range 3 {
					if i > 0 {
						select {
						case <-next: // the client has read the previous event
						case <-r.Context().Done():
							return
						}
					}
					fmt.Fprintf(w, "data: %d\n\n", i)
					if err := rc.Flush(); err != nil {
						return
					}
				}
			}))
			t.Cleanup(up.Close)
			a := e.startProxy(t, up.URL, func(cfg *config.Config) { cfg.Limits.RequestTimeout = timeout })

			res, err := http.DefaultClient.Do(newReq(t, "GET", a.url+"/public/events", tok, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			br := bufio.NewReader(res.Body)
			for i := range 3 {
				// Event i arrives before the upstream may send i+1: the
				// proxy does not wait for the end of the body.
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if want := "data: " + strconv.Itoa(i) + "\n"; line != want {
					t.Fatalf("event %d: %q, want %q", i, line, want)
				}
				if _, err := br.ReadString('\n'); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					// Past the request timeout: the stream must stay.
					time.Sleep(2 * timeout)
				}
				if i < 2 {
					select {
					case next <- struct{}{}:
					case <-time.After(wait):
						t.Fatalf("the upstream stopped streaming after event %d", i)
					}
				}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the last event: %q, %v", rest, err)
			}
		})
	}
}

// TestReverseProxyWebSocket checks that an Upgrade passes through: the 101
// reaches the client and bytes flow both ways, beyond
// limits.request_timeout. The upstream echoes lines on the raw connection;
// WebSocket framing is the endpoints' business, not the proxy's.
func TestReverseProxyWebSocket(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(t, claims())
	const timeout = 300 * time.Millisecond
	subjects := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		subjects <- r.Header.Get(edge.HeaderSubject)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("echo " + line)
			_ = brw.Flush()
		}
	}))
	t.Cleanup(up.Close)
	a := e.startProxy(t, up.URL, func(cfg *config.Config) { cfg.Limits.RequestTimeout = timeout })

	u, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "GET /public/socket HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n%s: root\r\n\r\n", u.Host, tok, edge.HeaderSubject)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("status %d, Upgrade %q", res.StatusCode, res.Header.Get("Upgrade"))
	}
	if got := <-subjects; got != "alice" {
		t.Errorf("upstream %s = %q, want alice", edge.HeaderSubject, got)
	}
	for i, msg := range []string{"hello", "after the request timeout"} {
		if i > 0 {
			time.Sleep(2 * timeout)
		}
		fmt.Fprintf(conn, "%s\n", msg)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if line != "echo "+msg+"\n" {
			t.Errorf("message %d: %q", i, line)
		}
	}

	// Without a token the upgrade is refused like anything else.
	conn2, err := net.DialTimeout("tcp", u.Host, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn2, "GET /public/socket HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", u.Host)
	res2, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != 401 {
		t.Errorf("upgrade without a token: %d, want 401", res2.StatusCode)
	}
}

// TestReverseProxyInProcess checks Deps.Upstream: an in-process handler
// gets the same identity and X-Forwarded-* headers as an HTTP upstream and
// takes precedence over services.edge.upstream.
func TestReverseProxyInProcess(t *testing.T) {
	e := newEnv(t)
	tok := e.sign(t, claims())
	var mu sync.Mutex
	var got http.Header
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		_, flusher := w.(http.Flusher)
		_, hijacker := w.(http.Hijacker)
		w.Header().Set("X-Writer", fmt.Sprintf("flusher=%v hijacker=%v", flusher, hijacker))
		w.WriteHeader(http.StatusTeapot)
	})
	a := e.startAuthzWith(t, testPolicy, func(cfg *config.Config, d *edge.Deps) {
		cfg.Services.Edge.Upstream = "http://127.0.0.1:1" // never used
		d.Upstream = h
	})
	req := newReq(t, "GET", a.url+"/public/x", tok, nil)
	req.Header.Set(edge.HeaderSubject, "root")
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	req.Header.Set("Forwarded", "for=198.51.100.1")
	code, hdr, body := send(t, req)
	if code != http.StatusTeapot {
		t.Fatalf("status %d, want 418 (%s)", code, body)
	}
	if w := hdr.Get("X-Writer"); w != "flusher=true hijacker=true" {
		t.Errorf("the handler's writer: %s", w)
	}
	mu.Lock()
	defer mu.Unlock()
	if v := got.Values(edge.HeaderSubject); len(v) != 1 || v[0] != "alice" {
		t.Errorf("%s = %q, want [alice]", edge.HeaderSubject, v)
	}
	if v := got.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want 127.0.0.1", v)
	}
	if v := got.Get("Forwarded"); v != "" {
		t.Errorf("Forwarded %q reached the upstream", v)
	}
	if got := a.metric(t, `valet_edge_upstream_requests_total{code="418"}`); got != "1" {
		t.Errorf("upstream 418s = %q, want 1", got)
	}
	if code, _, _ := send(t, newReq(t, "GET", a.url+"/admin/x", tok, nil)); code != 403 {
		t.Errorf("admin: %d, want 403", code)
	}
}
