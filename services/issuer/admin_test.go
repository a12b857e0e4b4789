package issuer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/servicetest"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/issuer"
)

// adminHarness is the harness plus a second issuer on the same store, keys
// and cache that serves the admin API, and two clients of the admin
// audience: "ops" (valet:admin) and "viewer" (valet:read only).
type adminHarness struct {
	*harness
	url, adminURL string
	opsSecret     string
	viewerSecret  string
}

const opsID = "ops"

func newAdminHarness(t *testing.T) *adminHarness { return newAdminHarnessWith(t, nil) }

// newAdminHarnessWith is newAdminHarness with mod applied to the admin
// dependencies.
func newAdminHarnessWith(t *testing.T, mod func(*harness, *issuer.AdminDeps)) *adminHarness {
	t.Helper()
	h := newHarness(t)
	aud := adminauth.Audience(testIssuer)
	h.CreateResourceServers(store.ResourceServer{ID: aud, Name: "Valet admin", Scopes: []string{adminauth.Scope, "valet:read"}})
	a := &adminHarness{harness: h}
	a.opsSecret = h.CreateClient(store.Client{ID: opsID, Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{aud: {adminauth.Scope}}, DefaultResource: aud})
	a.viewerSecret = h.CreateClient(store.Client{ID: "viewer", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{aud: {"valet:read"}, apiID: {"read"}}, DefaultResource: aud})

	// As cmd/issuer: the edge's checker over the issuer's own key ring.
	chk := servicetest.Checker(t, edge.CheckerConfig{Issuer: testIssuer, JWKSURL: testIssuer + "/jwks.json", MaxTokenLifetime: 15 * time.Minute,
		HTTPClient: &http.Client{Transport: issuer.LocalJWKS(h.Keys)}, UnknownKIDInterval: 10 * time.Millisecond})
	rev, err := revoke.New(revoke.Config{Source: testIssuer, Prefix: h.Prefix, Retain: time.Hour}, h.Store, h.Pub)
	if err != nil {
		t.Fatal(err)
	}
	ad := &issuer.AdminDeps{
		Store: h.Store, Checker: chk, Revoker: rev, Keys: h.Keys, Hasher: h.Hasher, Cache: h.cache, Publisher: h.Env,
	}
	if mod != nil {
		mod(h, ad)
	}
	svc, err := issuer.New(h.cfg, issuer.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: h.Store, Keys: h.Keys, Clients: h.cache, Secrets: h.Hasher, Clock: h.clock.Now,
		Admin: ad,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.url, a.adminURL = servicetest.Serve(t, svc)
	return a
}

// tokenFor returns an access token of id for resource and scope.
func (a *adminHarness) tokenFor(t *testing.T, id, sec, resource, scope string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: id, ClientSecret: sec, TokenURL: a.url + "/token", Scopes: strings.Fields(scope),
		EndpointParams: url.Values{"resource": {resource}}, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("token for %s: %v", id, err)
	}
	return tok.AccessToken
}

func (a *adminHarness) opsToken(t *testing.T) string {
	return a.tokenFor(t, opsID, a.opsSecret, adminauth.Audience(testIssuer), adminauth.Scope)
}

// call sends an admin request with bearer tok and decodes the JSON answer.
func (a *adminHarness) call(t *testing.T, tok, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.adminURL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return res.StatusCode, out
}

// canGetToken reports whether id/sec gets a token for apiID.
func (a *adminHarness) canGetToken(id, sec string) bool {
	cc := clientcredentials.Config{ClientID: id, ClientSecret: sec, TokenURL: a.url + "/token", Scopes: []string{"read"},
		EndpointParams: url.Values{"resource": {apiID}}, AuthStyle: oauth2.AuthStyleInHeader}
	_, err := cc.Token(context.Background())
	return err == nil
}

