package clientauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
)

// fakeClients is a func-field fake of the client source.
type fakeClients struct {
	clients map[string]*store.Client
	err     error // returned for every lookup when set
	lookups int
}

func (f *fakeClients) Client(_ context.Context, id string) (*store.Client, error) {
	f.lookups++
	if f.err != nil {
		return nil, f.err
	}
	c, ok := f.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return c, nil
}

type fixture struct {
	auth    *clientauth.Authenticator
	clients *fakeClients
	reg     *prometheus.Registry
	now     time.Time
	current string // secret s2 of "conf"
	old     string // secret s1 of "conf", expiring at now+1h
	weird   string // the secret of "a:b/c d%", with reserved characters
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	h, err := secret.NewHasher("k1", map[string][]byte{"k1": make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), reg: prometheus.NewRegistry()}
	f.current, _ = secret.New()
	f.old, _ = secret.New()
	f.weird, _ = secret.New()
	f.weird += ":%+ é"
	f.clients = &fakeClients{clients: map[string]*store.Client{
		"conf": {ID: "conf", Type: store.Confidential, Secrets: []store.Secret{
			{ID: "s2", Hash: h.Hash(f.current)},
			{ID: "s1", Hash: h.Hash(f.old), ExpiresAt: f.now.Add(time.Hour)},
		}},
		"a:b/c d%": {ID: "a:b/c d%", Type: store.Confidential, Secrets: []store.Secret{{ID: "s", Hash: secret.HashUnkeyed(f.weird)}}},
		"pub":      {ID: "pub", Type: store.Public},
		"off":      {ID: "off", Type: store.Confidential, Disabled: true, Secrets: []store.Secret{{ID: "s", Hash: h.Hash(f.current)}}},
		"pub-off":  {ID: "pub-off", Type: store.Public, Disabled: true},
	}}
	f.auth, err = clientauth.New(f.clients, h, clientauth.WithClock(func() time.Time { return f.now }), clientauth.WithRegisterer(f.reg))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func basicHeader(id, sec string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(sec)))
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name      string
		creds     clientauth.Credentials
		client    string
		method    clientauth.Method
		code      string // "" for success
		challenge bool
	}{
		{"basic", clientauth.Credentials{Authorization: basicHeader("conf", f.current)}, "conf", clientauth.MethodBasic, "", false},
		{"basic lower-case scheme", clientauth.Credentials{Authorization: "basic " + base64.StdEncoding.EncodeToString([]byte("conf:"+f.current))}, "conf", clientauth.MethodBasic, "", false},
		{"basic with matching client_id", clientauth.Credentials{Authorization: basicHeader("conf", f.current), ClientID: "conf"}, "conf", clientauth.MethodBasic, "", false},
		{"post", clientauth.Credentials{ClientID: "conf", ClientSecret: f.current}, "conf", clientauth.MethodPost, "", false},
		{"older secret before expiry", clientauth.Credentials{ClientID: "conf", ClientSecret: f.old}, "conf", clientauth.MethodPost, "", false},
		{"none for a public client", clientauth.Credentials{ClientID: "pub"}, "pub", clientauth.MethodNone, "", false},
		{"reserved characters form-decoded", clientauth.Credentials{Authorization: basicHeader("a:b/c d%", f.weird)}, "a:b/c d%", clientauth.MethodBasic, "", false},
		{"reserved characters not encoded", clientauth.Credentials{Authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b/c d%:"+f.weird))}, "", clientauth.MethodBasic, "invalid_client", true},

		{"nothing", clientauth.Credentials{}, "", clientauth.MethodNone, "invalid_client", false},
		{"wrong secret basic", clientauth.Credentials{Authorization: basicHeader("conf", "nope")}, "", clientauth.MethodBasic, "invalid_client", true},
		{"wrong secret post", clientauth.Credentials{ClientID: "conf", ClientSecret: "nope"}, "", clientauth.MethodPost, "invalid_client", false},
		{"unknown client", clientauth.Credentials{ClientID: "ghost", ClientSecret: "x"}, "", clientauth.MethodPost, "invalid_client", false},
		{"unknown public client", clientauth.Credentials{ClientID: "ghost"}, "", clientauth.MethodNone, "invalid_client", false},
		{"confidential without secret", clientauth.Credentials{ClientID: "conf"}, "", clientauth.MethodNone, "invalid_client", false},
		{"public with a secret", clientauth.Credentials{ClientID: "pub", ClientSecret: "x"}, "", clientauth.MethodPost, "invalid_client", false},
		{"public with basic", clientauth.Credentials{Authorization: basicHeader("pub", "x")}, "", clientauth.MethodBasic, "invalid_client", true},
		{"disabled", clientauth.Credentials{ClientID: "off", ClientSecret: f.current}, "", clientauth.MethodPost, "invalid_client", false},
		{"disabled public", clientauth.Credentials{ClientID: "pub-off"}, "", clientauth.MethodNone, "invalid_client", false},
		{"two methods", clientauth.Credentials{Authorization: basicHeader("conf", f.current), ClientSecret: f.current}, "", clientauth.MethodBasic, "invalid_request", false},
		{"basic and another client_id", clientauth.Credentials{Authorization: basicHeader("conf", f.current), ClientID: "pub"}, "", clientauth.MethodBasic, "invalid_request", false},
		{"basic not base64", clientauth.Credentials{Authorization: "Basic %%%"}, "", clientauth.MethodBasic, "invalid_client", true},
		{"basic without colon", clientauth.Credentials{Authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("conf"))}, "", clientauth.MethodBasic, "invalid_client", true},
		{"basic with empty secret", clientauth.Credentials{Authorization: basicHeader("pub", "")}, "", clientauth.MethodBasic, "invalid_client", true},
		{"basic bad escape", clientauth.Credentials{Authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("conf:%zz"))}, "", clientauth.MethodBasic, "invalid_client", true},
		{"bearer", clientauth.Credentials{Authorization: "Bearer x"}, "", clientauth.MethodBasic, "invalid_client", true},
		{"client id with control characters", clientauth.Credentials{ClientID: "a\nb", ClientSecret: "x"}, "", clientauth.MethodPost, "invalid_client", false},
		{"client id too long", clientauth.Credentials{ClientID: strings.Repeat("a", 129)}, "", clientauth.MethodNone, "invalid_client", false},
		{"secret too long", clientauth.Credentials{ClientID: "conf", ClientSecret: strings.Repeat("a", 513)}, "", clientauth.MethodPost, "invalid_client", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.auth.Authenticate(context.Background(), tt.creds)
			if res.Method != tt.method {
				t.Errorf("method %q, want %q", res.Method, tt.method)
			}
			if tt.code == "" {
				if err != nil || res.Client == nil || res.Client.ID != tt.client {
					t.Fatalf("Authenticate = %v, %v; want client %q", res.Client, err, tt.client)
				}
				return
			}
			var e *oautherr.Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("error %v, want %s", err, tt.code)
			}
			if res.Client != nil {
				t.Error("a refusal returned a client")
			}
			if tt.challenge != (e.Challenge() != "") || (tt.challenge && !strings.HasPrefix(e.Challenge(), `Basic realm="valet"`)) {
				t.Errorf("challenge %q, want one: %v", e.Challenge(), tt.challenge)
			}
			if strings.Contains(err.Error(), f.current) || strings.Contains(err.Error(), f.old) {
				t.Error("the error holds a secret")
			}
		})
	}
	if n := testutil.CollectAndCount(f.reg, "valet_client_auth_failures_total"); n == 0 {
		t.Error("no failure counted")
	}
}

