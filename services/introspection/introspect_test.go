package introspection_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/servicetest"
)

// TestActiveAccessToken: a valid token introspected by its own client is
// active with its claims, and the answer is not cacheable.
func TestActiveAccessToken(t *testing.T) {
	h := newHarness(t)
	c := claims("aud", []string{apiID, otherAPI})
	r := h.introspect(h.Mint(c), clientA)
	if r.Status != 200 || !r.Bool("active") {
		t.Fatalf("introspection: %d %s", r.Status, r.Raw)
	}
	for k, want := range map[string]any{
		"scope": "read", "client_id": clientA, "sub": clientA, "iss": testIssuer, "jti": c["jti"], "token_type": "Bearer",
		"exp": float64(c["exp"].(int64)), "iat": float64(c["iat"].(int64)), "nbf": float64(c["nbf"].(int64)),
	} {
		if r.Body[k] != want {
			t.Errorf("%s = %v, want %v", k, r.Body[k], want)
		}
	}
	if aud, _ := r.Body["aud"].([]any); len(aud) != 2 || aud[0] != apiID {
		t.Errorf("aud = %v", r.Body["aud"])
	}
	if _, ok := r.Body["fid"]; ok {
		t.Error("the family id is exposed")
	}
	if r.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", r.Header)
	}
}

// TestWhoMayIntrospect: the token's client and a resource server in its
// aud learn about it; another client learns nothing (RFC 7662 §4); a public
// client may not introspect.
func TestWhoMayIntrospect(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	if r := h.introspect(tok, rsAPI); !r.Bool("active") || r.Str("client_id") != clientA {
		t.Fatalf("resource server: %s", r.Raw)
	}
	if r := h.introspect(tok, clientB); r.Status != 200 || r.Raw != `{"active":false}` {
		t.Fatalf("another client: %d %s", r.Status, r.Raw)
	}
	if r := h.introspect(h.Mint(claims("aud", otherAPI)), rsAPI); r.Bool("active") {
		t.Fatal("a resource server learns about a token for another audience")
	}
	if r := h.Post(h.t, h.url, url.Values{"token": {tok}, "client_id": {pubClient}}.Encode(), pubClient); r.Status != 401 || r.Code() != "invalid_client" {
		t.Fatalf("public client: %d %s", r.Status, r.Raw)
	}
}

// TestInactive: everything not currently valid is {"active":false}.
func TestInactive(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now().Unix()
	signer, err := h.Keys.Current()
	if err != nil {
		t.Fatal(err)
	}
	kid := signer.KID()
	enc := base64.RawURLEncoding
	seg := func(v any) string { b, _ := json.Marshal(v); return enc.EncodeToString(b) }
	// HS256 keyed with the public JWK as published: the alg-confusion attack.
	jwks, _ := h.Keys.JWKS()
	hs := func() string {
		in := seg(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}) + "." + seg(claims())
		m := hmac.New(sha256.New, jwks)
		m.Write([]byte(in))
		return in + "." + enc.EncodeToString(m.Sum(nil))
	}
	revoked := func(kind string) string {
		c := claims("fid", "fam"+kind+strings.Repeat("x", 19-len(kind)))
		switch kind {
		case "jti":
			if err := h.rev.Token(ctx, c["jti"].(string), time.Unix(now+300, 0), clientA, events.ReasonAdmin, "test"); err != nil {
				t.Fatal(err)
			}
		case "subject":
			c["sub"] = "alice-" + c["jti"].(string)
			if err := h.rev.Subject(ctx, events.SubjectUser, c["sub"].(string), time.Now(), events.ReasonAdmin, "test"); err != nil {
				t.Fatal(err)
			}
		case "client":
			c["client_id"], c["sub"] = "gone-client", "gone-client"
			if err := h.rev.Client(ctx, "gone-client", time.Now(), events.ReasonAdmin, "test"); err != nil {
				t.Fatal(err)
			}
		}
		return h.Mint(c)
	}
	fam, _ := h.Family(clientA, "bob", apiID)
	famTok := h.Mint(claims("fid", fam.FID, "sub", "bob"))
	if err := h.rev.Family(ctx, fam.FID, "bob", clientA, events.ReasonAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	// Client-typed subject cut-off on a user-less client-credentials token.
	cc := claims("sub", "svc-c", "client_id", "svc-c")
	if err := h.rev.Subject(ctx, events.SubjectClient, "svc-c", time.Now(), events.ReasonAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"garbage":                   "garbage",
		"three garbage segments":    "a.b.c",
		"expired":                   h.Mint(claims("iat", now-600, "nbf", now-600, "exp", now-120)),
		"foreign issuer":            h.Mint(claims("iss", "https://evil.example")),
		"alg none":                  seg(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + seg(claims()) + ".",
		"HS256 with the public key": hs(),
		"not at+jwt":                h.MintTyp("JWT", claims()),
		"lifetime too long":         h.Mint(claims("exp", now+7200)),
		"revoked jti":               revoked("jti"),
		"revoked family":            famTok,
		"subject cut-off":           revoked("subject"),
		"client cut-off":            revoked("client"),
		"client-typed subject":      h.Mint(cc),
		"refresh-shaped garbage":    "vrt_" + strings.Repeat("A", 66),
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			r := h.introspect(tok, clientA)
			if r.Status != 200 || r.Raw != `{"active":false}` {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
		})
	}
	// Issued after the cut-off (beyond the skew): active again.
	later := claims("client_id", "gone-client", "sub", "gone-client", "iat", now+40, "nbf", now+40)
	if r := h.introspect(h.Mint(later), "svc-a"); r.Bool("active") {
		t.Fatal("another client's token is visible")
	}
}