func TestAdminAuthRefusals(t *testing.T) {
	a := newAdminHarness(t)
	aud := adminauth.Audience(testIssuer)
	tests := []struct {
		name       string
		tok        string
		wantStatus int
		wantCode   string
	}{
		{"no token", "", 401, ""},
		{"garbage", "not-a-jwt", 401, "invalid_token"},
		{"token for another audience", a.tokenFor(t, "viewer", a.viewerSecret, apiID, "read"), 401, "invalid_token"},
		{"admin audience without the admin scope", a.tokenFor(t, "viewer", a.viewerSecret, aud, "valet:read"), 403, "insufficient_scope"},
		{"admin token", a.opsToken(t), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []struct{ m, path string }{{"GET", "/admin/clients"}, {"POST", "/admin/keys/rewrap"}} {
				st, body := a.call(t, tt.tok, p.m, p.path, nil)
				if st != tt.wantStatus || (tt.wantCode != "" && body["error"] != tt.wantCode) {
					t.Fatalf("%s %s: %d %v, want %d %s", p.m, p.path, st, body, tt.wantStatus, tt.wantCode)
				}
			}
		})
	}
}

func TestAdminClientLifecycle(t *testing.T) {
	a := newAdminHarness(t)
	tok := a.opsToken(t)

	// Create: the secret comes back once and works with x/oauth2.
	st, body := a.call(t, tok, "POST", "/admin/clients", map[string]any{
		"client_id": "svc-new", "name": "New", "grant_types": []string{"client_credentials"},
		"resources": map[string][]string{apiID: {"read"}}, "default_resource": apiID,
	})
	if st != 201 {
		t.Fatalf("create: %d %v", st, body)
	}
	sec1, _ := body["client_secret"].(string)
	if !strings.HasPrefix(sec1, "vcs_") || body["version"] != float64(1) {
		t.Fatalf("create answer %v", body)
	}
	if !a.canGetToken("svc-new", sec1) {
		t.Fatal("the returned secret does not work")
	}
	if stored, _ := a.Store.GetClient(context.Background(), "svc-new"); len(stored.Secrets) != 1 || bytes.Contains(stored.Secrets[0].Hash, []byte(sec1)) {
		t.Fatalf("stored secrets %+v", stored.Secrets)
	}
	// Reads never show a secret.
	if st, body = a.call(t, tok, "GET", "/admin/clients/svc-new", nil); st != 200 || body["client_secret"] != nil {
		t.Fatalf("get: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "GET", "/admin/clients", nil); st != 200 || len(body["clients"].([]any)) < 4 {
		t.Fatalf("list: %d %v", st, body)
	}

	// Validation, duplicates, unknowns, conflicts.
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
		wantCode           string
	}{
		{"duplicate", "POST", "/admin/clients", map[string]any{"client_id": "svc-new", "grant_types": []string{"client_credentials"}}, 409, "conflict"},
		{"unknown grant", "POST", "/admin/clients", map[string]any{"client_id": "x", "grant_types": []string{"password"}}, 400, "invalid_request"},
		{"public client credentials", "POST", "/admin/clients", map[string]any{"client_id": "x", "type": "public", "grant_types": []string{"client_credentials"}}, 400, "invalid_request"},
		{"unregistered resource", "POST", "/admin/clients", map[string]any{"client_id": "x", "grant_types": []string{"client_credentials"}, "resources": map[string][]string{orphanID: {"x"}}}, 400, "invalid_request"},
		{"undefined scope", "POST", "/admin/clients", map[string]any{"client_id": "x", "grant_types": []string{"client_credentials"}, "resources": map[string][]string{apiID: {"delete"}}}, 400, "invalid_request"},
		{"unknown field", "POST", "/admin/clients", map[string]any{"client_id": "x", "secret": "mine"}, 400, "invalid_request"},
		{"client id too long for the store", "POST", "/admin/clients", map[string]any{"client_id": strings.Repeat("c", 129), "grant_types": []string{"client_credentials"}}, 400, "invalid_request"},
		{"non-ASCII client id", "POST", "/admin/clients", map[string]any{"client_id": "café", "grant_types": []string{"client_credentials"}}, 400, "invalid_request"},
		{"not json", "POST", "/admin/clients", nil, 400, "invalid_request"},
		{"get unknown", "GET", "/admin/clients/nobody", nil, 404, "not_found"},
		{"delete unknown", "DELETE", "/admin/clients/nobody", nil, 404, "not_found"},
		{"rotate unknown", "POST", "/admin/clients/nobody/secret", nil, 404, "not_found"},
		{"stale version", "PUT", "/admin/clients/svc-new", map[string]any{"grant_types": []string{"client_credentials"}, "version": 7}, 409, "conflict"},
		{"no version", "PUT", "/admin/clients/svc-new", map[string]any{"grant_types": []string{"client_credentials"}}, 400, "invalid_request"},
		{"bad previous_ttl", "POST", "/admin/clients/svc-new/secret", map[string]any{"previous_ttl": "forever"}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := a.call(t, tok, tt.method, tt.path, tt.body)
			if st != tt.wantStatus || body["error"] != tt.wantCode {
				t.Fatalf("%d %v, want %d %s", st, body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	// Update with the version read: 200 and the next version; the client
	// event evicts caches.
	st, body = a.call(t, tok, "PUT", "/admin/clients/svc-new", map[string]any{
		"name": "Renamed", "grant_types": []string{"client_credentials"},
		"resources": map[string][]string{apiID: {"read", "write"}}, "default_resource": apiID, "version": 1,
	})
	if st != 200 || body["name"] != "Renamed" || body["version"] != float64(2) {
		t.Fatalf("update: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "PUT", "/admin/clients/svc-new", map[string]any{"grant_types": []string{"client_credentials"}, "version": 1}); st != 409 {
		t.Fatalf("update with the old version: %d %v", st, body)
	}

	// Rotate: both secrets work until the old one's expiry.
	st, body = a.call(t, tok, "POST", "/admin/clients/svc-new/secret", map[string]any{"previous_ttl": "1h"})
	sec2, _ := body["client_secret"].(string)
	if st != 200 || sec2 == "" || sec2 == sec1 || len(body["secrets"].([]any)) != 2 {
		t.Fatalf("rotate: %d %v", st, body)
	}
	if !a.canGetToken("svc-new", sec1) || !a.canGetToken("svc-new", sec2) {
		t.Fatal("both secrets must work during the rotation")
	}
	a.clock.Advance(time.Hour)
	if a.canGetToken("svc-new", sec1) || !a.canGetToken("svc-new", sec2) {
		t.Fatal("after previous_ttl only the new secret may work")
	}
	// A second rotation keeps at most two secrets.
	if st, body = a.call(t, tok, "POST", "/admin/clients/svc-new/secret", nil); st != 200 || len(body["secrets"].([]any)) != 2 {
		t.Fatalf("second rotate: %d %v", st, body)
	}
	sec3 := body["client_secret"].(string)
	if !a.canGetToken("svc-new", sec2) || !a.canGetToken("svc-new", sec3) {
		t.Fatal("default previous_ttl keeps the previous secret")
	}
	a.assertEvent(t, events.TypeClientSecretRotated, "svc-new")

	// Disable: token requests refused; client.revoked in the stream.
	if st, body = a.call(t, tok, "POST", "/admin/clients/svc-new/disable", nil); st != 200 || body["disabled"] != true {
		t.Fatalf("disable: %d %v", st, body)
	}
	if a.canGetToken("svc-new", sec3) {
		t.Fatal("a disabled client got a token")
	}
	a.assertEvent(t, events.TypeClientRevoked, "svc-new")
	if d, err := a.Store.DenyState(context.Background(), store.DenyQuery{ClientID: "svc-new"}); err != nil || d.ClientCutoff.IsZero() {
		t.Fatalf("deny state %+v %v", d, err)
	}
	// Disabling through PUT is refused; re-enabling through PUT works.
	cur, _ := a.Store.GetClient(context.Background(), "svc-new")
	if st, body = a.call(t, tok, "PUT", "/admin/clients/svc-new", map[string]any{"grant_types": []string{"client_credentials"},
		"resources": map[string][]string{apiID: {"read"}}, "default_resource": apiID, "version": cur.Version}); st != 200 || body["disabled"] != false {
		t.Fatalf("re-enable: %d %v", st, body)
	}
	a.eventually("re-enabled client gets a token", func() bool { return a.canGetToken("svc-new", sec3) })

	// Delete.
	if st, body = a.call(t, tok, "DELETE", "/admin/clients/svc-new", nil); st != 200 {
		t.Fatalf("delete: %d %v", st, body)
	}
	if a.canGetToken("svc-new", sec3) {
		t.Fatal("a deleted client got a token")
	}
	a.assertEvent(t, events.TypeClientDeleted, "svc-new")
	if st, _ = a.call(t, tok, "GET", "/admin/clients/svc-new", nil); st != 404 {
		t.Fatalf("get after delete: %d", st)
	}
}

// assertEvent checks that the last event of type typ on the stream names
// clientID and carries the ops actor.
func (a *adminHarness) assertEvent(t *testing.T, typ events.Type, clientID string) {
	t.Helper()
	s, err := a.JS.Stream(context.Background(), bus.StreamName(a.Prefix, events.StreamRevocations))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), a.Prefix+"."+string(typ))
	if err != nil {
		t.Fatalf("no %s event: %v", typ, err)
	}
	e, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.Actor != opsID || !strings.Contains(string(msg.Data), `"client_id":"`+clientID+`"`) {
		t.Fatalf("%s event %s: actor %q", typ, msg.Data, e.Actor)
	}
}

func TestAdminResourceServers(t *testing.T) {
	a := newAdminHarness(t)
	tok := a.opsToken(t)
	const id = "https://orders.example.test/"
	esc := "/admin/resource-servers/" + url.PathEscape(id)
	st, body := a.call(t, tok, "POST", "/admin/resource-servers", map[string]any{"id": id, "name": "Orders", "scopes": []string{"orders:read"}, "access_token_lifetime": 120})
	if st != 201 || body["version"] != float64(1) {
		t.Fatalf("create: %d %v", st, body)
	}
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
		wantCode           string
	}{
		{"duplicate", "POST", "/admin/resource-servers", map[string]any{"id": id, "scopes": []string{"a"}}, 409, "conflict"},
		{"relative id", "POST", "/admin/resource-servers", map[string]any{"id": "orders", "scopes": []string{"a"}}, 400, "invalid_request"},
		{"bad scope", "POST", "/admin/resource-servers", map[string]any{"id": "urn:x", "scopes": []string{"a b"}}, 400, "invalid_request"},
		{"lifetime too long", "POST", "/admin/resource-servers", map[string]any{"id": "urn:x", "access_token_lifetime": 1 << 40}, 400, "invalid_request"},
		{"unknown", "GET", "/admin/resource-servers/" + url.PathEscape("urn:none"), nil, 404, "not_found"},
		{"stale version", "PUT", esc, map[string]any{"scopes": []string{"a"}, "version": 9}, 409, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := a.call(t, tok, tt.method, tt.path, tt.body)
			if st != tt.wantStatus || body["error"] != tt.wantCode {
				t.Fatalf("%d %v, want %d %s", st, body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if st, body = a.call(t, tok, "GET", esc, nil); st != 200 || body["access_token_lifetime"] != float64(120) {
		t.Fatalf("get: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "PUT", esc, map[string]any{"name": "Orders", "scopes": []string{"orders:read", "orders:write"}, "version": 1}); st != 200 || body["version"] != float64(2) {
		t.Fatalf("update: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "GET", "/admin/resource-servers", nil); st != 200 || len(body["resource_servers"].([]any)) != 4 {
		t.Fatalf("list: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "DELETE", esc, nil); st != 200 {
		t.Fatalf("delete: %d %v", st, body)
	}
	if st, _ = a.call(t, tok, "GET", esc, nil); st != 404 {
		t.Fatalf("get after delete: %d", st)
	}
}

func TestAdminKeys(t *testing.T) {
	a := newAdminHarness(t)
	tok := a.opsToken(t)
	kids := func() []string {
		res, err := http.Get(a.url + "/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var set struct {
			Keys []struct {
				KID string `json:"kid"`
			} `json:"keys"`
		}
		_ = json.NewDecoder(res.Body).Decode(&set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KID)
		}
		return out
	}
	has := func(kid string) bool {
		for _, k := range kids() {
			if k == kid {
				return true
			}
		}
		return false
	}
	st, body := a.call(t, tok, "POST", "/admin/keys/rotate", nil)
	kid, _ := body["kid"].(string)
	if st != 200 || kid == "" || !has(kid) {
		t.Fatalf("rotate: %d %v; jwks %v", st, body, kids())
	}
	st, body = a.call(t, tok, "POST", "/admin/keys/rotate?immediate=true", nil)
	kid2, _ := body["kid"].(string)
	if st != 200 || kid2 == "" || !has(kid2) {
		t.Fatalf("rotate now: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "POST", "/admin/keys/rotate?immediate=maybe", nil); st != 400 {
		t.Fatalf("bad immediate: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "POST", "/admin/keys/"+kid+"/revoke", nil); st != 200 || has(kid) {
		t.Fatalf("revoke: %d %v; jwks %v", st, body, kids())
	}
	if st, body = a.call(t, tok, "POST", "/admin/keys/nokid/revoke", nil); st != 404 {
		t.Fatalf("revoke unknown: %d %v", st, body)
	}
	if st, body = a.call(t, tok, "POST", "/admin/keys/rewrap", nil); st != 200 || body["rewrapped"] == nil {
		t.Fatalf("rewrap: %d %v", st, body)
	}
}

// TestAdminUsers: the user store through the admin API, with a login-capable
// issuer replica on the same users: create, read (never a hash), password
// reset, disable (login refused; the session, the refresh family and the
// access tokens die through a subject cut-off, subject.revoked with the
// admin as actor), enable.
func TestAdminUsers(t *testing.T) {
	a := newAdminHarnessWith(t, func(h *harness, d *issuer.AdminDeps) { d.Users = h.users(t) })
	tok := a.opsToken(t)
	ctx := context.Background()

	// The user grants on a second replica, on the same user store.
	reg := prometheus.NewRegistry()
	_, userURL := startDeviceIssuer(t, a.harness, reg, nil)
	u := &authHarness{harness: a.harness, url: userURL, reg: reg}
	a.CreateClient(store.Client{ID: tvID, Name: "Living Room TV", Type: store.Public,
		GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"},
		Resources:  map[string][]string{apiID: {"read"}}, DefaultResource: apiID})
	a.eventually("tv cached", func() bool { _, err := a.cache.Client(ctx, tvID); return err == nil })

	st, body := a.call(t, tok, "POST", "/admin/users", map[string]any{"username": alice, "password": alicePW})
	sub, _ := body["sub"].(string)
	if st != 201 || body["username"] != alice || !strings.HasPrefix(sub, "usr_") || body["disabled"] != false {
		t.Fatalf("create: %d %v", st, body)
	}
	for _, k := range []string{"password", "password_hash"} {
		if _, ok := body[k]; ok {
			t.Fatalf("create answer has %s: %v", k, body)
		}
	}
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
		wantCode           string
	}{
		{"duplicate", "POST", "/admin/users", map[string]any{"username": alice, "password": "another-pass"}, 409, "conflict"},
		{"short password", "POST", "/admin/users", map[string]any{"username": "bob", "password": "short"}, 400, "invalid_request"},
		{"no password", "POST", "/admin/users", map[string]any{"username": "bob"}, 400, "invalid_request"},
		{"surrounding spaces", "POST", "/admin/users", map[string]any{"username": " bob", "password": "long enough"}, 400, "invalid_request"},
		{"control character", "POST", "/admin/users", map[string]any{"username": "b\x00b", "password": "long enough"}, 400, "invalid_request"},
		{"hash instead of password", "POST", "/admin/users", map[string]any{"username": "bob", "password_hash": "$argon2id$x"}, 400, "invalid_request"},
		{"revoke on create", "POST", "/admin/users", map[string]any{"username": "bob", "password": "long enough", "revoke": true}, 400, "invalid_request"},
		{"not json", "POST", "/admin/users", nil, 400, "invalid_request"},
		{"get unknown", "GET", "/admin/users/nobody", nil, 404, "not_found"},
		{"reset unknown", "POST", "/admin/users/nobody/password", map[string]any{"password": "long enough"}, 404, "not_found"},
		{"reset without password", "POST", "/admin/users/" + alice + "/password", map[string]any{}, 400, "invalid_request"},
		{"reset renames", "POST", "/admin/users/" + alice + "/password", map[string]any{"username": "eve", "password": "long enough"}, 400, "invalid_request"},
		{"disable unknown", "POST", "/admin/users/nobody/disable", nil, 404, "not_found"},
		{"enable unknown", "POST", "/admin/users/nobody/enable", nil, 404, "not_found"},
		{"control character in the path", "GET", "/admin/users/a%00b", nil, 400, "invalid_request"},
		{"username too long", "POST", "/admin/users/" + strings.Repeat("a", 129) + "/disable", nil, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := a.call(t, tok, tt.method, tt.path, tt.body)
			if st != tt.wantStatus || body["error"] != tt.wantCode {
				t.Fatalf("%d %v, want %d %s", st, body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	// Usernames are path-escaped; any printable name works.
	odd := "o'brien/ops 100%"
	if st, body = a.call(t, tok, "POST", "/admin/users", map[string]any{"username": odd, "password": "long enough"}); st != 201 {
		t.Fatalf("create %q: %d %v", odd, st, body)
	}
	if st, body = a.call(t, tok, "GET", "/admin/users/"+url.PathEscape(odd), nil); st != 200 || body["username"] != odd {
		t.Fatalf("get %q: %d %v", odd, st, body)
	}
	st, body = a.call(t, tok, "GET", "/admin/users", nil)
	list, _ := body["users"].([]any)
	if st != 200 || len(list) != 2 || strings.Contains(fmt.Sprint(list), "argon2") {
		t.Fatalf("list: %d %v", st, body)
	}

	// alice signs in through the device flow: a session in her browser and
	// a refresh family on the TV.
	c := browser(t)
	tvTok := u.deviceToken(t, c)
	signedIn := func() bool {
		t.Helper()
		_, uc := u.startOK(t, tvID)
		st, _, body, err := u.enterCode(c, userURL, uc)
		if err != nil || st != http.StatusOK {
			t.Fatalf("enter code: %d %v", st, err)
		}
		return strings.Contains(body, `id="approve"`)
	}
	if !signedIn() {
		t.Fatal("no session after the device flow")
	}

	// Password reset: the old password stops working, the new one works;
	// without revoke the session lives on.
	const newPW = "through-the-looking-glass"
	st, body = a.call(t, tok, "POST", "/admin/users/"+alice+"/password", map[string]any{"password": newPW})
	if st != 200 || body["revoked"] != nil || body["password"] != nil {
		t.Fatalf("reset: %d %v", st, body)
	}
	if u.passwordWorks(t, alicePW) || !u.passwordWorks(t, newPW) {
		t.Fatal("after the reset only the new password may work")
	}
	if !signedIn() {
		t.Fatal("a reset without revoke ended the session")
	}

	// Disable: the cut-off is durable before the answer.
	st, body = a.call(t, tok, "POST", "/admin/users/"+alice+"/disable", nil)
	if st != 200 || body["disabled"] != true || body["revoked"] != true {
		t.Fatalf("disable: %d %v", st, body)
	}
	if u.passwordWorks(t, newPW) {
		t.Fatal("a disabled user signed in")
	}
	if signedIn() {
		t.Fatal("the session of a disabled user still works")
	}
	if r := u.postUser(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tvTok.RefreshToken}, "client_id": {tvID}}); r.Code() != "invalid_grant" {
		t.Fatalf("refresh of a disabled user's family: %d %s", r.Status, r.Raw)
	}
	d, err := a.Store.DenyState(ctx, store.DenyQuery{SubjectType: events.SubjectUser, Subject: sub})
	iat, _ := claimsOf(t, tvTok.AccessToken)["iat"].(float64)
	if err != nil || d.SubjectCutoff.IsZero() || !d.Revoked(time.Unix(int64(iat), 0), 0) {
		t.Fatalf("deny state %+v %v", d, err)
	}
	a.assertSubjectRevoked(t, sub)
	if st, body = a.call(t, tok, "GET", "/admin/users/"+alice, nil); st != 200 || body["disabled"] != true {
		t.Fatalf("get disabled: %d %v", st, body)
	}

	// Enable: no cut-off; sign-in works again once the clock skew allowance
	// after the cut-off (which also covers logins in flight) has passed.
	st, body = a.call(t, tok, "POST", "/admin/users/"+alice+"/enable", nil)
	if st != 200 || body["disabled"] != false || body["revoked"] != nil {
		t.Fatalf("enable: %d %v", st, body)
	}
	a.clock.Advance(time.Minute)
	defer a.clock.Advance(-time.Minute)
	if !u.passwordWorks(t, newPW) {
		t.Fatal("a re-enabled user cannot sign in")
	}

	// A password reset with revoke is a subject cut-off too.
	if st, body = a.call(t, tok, "POST", "/admin/users/"+url.PathEscape(odd)+"/password", map[string]any{"password": "long enough 2", "revoke": true}); st != 200 || body["revoked"] != true {
		t.Fatalf("reset with revoke: %d %v", st, body)
	}
	oddSub, _ := body["sub"].(string)
	if d, err := a.Store.DenyState(ctx, store.DenyQuery{SubjectType: events.SubjectUser, Subject: oddSub}); err != nil || d.SubjectCutoff.IsZero() {
		t.Fatalf("deny state after reset with revoke: %+v %v", d, err)
	}
}

// TestAdminUsersFromRedisStore: without AdminDeps.Users, an issuer on Redis
// manages the users kept next to its store under redis.key_prefix, where
// cmd/issuer's login finds them.
func TestAdminUsersFromRedisStore(t *testing.T) {
	a := newAdminHarness(t)
	tok := a.opsToken(t)
	if st, body := a.call(t, tok, "POST", "/admin/users", map[string]any{"username": "carol", "password": "long enough"}); st != 201 {
		t.Fatalf("create: %d %v", st, body)
	}
	ua, err := users.NewAuthenticator(users.NewRedis(a.Store.Client(), a.cfg.Redis.KeyPrefix), users.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ua.Authenticate(context.Background(), "carol", "long enough"); err != nil {
		t.Fatalf("the login's view of the user: %v", err)
	}
}

// deviceToken runs the device flow for tvID with alice signing in in c and
// returns the TV's tokens.
func (a *authHarness) deviceToken(t *testing.T, c *http.Client) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf := a.deviceConf(tvID, "read")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.deviceBrowser(c, da.UserCode, true) }()
	tok, err := conf.DeviceAccessToken(ctx, da)
	if berr := <-errc; berr != nil {
		t.Fatalf("browser: %v", berr)
	}
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("DeviceAccessToken: %+v %v", tok, err)
	}
	return tok
}

// passwordWorks reports whether alice signs in with pw in a fresh browser
// (the login page reached through a user code).
func (a *authHarness) passwordWorks(t *testing.T, pw string) bool {
	t.Helper()
	_, uc := a.startOK(t, tvID)
	c := browser(t)
	st, _, body, err := a.enterCode(c, a.url, uc)
	if err != nil || st != http.StatusOK || !strings.Contains(body, `id="password"`) {
		t.Fatalf("login page: %d %v", st, err)
	}
	_, err = a.deviceLogin(c, body, func(f url.Values) { f.Set("password", pw) })
	return err == nil
}

// assertSubjectRevoked checks that the last subject.revoked event names sub
// and carries the ops actor.
func (a *adminHarness) assertSubjectRevoked(t *testing.T, sub string) {
	t.Helper()
	s, err := a.JS.Stream(context.Background(), bus.StreamName(a.Prefix, events.StreamRevocations))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), a.Prefix+"."+string(events.TypeSubjectRevoked))
	if err != nil {
		t.Fatalf("no subject.revoked event: %v", err)
	}
	e, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := e.Payload.(*events.SubjectRevoked)
	if e.Actor != opsID || !ok || p.Subject != sub || p.SubjectType != events.SubjectUser || p.Reason != events.ReasonAdmin {
		t.Fatalf("subject.revoked %s", msg.Data)
	}
}