// TestSecretExpiry: the older secret of a rotation stops working at its
// ExpiresAt; the newer one keeps working.
func TestSecretExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := clientauth.Credentials{ClientID: "conf", ClientSecret: f.old}
	if _, err := f.auth.Authenticate(ctx, old); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	f.now = f.now.Add(time.Hour) // exactly ExpiresAt: expired
	if _, err := f.auth.Authenticate(ctx, old); !errors.Is(err, oautherr.ErrInvalidClient) {
		t.Fatalf("at expiry: %v, want invalid_client", err)
	}
	if _, err := f.auth.Authenticate(ctx, clientauth.Credentials{ClientID: "conf", ClientSecret: f.current}); err != nil {
		t.Fatalf("newer secret: %v", err)
	}
}

// TestRegistryUnavailable: a registry that cannot be read is 503 with
// Retry-After, never invalid_client; garbage ids never reach it.
func TestRegistryUnavailable(t *testing.T) {
	f := newFixture(t)
	f.clients.err = fmt.Errorf("get client: %w", store.ErrUnavailable)
	_, err := f.auth.Authenticate(context.Background(), clientauth.Credentials{ClientID: "conf", ClientSecret: f.current})
	var e *oautherr.Error
	if !errors.As(err, &e) || e.Code != "temporarily_unavailable" || e.Status != 503 || e.RetryAfter() <= 0 {
		t.Fatalf("error %v, want 503 temporarily_unavailable with Retry-After", err)
	}
	f.clients.lookups = 0
	_, _ = f.auth.Authenticate(context.Background(), clientauth.Credentials{ClientID: "bad\x00id"})
	_, _ = f.auth.Authenticate(context.Background(), clientauth.Credentials{Authorization: "Basic !"})
	if f.clients.lookups != 0 {
		t.Errorf("%d registry reads for malformed credentials", f.clients.lookups)
	}
}

func TestCredentialsFrom(t *testing.T) {
	parse := func(body string) *clientauth.Form {
		var f clientauth.Form
		if err := f.Parse(body); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	h := http.Header{}
	h.Add("Authorization", "Basic x")
	c, err := clientauth.CredentialsFrom(h, parse("client_id=a&client_secret=b"))
	if err != nil || c.Authorization != "Basic x" || c.ClientID != "a" || c.ClientSecret != "b" {
		t.Fatalf("CredentialsFrom = %+v, %v", c, err)
	}
	for name, tc := range map[string]struct {
		h    http.Header
		body string
	}{
		"two Authorization headers": {http.Header{"Authorization": {"Basic a", "Basic b"}}, ""},
		"repeated client_id":        {http.Header{}, "client_id=a&client_id=a"},
		"repeated client_secret":    {http.Header{}, "client_secret=a&client_secret=b"},
	} {
		if _, err := clientauth.CredentialsFrom(tc.h, parse(tc.body)); !errors.Is(err, oautherr.ErrInvalidRequest) {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	h, _ := secret.NewHasher("k1", map[string][]byte{"k1": make([]byte, 32)})
	s, _ := secret.New()
	cl := &fakeClients{clients: map[string]*store.Client{"conf": {ID: "conf", Type: store.Confidential, Secrets: []store.Secret{{ID: "s", Hash: h.Hash(s)}}}}}
	a, _ := clientauth.New(cl, h)
	creds := clientauth.Credentials{Authorization: basicHeader("conf", s)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(context.Background(), creds); err != nil {
			b.Fatal(err)
		}
	}
}
