package revocation_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// TestRevokeAccessToken: a client revokes its access token; introspection
// says inactive and the edge following the stream rejects it.
func TestRevokeAccessToken(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	if _, err := h.edge.Verify(context.Background(), tok); err != nil {
		t.Fatalf("edge before: %v", err)
	}
	if r := h.introspect(tok, clientA); !r.Bool("active") {
		t.Fatalf("introspection before: %s", r.Raw)
	}
	r := h.revokeAs(tok, clientA)
	if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("revoke: %d %s %v", r.Status, r.Raw, r.Header)
	}
	if r := h.introspect(tok, clientA); r.Status != 200 || r.Bool("active") {
		t.Fatalf("introspection after: %s", r.Raw)
	}
	h.edgeRejects(tok)
	// Revoking again, with a misleading hint, is still 200.
	if r := h.Post(t, h.revoke, url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}.Encode(), clientA); r.Status != 200 {
		t.Fatalf("revoke twice: %d %s", r.Status, r.Raw)
	}
}

// TestForeignAndUnknownTokens: 200 with nothing done; a foreign token stays
// valid (RFC 7009 §2.1, §2.2).
func TestForeignAndUnknownTokens(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	_, rt := h.Family(clientA, "alice", apiID)
	now := time.Now().Unix()
	for name, tk := range map[string]string{
		"another client's access token":  tok,
		"another client's refresh token": rt,
		"garbage":                        "garbage",
		"unknown refresh token":          "vrt_" + strings.Repeat("A", 22) + "." + strings.Repeat("B", 43),
		"expired":                        h.Mint(claims("iat", now-600, "nbf", now-600, "exp", now-120)),
		"foreign issuer":                 h.Mint(claims("iss", "https://evil.example")),
	} {
		t.Run(name, func(t *testing.T) {
			if r := h.revokeAs(tk, clientB); r.Status != 200 || r.Raw != "" {
				t.Fatalf("%d %q", r.Status, r.Raw)
			}
		})
	}
	if r := h.introspect(tok, clientA); !r.Bool("active") {
		t.Fatal("another client revoked svc-a's access token")
	}
	if r := h.introspect(rt, clientA); !r.Bool("active") {
		t.Fatal("another client revoked svc-a's refresh token")
	}
	if _, err := h.edge.Verify(context.Background(), tok); err != nil {
		t.Fatalf("edge: %v", err)
	}
}

// TestPublicClientRevokesRefreshToken: a public client identifies with
// client_id (§2.1) and revokes its refresh token; the family and the access
// tokens minted from it die.
func TestPublicClientRevokesRefreshToken(t *testing.T) {
	h := newHarness(t)
	fam, rt := h.Family(pubClient, "alice", apiID)
	at := h.Mint(claims("client_id", pubClient, "sub", "alice", "fid", fam.FID))
	if r := h.introspect(at, rsAPI); !r.Bool("active") {
		t.Fatalf("before: %s", r.Raw)
	}
	if r := h.revokeAs(rt, pubClient); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if _, err := h.Store.LookupRefresh(context.Background(), fam.FID, store.Hash(token.HashOf(rt))); err == nil {
		t.Fatal("the refresh token is still live")
	}
	if r := h.introspect(at, rsAPI); r.Bool("active") {
		t.Fatal("an access token of the revoked family is active")
	}
	h.edgeRejects(at)
}