// TestRefreshToken: a refresh token is active for its own client while it
// is its family's live token.
func TestRefreshToken(t *testing.T) {
	h := newHarness(t)
	fam, tok := h.Family(clientA, "alice", apiID)
	r := h.Post(h.t, h.url, url.Values{"token": {tok}, "token_type_hint": {"access_token"}}.Encode(), clientA)
	if !r.Bool("active") || r.Str("token_type") != "refresh_token" || r.Str("sub") != "alice" || r.Str("client_id") != clientA || r.Str("scope") != "read" {
		t.Fatalf("own refresh token: %s", r.Raw)
	}
	if r.Body["exp"] != float64(fam.AbsoluteExpiresAt.Unix()) {
		t.Errorf("exp %v, want the family's expiry", r.Body["exp"])
	}
	if r := h.introspect(tok, clientB); r.Bool("active") {
		t.Fatal("another client learns about the refresh token")
	}
	if r := h.introspect(tok, rsAPI); r.Bool("active") {
		t.Fatal("a resource server learns about a refresh token")
	}
	if err := h.rev.Family(context.Background(), fam.FID, "alice", clientA, events.ReasonAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	if r := h.introspect(tok, clientA); r.Status != 200 || r.Bool("active") {
		t.Fatalf("revoked family: %s", r.Raw)
	}
}

// TestErrors: every RFC error case with its status and code.
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
		{name: "no content type", body: "token=x", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "parameters in the query", ct: form, query: "?token=x", body: "token=x", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "missing token", ct: form, body: "token_type_hint=access_token", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "repeated token", ct: form, body: "token=a&token=b", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "bad escape", ct: form, body: "token=%zz", auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "no client authentication", ct: form, body: "token=" + tok, status: 401, code: "invalid_client"},
		{name: "wrong secret", ct: form, body: "token=" + tok, auth: servicetest.Basic(clientA, "nope"), status: 401, code: "invalid_client", challenge: "Basic"},
		{name: "unknown client", ct: form, body: "token=" + tok, auth: servicetest.Basic("nobody", "x"), status: 401, code: "invalid_client", challenge: "Basic"},
		{name: "wrong secret in the body", ct: form, body: "client_id=svc-a&client_secret=nope&token=" + tok, status: 401, code: "invalid_client"},
		{name: "two methods", ct: form, body: "client_secret=x&token=" + tok, auth: servicetest.Basic(clientA, secA), status: 400, code: "invalid_request"},
		{name: "secret in the body", ct: form, body: "client_id=svc-a&client_secret=" + url.QueryEscape(secA) + "&token=" + tok, status: 200},
		{name: "unknown hint", ct: form, body: "token_type_hint=nonsense&token=" + tok, auth: servicetest.Basic(clientA, secA), status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = http.MethodPost
			}
			req, _ := http.NewRequest(m, h.url+tt.query, strings.NewReader(tt.body))
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
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Fatal("no Cache-Control: no-store")
			}
		})
	}
}

// TestRedisDown: a store outage is 503 with Retry-After, never inactive;
// introspection recovers with the store.
func TestRedisDown(t *testing.T) {
	h := newHarness(t)
	tok := h.Mint(claims())
	_, rt := h.Family(clientA, "alice", apiID)
	if r := h.introspect(tok, clientA); !r.Bool("active") {
		t.Fatalf("before: %s", r.Raw)
	}
	h.Redis.Stop()
	for _, tk := range []string{tok, rt} {
		r := h.introspect(tk, clientA)
		if r.Status != 503 || r.Code() != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("Redis down: %d %s", r.Status, r.Raw)
		}
	}
	h.Redis.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.introspect(tok, clientA)
		if r.Bool("active") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered: %d %s", r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FuzzIntrospectForm: whatever the body, never a 5xx while the store is up.
func FuzzIntrospectForm(f *testing.F) {
	h := newHarness(f)
	tok := h.Mint(claims())
	_, rt := h.Family(clientA, "alice", apiID)
	for _, s := range []string{
		"", "token=" + tok, "token=" + rt, "token=" + tok + "&token=" + tok, "token=%zz", "token_type_hint=refresh_token&token=" + rt,
		"token=vrt_%00", "token=" + strings.Repeat("a.", 9000), "client_id=svc-a&client_secret=x&token=y", "client_id=pub&token=" + tok,
		strings.Repeat("a=1&", 40), "token=eyJhbGciOiJub25lIn0.e30.", "\xff\xfe=\x00",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, auth bool) {
		client := ""
		if auth {
			client = clientA
		}
		r := h.Post(t, h.url, body, client)
		if r.Status >= 500 {
			t.Fatalf("body %q: %d %s", body, r.Status, r.Raw)
		}
	})
}
