package issuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
)

// verify checks an access token the way a resource server following RFC 9068
// §4 does — signature against the issuer's JWKS fetched over HTTP, typ,
// iss, aud, exp — and returns its header and claims.
func (h *harness) verify(t *testing.T, raw, aud string) (jws.Headers, map[string]any) {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), h.url+"/jwks.json")
	if err != nil {
		t.Fatalf("fetch JWKS: %v", err)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("parse JWS: %v", err)
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if _, err := jws.Verify([]byte(raw), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
		t.Fatalf("signature does not verify against /jwks.json: %v", err)
	}
	if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer(testIssuer), jwt.WithAudience(aud), jwt.WithAcceptableSkew(time.Second)); err != nil {
		t.Fatalf("JWT validation: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
		t.Fatal(err)
	}
	return hdr, claims
}

// TestClientCredentialsInterop gets tokens with golang.org/x/oauth2's client
// credentials flow, in both auth styles, and verifies each with jwx against
// /jwks.json, checking every RFC 9068 header field and claim.
func TestClientCredentialsInterop(t *testing.T) {
	h := newHarness(t)
	for _, style := range []struct {
		name  string
		style oauth2.AuthStyle
	}{{"client_secret_basic", oauth2.AuthStyleInHeader}, {"client_secret_post", oauth2.AuthStyleInParams}} {
		t.Run(style.name, func(t *testing.T) {
			cc := clientcredentials.Config{
				ClientID: clientA, ClientSecret: h.secretA, TokenURL: h.url + "/token",
				Scopes: []string{"read"}, AuthStyle: style.style,
				EndpointParams: url.Values{"resource": {apiID}},
			}
			before := time.Now().Unix()
			tok, err := cc.Token(context.Background())
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.Before(time.Now().Add(9*time.Minute)) {
				t.Errorf("token type %q, expiry %v: want Bearer, ~10m", tok.TokenType, tok.Expiry)
			}
			if s, _ := tok.Extra("scope").(string); s != "read" {
				t.Errorf("response scope %q, want read", s)
			}
			hdr, c := h.verify(t, tok.AccessToken, apiID)

			if hdr.Type() != "at+jwt" {
				t.Errorf("typ %q, want at+jwt (RFC 9068 §2.1)", hdr.Type())
			}
			if hdr.Algorithm() != jwa.ES256 {
				t.Errorf("alg %q, want ES256", hdr.Algorithm())
			}
			cur, _ := h.Keys.Current()
			if hdr.KeyID() != cur.KID() {
				t.Errorf("kid %q, want the current key %q", hdr.KeyID(), cur.KID())
			}
			want := map[string]any{"iss": testIssuer, "sub": clientA, "aud": apiID, "client_id": clientA, "scope": "read"}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			iat, exp, nbf := int64(c["iat"].(float64)), int64(c["exp"].(float64)), int64(c["nbf"].(float64))
			if iat < before || iat > time.Now().Unix() || nbf != iat || exp-iat != 600 {
				t.Errorf("iat %d nbf %d exp %d: want iat now, nbf = iat, exp = iat + 600 (the client's 10m)", iat, nbf, exp)
			}
			if jti, _ := c["jti"].(string); len(jti) != 22 {
				t.Errorf("jti %q: want 22 characters (token.NewID)", jti)
			}
			if len(c) != 9 {
				t.Errorf("claims %v: want exactly iss sub aud exp iat nbf jti client_id scope", c)
			}
		})
	}
}

// TestTokenResponse checks the raw response: headers and members (RFC 6749
// §5.1), and that two tokens differ in jti.
func TestTokenResponse(t *testing.T) {
	h := newHarness(t)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"write read write"}}
	r := h.post(form, clientA, h.secretA)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Raw)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json;charset=UTF-8"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if r.Body["token_type"] != "Bearer" || r.Body["expires_in"] != float64(600) || r.Body["scope"] != "write read" {
		t.Errorf("body %s: want Bearer, 600, scope \"write read\" (de-duplicated, in request order)", r.Raw)
	}
	if len(r.Body) != 4 {
		t.Errorf("body %s: want access_token, token_type, expires_in, scope only", r.Raw)
	}
	_, c1 := h.verify(t, r.Body["access_token"].(string), apiID)
	r2 := h.post(form, clientA, h.secretA)
	_, c2 := h.verify(t, r2.Body["access_token"].(string), apiID)
	if c1["jti"] == c2["jti"] {
		t.Error("two tokens share a jti")
	}
}