// TestAdminRevocations: family, subject, client and jti revocations through
// the admin API kill the tokens at introspection and at the edge.
func TestAdminRevocations(t *testing.T) {
	h := newHarness(t)
	admin := h.adminToken()
	fam, _ := h.Family(clientA, "carol", apiID)
	byFamily := h.Mint(claims("sub", "carol", "fid", fam.FID))
	bySubject := h.Mint(claims("sub", "dave"))
	byClient := h.Mint(claims("client_id", clientB, "sub", clientB))
	byJTI := h.Mint(claims())
	survivor := h.Mint(claims("sub", "erin"))
	jti := func(tok string) (string, int64) {
		r := h.introspect(tok, rsAPI)
		return r.Str("jti"), int64(r.Body["exp"].(float64))
	}
	j, exp := jti(byJTI)
	for _, tc := range []struct {
		path, body, tok string
	}{
		{"/family", fmt.Sprintf(`{"fid":%q}`, fam.FID), byFamily},
		{"/subject", `{"sub":"dave","sub_type":"user"}`, bySubject},
		{"/client", fmt.Sprintf(`{"client_id":%q}`, clientB), byClient},
		{"/token", fmt.Sprintf(`{"jti":%q,"exp":%d}`, j, exp), byJTI},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if r := h.introspect(tc.tok, rsAPI); !r.Bool("active") {
				t.Fatalf("before: %s", r.Raw)
			}
			r := h.adminPost(tc.path, tc.body, admin)
			if r.Status != 200 || r.Str("actor") != opsClient {
				t.Fatalf("admin %s: %d %s", tc.path, r.Status, r.Raw)
			}
			if r := h.introspect(tc.tok, rsAPI); r.Bool("active") {
				t.Fatalf("after: %s", r.Raw)
			}
			h.edgeRejects(tc.tok)
		})
	}
	if r := h.introspect(survivor, rsAPI); !r.Bool("active") {
		t.Fatal("an unrelated token died")
	}
}

