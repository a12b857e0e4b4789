package conformance

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// clientTests cover store.ClientStore's clients (RFC 6749 §2).
var clientTests = []subtest{
	{"Client/Missing", testClientMissing},
	{"Client/Duplicate", testClientDuplicate},
	{"Client/RoundTrip", testClientRoundTrip},
	{"Client/UpdateComparesVersion", testClientUpdate},
	{"Client/Delete", testClientDelete},
	{"Client/ListOrderedByID", testClientListOrder},
	{"Client/RefusesInvalid", testClientValidation},
	{"Client/ConcurrentUpdateHasOneWinner", testClientConcurrentUpdate},
}

// resourceServerTests cover store.ClientStore's resource servers (RFC 8707).
var resourceServerTests = []subtest{
	{"ResourceServer/Missing", testResourceServerMissing},
	{"ResourceServer/Duplicate", testResourceServerDuplicate},
	{"ResourceServer/RoundTrip", testResourceServerRoundTrip},
	{"ResourceServer/UpdateComparesVersion", testResourceServerUpdate},
	{"ResourceServer/DeleteAndListOrder", testResourceServerDeleteList},
	{"ResourceServer/RefusesInvalid", testResourceServerValidation},
}

// fullClient returns a confidential client with every field set.
func fullClient(id string, now time.Time) store.Client {
	return store.Client{
		ID:   id,
		Name: "Billing — backend",
		Type: store.Confidential,
		Secrets: []store.Secret{
			{ID: "sec-2", Hash: []byte("keyed-hash-of-the-new-secret...."), CreatedAt: now},
			{ID: "sec-1", Hash: []byte("keyed-hash-of-the-old-secret...."), CreatedAt: now.Add(-30 * 24 * time.Hour), ExpiresAt: now.Add(time.Hour)},
		},
		GrantTypes:   []string{"authorization_code", "refresh_token", "client_credentials"},
		RedirectURIs: []string{"https://app.example.com/cb", "http://127.0.0.1:8080/cb"},
		Resources: map[string][]string{
			"https://api.example.com/": {"read", "write"},
			"urn:example:billing":      {"invoice:read"},
		},
		DefaultResource:     "https://api.example.com/",
		ResourceIDs:         []string{"urn:example:billing"},
		AccessTokenLifetime: 5*time.Minute + 250*time.Millisecond,
		CORSOrigins:         []string{"https://app.example.com"},
		FirstParty:          true,
		Disabled:            true,
		CreatedAt:           now.Add(-time.Hour),
		UpdatedAt:           now,
	}
}

func normClient(c store.Client) store.Client {
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	} else {
		secrets := make([]store.Secret, len(c.Secrets))
		for i, s := range c.Secrets {
			secrets[i] = store.Secret{ID: s.ID, Hash: normBytes(s.Hash), CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()}
		}
		c.Secrets = secrets
	}
	c.GrantTypes = normStrings(c.GrantTypes)
	c.RedirectURIs = normStrings(c.RedirectURIs)
	c.CORSOrigins = normStrings(c.CORSOrigins)
	c.ResourceIDs = normStrings(c.ResourceIDs)
	if len(c.Resources) == 0 {
		c.Resources = nil
	} else {
		res := make(map[string][]string, len(c.Resources))
		for k, v := range c.Resources {
			res[k] = normStrings(v)
		}
		c.Resources = res
	}
	return c
}

func withVersion(c store.Client, v int64) store.Client { c.Version = v; return c }

func testClientMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetClient(ctx, "nobody")
	wantErr(t, "get unknown client", err, store.ErrNotFound)
	_, err = s.UpdateClient(ctx, withVersion(fullClient("nobody", registryNow()), 1))
	wantErr(t, "update unknown client", err, store.ErrNotFound)
	wantErr(t, "delete unknown client", s.DeleteClient(ctx, "nobody"), store.ErrNotFound)
	list, err := s.ListClients(ctx)
	noErr(t, "list clients of an empty store", err)
	if len(list) != 0 {
		t.Fatalf("empty store lists %d clients", len(list))
	}
}

func testClientDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := fullClient("svc-billing", registryNow())
	noErr(t, "create client", s.CreateClient(ctx, first))
	second := first
	second.Name = "Impostor"
	second.Secrets = nil
	wantErr(t, "create the same id again", s.CreateClient(ctx, second), store.ErrAlreadyExists)
	got, err := s.GetClient(ctx, first.ID)
	noErr(t, "get client", err)
	sameRecord(t, "client after a refused duplicate", got, withVersion(first, 1), normClient)
}