// TestDefaultsScopeAndLifetime: no scope asks every scope the client may
// ask at the resource that the resource defines; the lifetime is the
// shortest of client, resource and global maximum.
func TestDefaultsScopeAndLifetime(t *testing.T) {
	h := newHarness(t)
	long := h.CreateClient(store.Client{
		ID: "svc-long", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"admin"}}, DefaultResource: apiID, AccessTokenLifetime: 48 * time.Hour,
	})
	plain := h.CreateClient(store.Client{
		ID: "svc-plain", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}, billingID: {}}, DefaultResource: apiID,
	})
	tests := []struct {
		name, client, secret string
		form                 url.Values
		aud, scope           string
		lifetime             float64
	}{
		{"default resource and scopes", clientA, h.secretA, url.Values{}, apiID, "read write", 600},
		{"resource lifetime shorter than client's", clientA, h.secretA, url.Values{"resource": {billingID}}, billingID, "invoice:read invoice:write", 120},
		{"global maximum caps the client", "svc-long", long, url.Values{}, apiID, "admin", 900},
		{"neither set: configured default", "svc-plain", plain, url.Values{}, apiID, "read", 300},
		{"no allowed scope: no scope claim", "svc-plain", plain, url.Values{"resource": {billingID}}, billingID, "", 120},
		{"empty scope parameter is omitted", clientA, h.secretA, url.Values{"scope": {""}}, apiID, "read write", 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("grant_type", "client_credentials")
			r := h.post(tt.form, tt.client, tt.secret)
			if r.Status != 200 {
				t.Fatalf("status %d: %s", r.Status, r.Raw)
			}
			_, c := h.verify(t, r.Body["access_token"].(string), tt.aud)
			scope, _ := c["scope"].(string)
			_, has := c["scope"]
			if scope != tt.scope || has != (tt.scope != "") || r.Body["expires_in"] != tt.lifetime {
				t.Errorf("scope %q (present %v), expires_in %v; want %q, %v", scope, has, r.Body["expires_in"], tt.scope, tt.lifetime)
			}
			if int64(c["exp"].(float64))-int64(c["iat"].(float64)) != int64(tt.lifetime) {
				t.Errorf("exp - iat != %v", tt.lifetime)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	h := newHarness(t)
	res, err := http.Get(h.url + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	want := map[string]any{
		"issuer":                                testIssuer,
		"token_endpoint":                        testIssuer + "/token",
		"jwks_uri":                              testIssuer + "/jwks.json",
		"introspection_endpoint":                "https://introspect.example.test/introspect",
		"revocation_endpoint":                   "https://revoke.example.test/base/revoke",
		"grant_types_supported":                 []any{"client_credentials"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []any{"S256"},
		"response_types_supported":              []any{},
	}
	for k, v := range want {
		got, _ := json.Marshal(m[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}
	for _, absent := range []string{"authorization_endpoint", "userinfo_endpoint", "id_token_signing_alg_values_supported", "subject_types_supported", "scopes_supported", "authorization_response_iss_parameter_supported"} {
		if _, ok := m[absent]; ok {
			t.Errorf("%s is advertised but not implemented", absent)
		}
	}
}

func TestJWKS(t *testing.T) {
	h := newHarness(t)
	res, err := http.Get(h.url + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=0" {
		// PublishLeadTime is 1s in the harness: max-age = lead/2 rounds to 0.
		t.Errorf("Cache-Control %q", cc)
	}
	if len(set.Keys) == 0 {
		t.Fatal("no keys")
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS key %v carries private member %q", k["kid"], private)
			}
		}
	}
}

// TestTokenErrors: every refusal of /token with its status, RFC error code,
// and the Basic challenge exactly when the Authorization header was used.
func TestTokenErrors(t *testing.T) {
	h := newHarness(t)
	h.CreateClient(store.Client{ID: "spa", Type: store.Public, GrantTypes: []string{"client_credentials", "authorization_code"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	codeOnly := h.CreateClient(store.Client{ID: "web", Type: store.Confidential, GrantTypes: []string{"authorization_code"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	noDefault := h.CreateClient(store.Client{ID: "svc-nodefault", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}}})
	disabled := h.CreateClient(store.Client{ID: "svc-off", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID, Disabled: true})

	cc := "grant_type=client_credentials"
	type req struct {
		method, contentType, body, auth, query string
	}
	std := func(body string) req {
		return req{method: "POST", contentType: "application/x-www-form-urlencoded", body: body, auth: servicetest.Basic(clientA, h.secretA)}
	}
	post := func(body string) req {
		return req{method: "POST", contentType: "application/x-www-form-urlencoded", body: body}
	}
	with := func(r req, f func(*req)) req { f(&r); return r }
	tests := []struct {
		name      string
		req       req
		status    int
		code      string
		challenge bool
	}{
		{"GET", with(std(""), func(r *req) { r.method = "GET" }), 400, "invalid_request", false},
		{"PUT", with(std(cc), func(r *req) { r.method = "PUT" }), 400, "invalid_request", false},
		{"JSON body", with(std(`{"grant_type":"client_credentials"}`), func(r *req) { r.contentType = "application/json" }), 400, "invalid_request", false},
		{"no content type", with(std(cc), func(r *req) { r.contentType = "" }), 400, "invalid_request", false},
		{"parameters in the URI", with(std(cc), func(r *req) { r.query = "client_secret=x" }), 400, "invalid_request", false},
		{"malformed escape", std(cc + "&scope=%zz"), 400, "invalid_request", false},
		{"too many parameters", std(cc + strings.Repeat("&x=1", 40)), 400, "invalid_request", false},
		{"body over the limit", std(cc + "&x=" + strings.Repeat("a", 9<<10)), 413, "invalid_request", false},
		{"missing grant_type", std("scope=read"), 400, "invalid_request", false},
		{"empty grant_type", std("grant_type="), 400, "invalid_request", false},
		{"repeated grant_type", std(cc + "&" + cc), 400, "invalid_request", false},
		{"repeated scope", std(cc + "&scope=read&scope=write"), 400, "invalid_request", false},
		{"repeated client_id", post(cc + "&client_id=svc-a&client_id=svc-a&client_secret=" + h.secretA), 400, "invalid_request", false},
		{"unsupported grant type", std("grant_type=password&username=a&password=b"), 400, "unsupported_grant_type", false},
		{"grant not implemented yet", std("grant_type=authorization_code&code=x"), 400, "unsupported_grant_type", false},
		{"no client authentication", post(cc), 401, "invalid_client", false},
		{"unknown client, basic", with(std(cc), func(r *req) { r.auth = servicetest.Basic("nobody", h.secretA) }), 401, "invalid_client", true},
		{"unknown client, post", post(cc + "&client_id=nobody&client_secret=x"), 401, "invalid_client", false},
		{"wrong secret, basic", with(std(cc), func(r *req) { r.auth = servicetest.Basic(clientA, h.secretA+"x") }), 401, "invalid_client", true},
		{"wrong secret, post", post(cc + "&client_id=svc-a&client_secret=vcs_wrong"), 401, "invalid_client", false},
		{"secret not form-decoded", with(std(cc), func(r *req) { r.auth = "Basic " + b64(clientA+":"+h.secretA+"%") }), 401, "invalid_client", true},
		{"basic and post at once", std(cc + "&client_secret=" + h.secretA), 400, "invalid_request", false},
		{"basic and another client_id", std(cc + "&client_id=web"), 400, "invalid_request", false},
		{"malformed basic", with(std(cc), func(r *req) { r.auth = "Basic !!!" }), 401, "invalid_client", true},
		{"basic without colon", with(std(cc), func(r *req) { r.auth = "Basic " + b64(clientA) }), 401, "invalid_client", true},
		{"bearer instead of basic", with(std(cc), func(r *req) { r.auth = "Bearer abc" }), 401, "invalid_client", true},
		{"confidential client without secret", post(cc + "&client_id=svc-a"), 401, "invalid_client", false},
		{"public client with a secret", post(cc + "&client_id=spa&client_secret=x"), 401, "invalid_client", false},
		{"public client uses client_credentials", post(cc + "&client_id=spa"), 400, "unauthorized_client", false},
		{"client not allowed the grant", with(std(cc), func(r *req) { r.auth = servicetest.Basic("web", codeOnly) }), 400, "unauthorized_client", false},
		{"disabled client", with(std(cc), func(r *req) { r.auth = servicetest.Basic("svc-off", disabled) }), 401, "invalid_client", true},
		{"resource not allowed", std(cc + "&resource=https://other.example.test/"), 400, "invalid_target", false},
		{"resource not a URI", std(cc + "&resource=not%20a%20uri"), 400, "invalid_target", false},
		{"resource with fragment", std(cc + "&resource=" + url.QueryEscape(apiID+"#x")), 400, "invalid_target", false},
		{"two resources", std(cc + "&resource=" + url.QueryEscape(apiID) + "&resource=" + url.QueryEscape(billingID)), 400, "invalid_target", false},
		{"allowed but unregistered resource", std(cc + "&resource=" + url.QueryEscape(orphanID)), 400, "invalid_target", false},
		{"no resource and no default", with(std(cc), func(r *req) { r.auth = servicetest.Basic("svc-nodefault", noDefault) }), 400, "invalid_target", false},
		{"scope not allowed to the client", std(cc + "&scope=admin"), 400, "invalid_scope", false},
		{"scope unknown", std(cc + "&scope=read+delete"), 400, "invalid_scope", false},
		{"scope allowed but not defined by the resource", std(cc + "&resource=" + url.QueryEscape(billingID) + "&scope=gone"), 400, "invalid_scope", false},
		{"scope of another resource", std(cc + "&scope=invoice:read"), 400, "invalid_scope", false},
		{"scope with two spaces", std(cc + "&scope=read++write"), 400, "invalid_scope", false},
		{"scope with a quote", std(cc + "&scope=%22read%22"), 400, "invalid_scope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := h.url + "/token"
			if tt.req.query != "" {
				u += "?" + tt.req.query
			}
			r, err := http.NewRequest(tt.req.method, u, strings.NewReader(tt.req.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.req.contentType != "" {
				r.Header.Set("Content-Type", tt.req.contentType)
			}
			if tt.req.auth != "" {
				r.Header.Set("Authorization", tt.req.auth)
			}
			res := servicetest.Do(h.t, r)
			if res.Status != tt.status || res.Code() != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", res.Status, res.Code(), res.Raw, tt.status, tt.code)
			}
			challenge := res.Header.Get("WWW-Authenticate")
			if tt.challenge != (challenge != "") {
				t.Errorf("WWW-Authenticate %q, want a challenge: %v", challenge, tt.challenge)
			}
			if tt.challenge && !strings.HasPrefix(challenge, `Basic realm="valet"`) {
				t.Errorf("WWW-Authenticate %q, want Basic realm=\"valet\"", challenge)
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("error without Cache-Control: no-store")
			}
			if _, ok := res.Body["access_token"]; ok {
				t.Error("an error response carries a token")
			}
		})
	}
}

// TestBasicFormDecoding: RFC 6749 §2.3.1 form-url-encodes the client id and
// secret before Basic; a client id with reserved characters works.
func TestBasicFormDecoding(t *testing.T) {
	h := newHarness(t)
	id := "svc:reports/+1 %&="
	s := h.CreateClient(store.Client{ID: id, Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	r := h.post(url.Values{"grant_type": {"client_credentials"}}, id, s)
	if r.Status != 200 {
		t.Fatalf("status %d: %s", r.Status, r.Raw)
	}
	_, c := h.verify(t, r.Body["access_token"].(string), apiID)
	if c["sub"] != id || c["client_id"] != id {
		t.Errorf("sub %v client_id %v, want %q", c["sub"], c["client_id"], id)
	}
}

// TestSecretRotation: a client holding two secrets, the older with an
// expiry, authenticates with either until the expiry, then only with the
// newer; a client.secret_rotated event reaches the cache.
func TestSecretRotation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	form := url.Values{"grant_type": {"client_credentials"}}
	if r := h.post(form, clientA, h.secretA); r.Status != 200 {
		t.Fatalf("before rotation: %d %s", r.Status, r.Raw)
	}
	// Rotate as the admin API does: new secret first, old one expiring.
	c, err := h.Store.GetClient(ctx, clientA)
	if err != nil {
		t.Fatal(err)
	}
	newSecret := h.createSecret()
	c.Secrets = []store.Secret{
		{ID: "s2", Hash: h.Hasher.Hash(newSecret), CreatedAt: time.Now()},
		{ID: "s1", Hash: c.Secrets[0].Hash, CreatedAt: c.Secrets[0].CreatedAt, ExpiresAt: time.Now().Add(time.Hour)},
	}
	if _, err := h.Store.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	h.publish(&events.ClientSecretRotated{ClientID: clientA, PreviousExpires: time.Now().Add(time.Hour).Unix()})
	h.eventually("new secret accepted", func() bool { return h.post(form, clientA, newSecret).Status == 200 })
	if r := h.post(form, clientA, h.secretA); r.Status != 200 {
		t.Fatalf("old secret before its expiry: %d %s", r.Status, r.Raw)
	}
	h.clock.Advance(time.Hour)
	if r := h.post(form, clientA, h.secretA); r.Status != 401 || r.Code() != "invalid_client" {
		t.Fatalf("old secret after its expiry: %d %s, want 401 invalid_client", r.Status, r.Raw)
	}
	if r := h.post(form, clientA, newSecret); r.Status != 200 {
		t.Fatalf("new secret after the old one expired: %d %s", r.Status, r.Raw)
	}
}

func (h *harness) createSecret() string {
	h.t.Helper()
	s, err := secret.New()
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// TestDisabledClient: disabling a client reaches the cache by its
// client.updated event; and while the event consumer is not current (no
// heartbeat within the bound), the cache reads the store instead.
func TestDisabledClient(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	form := url.Values{"grant_type": {"client_credentials"}}
	setDisabled := func(v bool) int64 {
		t.Helper()
		c, err := h.Store.GetClient(ctx, clientA)
		if err != nil {
			t.Fatal(err)
		}
		c.Disabled = v
		c, err = h.Store.UpdateClient(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return c.Version
	}
	if r := h.post(form, clientA, h.secretA); r.Status != 200 {
		t.Fatalf("enabled client: %d %s", r.Status, r.Raw)
	}

	// 1. The event path: the store changes without a word to the cache;
	// client.updated evicts the client and the next request sees the change.
	evictions := servicetest.Counter(h.t, h.reg, "valet_client_cache_evictions_total")
	v := setDisabled(true)
	h.publish(&events.ClientUpdated{ClientID: clientA, Version: v})
	h.eventually("client.updated applied", func() bool {
		r := h.post(form, clientA, h.secretA)
		return r.Status == 401 && r.Code() == "invalid_client" && strings.Contains(r.Raw, "disabled")
	})
	h.eventually("eviction counted", func() bool { return servicetest.Counter(h.t, h.reg, "valet_client_cache_evictions_total") > evictions })

	// 2. The fallback path: without heartbeats the consumer stops being
	// current, and every lookup reads the store — no event needed.
	h.stopBeats()
	h.eventually("cache untrusted", func() bool { return !h.cache.Trusted() })
	setDisabled(false)
	if r := h.post(form, clientA, h.secretA); r.Status != 200 {
		t.Fatalf("re-enabled, read through: %d %s", r.Status, r.Raw)
	}
	setDisabled(true)
	if r := h.post(form, clientA, h.secretA); r.Status != 401 || r.Code() != "invalid_client" {
		t.Fatalf("disabled without an event while untrusted: %d %s, want 401 invalid_client", r.Status, r.Raw)
	}
}

// TestStoreDown: with Redis stopped, a lookup the cache cannot answer is 503
// temporarily_unavailable with Retry-After; once the key ring's view is
// older than its bound, every request is. Nothing else in the 5xx range.
func TestStoreDown(t *testing.T) {
	h := newHarness(t)
	form := url.Values{"grant_type": {"client_credentials"}}
	other := h.CreateClient(store.Client{ID: "svc-b", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	if r := h.post(form, clientA, h.secretA); r.Status != 200 {
		t.Fatalf("before the outage: %d %s", r.Status, r.Raw)
	}
	h.Redis.Stop()

	check := func(name string, r response) {
		t.Helper()
		if r.Status != 503 || r.Code() != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %q Retry-After %q (%s), want 503 temporarily_unavailable with Retry-After", name, r.Status, r.Code(), r.Header.Get("Retry-After"), r.Raw)
		}
	}
	check("uncached client", h.post(form, "svc-b", other))
	// The key ring's view goes stale (MaxStaleness 1.2s here): no signing.
	h.eventually("key ring stale", func() bool { return h.Keys.Ready() != nil })
	check("cached client, stale key ring", h.post(form, clientA, h.secretA))
	// Bad input is still a 4xx.
	if r := h.post(url.Values{"grant_type": {"password"}}, "", ""); r.Status >= 500 {
		t.Fatalf("bad input during the outage: %d", r.Status)
	}
	res, err := http.Get(h.url + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Errorf("JWKS with a stale key ring: %d, want 503 with Retry-After", res.StatusCode)
	}
}

// TestRotationWhileIssuing: tokens signed before and after an emergency
// rotation (RotateNow) all verify against /jwks.json, by different keys.
func TestRotationWhileIssuing(t *testing.T) {
	h := newHarness(t)
	form := url.Values{"grant_type": {"client_credentials"}}
	issue := func() string {
		t.Helper()
		r := h.post(form, clientA, h.secretA)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
		return r.Body["access_token"].(string)
	}
	var before []string
	for range 5 {
		before = append(before, issue())
	}
	old, _ := h.Keys.Current()
	kid, err := h.Keys.RotateNow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.eventually("new key signing", func() bool { s, err := h.Keys.Current(); return err == nil && s.KID() == kid })
	after := []string{issue(), issue()}
	kids := map[string]bool{}
	for _, raw := range slices.Concat(before, after) {
		hdr, _ := h.verify(t, raw, apiID)
		kids[hdr.KeyID()] = true
	}
	if !kids[old.KID()] || !kids[kid] {
		t.Errorf("kids seen %v: want both %s and %s", kids, old.KID(), kid)
	}
}