// TestAdminAuth: the admin API refuses requests without an admin token, and
// bad bodies.
func TestAdminAuth(t *testing.T) {
	h := newHarness(t)
	admin := h.adminToken()
	tests := []struct {
		name, path, body, bearer string
		status                   int
		code                     string
	}{
		{"no token", "/client", `{"client_id":"x"}`, "", 401, "invalid_token"},
		{"not a token", "/client", `{"client_id":"x"}`, "garbage", 401, "invalid_token"},
		{"without the admin scope", "/client", `{"client_id":"x"}`, h.adminToken("scope", "read"), 403, "insufficient_scope"},
		{"without the admin audience", "/client", `{"client_id":"x"}`, h.adminToken("aud", apiID), 401, "invalid_token"},
		{"an API token", "/client", `{"client_id":"x"}`, h.Mint(claims()), 401, "invalid_token"},
		{"bad JSON", "/client", `{`, admin, 400, "invalid_request"},
		{"unknown field", "/client", `{"client_id":"x","extra":1}`, admin, 400, "invalid_request"},
		{"missing client_id", "/client", `{}`, admin, 400, "invalid_request"},
		{"bad fid", "/family", `{"fid":"nope"}`, admin, 400, "invalid_request"},
		{"bad sub_type", "/subject", `{"sub":"a","sub_type":"robot"}`, admin, 400, "invalid_request"},
		{"control character", "/subject", `{"sub":"a\u0000b"}`, admin, 400, "invalid_request"},
		{"token without exp", "/token", `{"jti":"abc"}`, admin, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.adminPost(tt.path, tt.body, tt.bearer)
			if r.Status != tt.status || r.Code() != tt.code {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Raw, tt.status, tt.code)
			}
			if tt.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// The admin token itself can be revoked.
	if r := h.adminPost("/client", fmt.Sprintf(`{"client_id":%q}`, opsClient), admin); r.Status != 200 {
		t.Fatalf("revoke the ops client: %d %s", r.Status, r.Raw)
	}
	if r := h.adminPost("/client", `{"client_id":"x"}`, admin); r.Status != 401 {
		t.Fatalf("a revoked admin token: %d %s", r.Status, r.Raw)
	}
}

// TestErrors: every RFC 7009 error case with its status and code.
func TestErrors(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	form := "application/x-www-form-urlencoded"
	secA := h.Secrets[clientA]
	tests := []struct {
		name, method, ct, body, auth, query string
		status                              int
		code, challenge                     string
	}{
		{name: "GET", method: "GET", ct: form, auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "JSON body", ct: "application/json", body: `{"token":"x"}`, auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "parameters in the query", ct: form, query: "?token=x", body: "token=x", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "missing token", ct: form, body: "token_type_hint=access_token", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "repeated token", ct: form, body: "token=a&token=b", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "repeated hint", ct: form, body: "token=a&token_type_hint=x&token_type_hint=y", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "no client", ct: form, body: "token=" + tok, status: 401, code: "invalid_client"},
		{name: "wrong secret", ct: form, body: "token=" + tok, auth: servicetest.Basic(clientA, "nope"), status: 401, code: "invalid_client", challenge: "Basic"},
		{name: "unknown client", ct: form, body: "token=" + tok, auth: servicetest.Basic("nobody", "x"), status: 401, code: "invalid_client", challenge: "Basic"},
		{name: "confidential client without secret", ct: form, body: "client_id=svc-a&token=" + tok, status: 401, code: "invalid_client"},
		{name: "public client with a secret", ct: form, body: "client_id=pub&client_secret=x&token=" + tok, status: 401, code: "invalid_client"},
		{name: "unsupported hint is only a hint", ct: form, body: "token_type_hint=saml&token=x", auth: servicetest.Basic(clientA, secA), status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = http.MethodPost
			}
			req, _ := http.NewRequest(m, h.revoke+tt.query, strings.NewReader(tt.body))
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			r := servicetest.Do(t, req)
			if r.Status != tt.status || r.Code() != tt.code {
				t.Fatalf("%d %s, want %d %q", r.Status, r.Raw, tt.status, tt.code)
			}
			if tt.challenge != "" && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), tt.challenge) {
				t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestRedisDown: /revoke answers 503 with Retry-After while the store is
// down, never 200.
func TestRedisDown(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	_, rt := h.Family(clientA, "alice", apiID)
	admin := h.adminToken()
	h.revokeAs(h.Mint(claims()), clientA) // warm the client cache
	h.Redis.Stop()
	for _, tk := range []string{tok, rt} {
		r := h.revokeAs(tk, clientA)
		if r.Status != 503 || r.Code() != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("Redis down: %d %s", r.Status, r.Raw)
		}
	}
	if r := h.adminPost("/client", `{"client_id":"x"}`, admin); r.Status != 503 {
		t.Fatalf("admin with Redis down: %d %s", r.Status, r.Raw)
	}
	h.Redis.Start()
}

// TestNATSDown: while NATS is down /revoke answers 503 with Retry-After;
// the deny state is recorded at once (introspection: inactive), and the
// relay publishes the event when NATS returns, so the edge rejects the token.
func TestNATSDown(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	h.NATS.Shutdown()
	r := h.revokeAs(tok, clientA)
	if r.Status != 503 || r.Code() != "temporarily_unavailable" || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("NATS down: %d %s %v", r.Status, r.Raw, r.Header)
	}
	if r := h.introspect(tok, clientA); r.Bool("active") {
		t.Fatal("introspection: the recorded revocation is not enforced")
	}
	h.NATS.Start()
	h.edgeRejects(tok)
	// Retrying the request now succeeds: the event is durable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.revokeAs(tok, clientA)
		if r.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry after NATS returned: %d %s", r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FuzzRevokeForm: whatever the body, never a 5xx while the store is up.
func FuzzRevokeForm(f *testing.F) {
	h := newHarness(f)
	tok := h.Mint(claims())
	_, rt := h.Family(clientA, "alice", apiID)
	for _, s := range []string{
		"", "token=" + tok, "token=" + rt, "token=" + tok + "&token=" + tok, "token=%zz", "token_type_hint=refresh_token&token=" + rt,
		"token=vrt_%00", "token=" + strings.Repeat("a.", 9000), "client_id=svc-a&client_secret=x&token=y", "client_id=pub&token=" + tok,
		"client_id=pub&token=" + rt, strings.Repeat("a=1&", 40), "token=eyJhbGciOiJub25lIn0.e30.", "\xff\xfe=\x00",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, auth bool) {
		client := ""
		if auth {
			client = clientB // never one whose tokens the seeds revoke
		}
		r := h.Post(t, h.revoke, body, client)
		if r.Status >= 500 {
			t.Fatalf("body %q: %d %s", body, r.Status, r.Raw)
		}
	})
}