func testClientRoundTrip(t *testing.T, s store.Store) {
	now := registryNow()
	tests := []struct {
		name string
		c    store.Client
	}{
		{"every field", fullClient("svc-billing", now)},
		{"minimal public client", store.Client{ID: "cli", Type: store.Public}},
		{"public client with PKCE and loopback redirect", store.Client{
			ID: "native-app", Name: "CLI", Type: store.Public,
			GrantTypes:   []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
			RedirectURIs: []string{"http://127.0.0.1/callback"},
			Resources:    map[string][]string{"https://api.example.com/": nil},
			CreatedAt:    now, UpdatedAt: now,
		}},
		{"confidential client without secrets", store.Client{ID: "jwt-auth", Type: store.Confidential, CreatedAt: now}},
		{"id with separators and braces", store.Client{ID: "tenant:a/svc {eu} 1", Type: store.Confidential, Secrets: []store.Secret{{ID: "k", Hash: []byte{0, 1, 2, 255}}}}},
		{"time zones other than UTC", store.Client{ID: "zoned", Type: store.Public,
			CreatedAt: now.In(time.FixedZone("CEST", 2*3600)), UpdatedAt: now.In(time.FixedZone("PDT", -7*3600))}},
	}
	ctx := t.Context()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.c
			in.Version = 42 // CreateClient stores Version 1 whatever it is given.
			noErr(t, "create client", s.CreateClient(ctx, in))
			got, err := s.GetClient(ctx, tc.c.ID)
			noErr(t, "get client", err)
			sameRecord(t, "client read back", got, withVersion(tc.c, 1), normClient)
		})
	}
	list, err := s.ListClients(ctx)
	noErr(t, "list clients", err)
	if len(list) != len(tests) {
		t.Fatalf("listed %d clients, want %d", len(list), len(tests))
	}
	for _, got := range list {
		for _, tc := range tests {
			if tc.c.ID == got.ID {
				sameRecord(t, "listed client "+got.ID, got, withVersion(tc.c, 1), normClient)
			}
		}
	}
}

func testClientUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	noErr(t, "create client", s.CreateClient(ctx, fullClient("svc-billing", now)))
	v1, err := s.GetClient(ctx, "svc-billing")
	noErr(t, "get client", err)

	// Rotate the secret: the old one gets an expiry, a new one comes first.
	next := v1
	next.Name = "Billing (renamed)"
	next.Secrets = []store.Secret{
		{ID: "sec-3", Hash: []byte("keyed-hash-of-the-3rd-secret...."), CreatedAt: now.Add(time.Minute)},
		{ID: "sec-2", Hash: v1.Secrets[0].Hash, CreatedAt: v1.Secrets[0].CreatedAt, ExpiresAt: now.Add(2 * time.Hour)},
	}
	next.Resources = map[string][]string{"https://api.example.com/": {"read"}}
	next.Disabled = false
	next.UpdatedAt = now.Add(time.Minute)
	v2, err := s.UpdateClient(ctx, next)
	noErr(t, "update at the stored version", err)
	sameRecord(t, "update's result", v2, withVersion(next, 2), normClient)
	got, err := s.GetClient(ctx, "svc-billing")
	noErr(t, "get updated client", err)
	sameRecord(t, "updated client read back", got, withVersion(next, 2), normClient)

	for _, stale := range []int64{0, 1, 3, 99} {
		c := withVersion(next, stale)
		c.Name = fmt.Sprintf("lost update at version %d", stale)
		_, err := s.UpdateClient(ctx, c)
		wantErr(t, fmt.Sprintf("update at version %d when 2 is stored", stale), err, store.ErrConflict)
	}
	got, err = s.GetClient(ctx, "svc-billing")
	noErr(t, "get client after conflicts", err)
	sameRecord(t, "client after refused updates", got, withVersion(next, 2), normClient)

	v3, err := s.UpdateClient(ctx, got)
	noErr(t, "update at version 2", err)
	if v3.Version != 3 {
		t.Fatalf("second update stored version %d, want 3", v3.Version)
	}
}

func testClientDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	noErr(t, "create a", s.CreateClient(ctx, fullClient("a", now)))
	noErr(t, "create b", s.CreateClient(ctx, fullClient("b", now)))
	noErr(t, "delete a", s.DeleteClient(ctx, "a"))
	_, err := s.GetClient(ctx, "a")
	wantErr(t, "get deleted client", err, store.ErrNotFound)
	wantErr(t, "delete a again", s.DeleteClient(ctx, "a"), store.ErrNotFound)
	_, err = s.UpdateClient(ctx, withVersion(fullClient("a", now), 1))
	wantErr(t, "update deleted client", err, store.ErrNotFound)
	list, err := s.ListClients(ctx)
	noErr(t, "list clients", err)
	if len(list) != 1 || list[0].ID != "b" {
		t.Fatalf("after deleting a, listed %v, want [b]", clientIDs(list))
	}
	// The id is free again, and starts over at version 1.
	noErr(t, "create a again", s.CreateClient(ctx, fullClient("a", now)))
	got, err := s.GetClient(ctx, "a")
	noErr(t, "get recreated client", err)
	if got.Version != 1 {
		t.Fatalf("recreated client has version %d, want 1", got.Version)
	}
}

func testClientListOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := []string{"m", "a", "z", "B", "a:1", "ab", "a-b", "0"}
	for _, id := range ids {
		noErr(t, "create "+id, s.CreateClient(ctx, store.Client{ID: id, Name: "client " + id, Type: store.Public}))
	}
	list, err := s.ListClients(ctx)
	noErr(t, "list clients", err)
	want := append([]string(nil), ids...)
	sort.Strings(want)
	if got := clientIDs(list); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("listed %q, want %q (by id)", got, want)
	}
	for _, c := range list {
		if c.Name != "client "+c.ID || c.Version != 1 {
			t.Fatalf("listed %+v, want name %q at version 1", c, "client "+c.ID)
		}
	}
}

func clientIDs(cs []store.Client) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func testClientValidation(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	secret := func(id string) store.Secret { return store.Secret{ID: id, Hash: []byte("keyed-hash"), CreatedAt: now} }
	tests := []struct {
		name   string
		modify func(c *store.Client)
	}{
		{"empty id", func(c *store.Client) { c.ID = "" }},
		{"id of 10000 characters", func(c *store.Client) { c.ID = strings.Repeat("a", 10000) }},
		{"id with a newline", func(c *store.Client) { c.ID = "svc\nbilling" }},
		{"id with a NUL", func(c *store.Client) { c.ID = "svc\x00" }},
		{"name of 10000 bytes", func(c *store.Client) { c.Name = strings.Repeat("n", 10000) }},
		{"no type", func(c *store.Client) { c.Type = "" }},
		{"unknown type", func(c *store.Client) { c.Type = "credentialed" }},
		{"three secrets", func(c *store.Client) { c.Secrets = []store.Secret{secret("1"), secret("2"), secret("3")} }},
		{"public client with a secret", func(c *store.Client) { c.Type = store.Public; c.Secrets = []store.Secret{secret("1")} }},
	}
	noErr(t, "create a valid client", s.CreateClient(ctx, fullClient("valid", now)))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fullClient("svc-new", now)
			tc.modify(&c)
			refused(t, "create", s.CreateClient(ctx, c))
			if _, err := s.GetClient(ctx, c.ID); err == nil {
				t.Fatalf("a refused client %q was stored", c.ID)
			}

			u := withVersion(fullClient("valid", now), 1)
			tc.modify(&u)
			if u.ID == "valid" {
				_, err := s.UpdateClient(ctx, u)
				refused(t, "update", err)
			}
		})
	}
	list, err := s.ListClients(ctx)
	noErr(t, "list clients", err)
	if len(list) != 1 {
		t.Fatalf("listed %q, want only the valid client", clientIDs(list))
	}
	sameRecord(t, "valid client after refused updates", list[0], withVersion(fullClient("valid", now), 1), normClient)
}

// testClientConcurrentUpdate has 20 writers update one client from the same
// version: a compare-and-set lets exactly one of them through.
func testClientConcurrentUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := fullClient("svc-billing", registryNow())
	noErr(t, "create client", s.CreateClient(ctx, base))
	winner := oneWinner(t, 20, func(i int) error {
		c := withVersion(base, 1)
		c.Name = fmt.Sprintf("writer %d", i)
		_, err := s.UpdateClient(ctx, c)
		return err
	})
	got, err := s.GetClient(ctx, base.ID)
	noErr(t, "get client", err)
	if want := fmt.Sprintf("writer %d", winner); got.Version != 2 || got.Name != want {
		t.Fatalf("stored %q at version %d, want %q at version 2", got.Name, got.Version, want)
	}
}

func fullResourceServer(id string, now time.Time) store.ResourceServer {
	return store.ResourceServer{
		ID:                  id,
		Name:                "Billing API",
		Scopes:              []string{"invoice:read", "invoice:write"},
		AccessTokenLifetime: 10 * time.Minute,
		CreatedAt:           now.Add(-time.Hour),
		UpdatedAt:           now,
	}
}

func normResourceServer(r store.ResourceServer) store.ResourceServer {
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.Scopes = normStrings(r.Scopes)
	return r
}

func rsVersion(r store.ResourceServer, v int64) store.ResourceServer { r.Version = v; return r }

func testResourceServerMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	const id = "https://nowhere.example.com/"
	_, err := s.GetResourceServer(ctx, id)
	wantErr(t, "get unknown resource server", err, store.ErrNotFound)
	_, err = s.UpdateResourceServer(ctx, rsVersion(fullResourceServer(id, registryNow()), 1))
	wantErr(t, "update unknown resource server", err, store.ErrNotFound)
	wantErr(t, "delete unknown resource server", s.DeleteResourceServer(ctx, id), store.ErrNotFound)
	list, err := s.ListResourceServers(ctx)
	noErr(t, "list resource servers of an empty store", err)
	if len(list) != 0 {
		t.Fatalf("empty store lists %d resource servers", len(list))
	}
}

func testResourceServerDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := fullResourceServer("https://api.example.com/", registryNow())
	noErr(t, "create resource server", s.CreateResourceServer(ctx, first))
	second := first
	second.Scopes = []string{"admin"}
	wantErr(t, "create the same id again", s.CreateResourceServer(ctx, second), store.ErrAlreadyExists)
	got, err := s.GetResourceServer(ctx, first.ID)
	noErr(t, "get resource server", err)
	sameRecord(t, "resource server after a refused duplicate", got, rsVersion(first, 1), normResourceServer)
}

func testResourceServerRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	for _, r := range []store.ResourceServer{
		fullResourceServer("https://api.example.com/", now),
		fullResourceServer("https://api.example.com:8443/billing/v1", now),
		fullResourceServer("https://api.example.com/v1?tenant=a", now), // SHOULD NOT, but may (RFC 8707 §2)
		fullResourceServer("urn:example:billing", now),
		{ID: "https://minimal.example.com"},
	} {
		t.Run(r.ID, func(t *testing.T) {
			in := rsVersion(r, 7)
			noErr(t, "create resource server", s.CreateResourceServer(ctx, in))
			got, err := s.GetResourceServer(ctx, r.ID)
			noErr(t, "get resource server", err)
			sameRecord(t, "resource server read back", got, rsVersion(r, 1), normResourceServer)
		})
	}
}

func testResourceServerUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	r := fullResourceServer("https://api.example.com/", now)
	noErr(t, "create resource server", s.CreateResourceServer(ctx, r))
	next := rsVersion(r, 1)
	next.Scopes = append(next.Scopes, "invoice:delete")
	next.AccessTokenLifetime = time.Minute
	next.UpdatedAt = now.Add(time.Second)
	v2, err := s.UpdateResourceServer(ctx, next)
	noErr(t, "update at the stored version", err)
	sameRecord(t, "update's result", v2, rsVersion(next, 2), normResourceServer)
	_, err = s.UpdateResourceServer(ctx, rsVersion(r, 1))
	wantErr(t, "update at a stale version", err, store.ErrConflict)
	got, err := s.GetResourceServer(ctx, r.ID)
	noErr(t, "get resource server", err)
	sameRecord(t, "resource server after a lost update", got, rsVersion(next, 2), normResourceServer)
}

func testResourceServerDeleteList(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	ids := []string{"https://b.example.com/", "urn:example:a", "https://a.example.com/", "https://a.example.com/v2"}
	for _, id := range ids {
		noErr(t, "create "+id, s.CreateResourceServer(ctx, fullResourceServer(id, now)))
	}
	noErr(t, "delete", s.DeleteResourceServer(ctx, "https://b.example.com/"))
	wantErr(t, "delete again", s.DeleteResourceServer(ctx, "https://b.example.com/"), store.ErrNotFound)
	_, err := s.GetResourceServer(ctx, "https://b.example.com/")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	list, err := s.ListResourceServers(ctx)
	noErr(t, "list resource servers", err)
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	want := []string{"https://a.example.com/", "https://a.example.com/v2", "urn:example:a"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("listed %q, want %q (by id)", got, want)
	}
}

func testResourceServerValidation(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := registryNow()
	for _, tc := range []struct{ name, id, rsName string }{
		{"empty id", "", "API"},
		{"relative reference", "api/v1", "API"},
		{"absolute path", "/v1", "API"},
		{"network-path reference", "//api.example.com/", "API"},
		{"fragment", "https://api.example.com/#billing", "API"},
		{"empty fragment", "https://api.example.com/#", "API"},
		{"space", "https://api.example.com/a b", "API"},
		{"id of 10000 characters", "https://api.example.com/" + strings.Repeat("a", 10000), "API"},
		{"name of 10000 bytes", "https://api.example.com/", strings.Repeat("n", 10000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fullResourceServer(tc.id, now)
			r.Name = tc.rsName
			refused(t, "create", s.CreateResourceServer(ctx, r))
			if _, err := s.GetResourceServer(ctx, tc.id); err == nil {
				t.Fatalf("a refused resource server %q was stored", tc.id)
			}
		})
	}
	// An update is held to the same rules.
	r := fullResourceServer("https://api.example.com/", now)
	noErr(t, "create a valid resource server", s.CreateResourceServer(ctx, r))
	bad := rsVersion(r, 1)
	bad.Name = strings.Repeat("n", 10000)
	_, err := s.UpdateResourceServer(ctx, bad)
	refused(t, "update with a name of 10000 bytes", err)
}
