package record

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// Fixture times: not in UTC, with nanoseconds, so that the golden strings
// show both the conversion to UTC and the full precision.
var (
	cet     = time.FixedZone("CET", 3600)
	created = time.Date(2025, 3, 4, 10, 20, 30, 123456789, cet)
	updated = time.Date(2025, 3, 5, 11, 0, 0, 1, cet)
	later   = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

// TestGolden pins the stored JSON of fully populated records. Redis and
// valet.db files hold these bytes: a change here is a format change, which
// needs a migration, not an updated golden string.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		rec  any
		want string
	}{
		{
			name: "client",
			rec: FromClient(store.Client{
				ID: "app", Name: "App", Type: store.Confidential,
				Secrets: []store.Secret{
					{ID: "s1", Hash: []byte{1, 2, 3}, CreatedAt: created, ExpiresAt: later},
					{ID: "s2", Hash: []byte("hash"), CreatedAt: updated},
				},
				GrantTypes:          []string{"authorization_code", "refresh_token"},
				RedirectURIs:        []string{"https://app.example.com/cb"},
				Resources:           map[string][]string{"https://api.example.com": {"read", "write"}},
				DefaultResource:     "https://api.example.com",
				ResourceIDs:         []string{"https://api.example.com"},
				AccessTokenLifetime: 5 * time.Minute,
				CORSOrigins:         []string{"https://app.example.com"},
				FirstParty:          true,
				Disabled:            true,
				Version:             7,
				CreatedAt:           created,
				UpdatedAt:           updated,
			}),
			want: `{"id":"app","name":"App","type":"confidential",` +
				`"secrets":[{"id":"s1","hash":"AQID","created_at":"2025-03-04T09:20:30.123456789Z","expires_at":"2025-06-01T00:00:00Z"},` +
				`{"id":"s2","hash":"aGFzaA==","created_at":"2025-03-05T10:00:00.000000001Z","expires_at":"0001-01-01T00:00:00Z"}],` +
				`"grant_types":["authorization_code","refresh_token"],"redirect_uris":["https://app.example.com/cb"],` +
				`"resources":{"https://api.example.com":["read","write"]},"default_resource":"https://api.example.com",` +
				`"resource_ids":["https://api.example.com"],"access_token_lifetime_ns":300000000000,` +
				`"cors_origins":["https://app.example.com"],"first_party":true,"disabled":true,"version":7,` +
				`"created_at":"2025-03-04T09:20:30.123456789Z","updated_at":"2025-03-05T10:00:00.000000001Z"}`,
		},
		{
			name: "client with nil fields",
			rec:  FromClient(store.Client{ID: "app", Type: store.Public, Version: 1}),
			want: `{"id":"app","name":"","type":"public","secrets":null,"grant_types":null,"redirect_uris":null,` +
				`"resources":null,"default_resource":"","access_token_lifetime_ns":0,"cors_origins":null,` +
				`"first_party":false,"disabled":false,"version":1,` +
				`"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z"}`,
		},
		{
			name: "resource server",
			rec: FromResourceServer(store.ResourceServer{
				ID: "https://api.example.com", Name: "API", Scopes: []string{"read", "write"},
				AccessTokenLifetime: time.Hour, Version: 3, CreatedAt: created, UpdatedAt: updated,
			}),
			want: `{"id":"https://api.example.com","name":"API","scopes":["read","write"],` +
				`"access_token_lifetime_ns":3600000000000,"version":3,` +
				`"created_at":"2025-03-04T09:20:30.123456789Z","updated_at":"2025-03-05T10:00:00.000000001Z"}`,
		},
		{
			name: "signing key",
			rec: FromSigningKey(store.SigningKey{
				KID: "k1", Alg: "EdDSA", PublicJWK: []byte(`{"kty":"OKP"}`), Sealed: []byte{0xde, 0xad, 0xbe, 0xef},
				KEKID: "kek-1", State: store.KeyRetiring, CreatedAt: created, ActivateAt: updated, RetireAt: later, Version: 4,
			}),
			want: `{"kid":"k1","alg":"EdDSA","public_jwk":"eyJrdHkiOiJPS1AifQ==","sealed":"3q2+7w==","kek_id":"kek-1",` +
				`"state":"retiring","created_at":"2025-03-04T09:20:30.123456789Z",` +
				`"activate_at":"2025-03-05T10:00:00.000000001Z","retire_at":"2025-06-01T00:00:00Z","version":4}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("stored JSON changed:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// roundTrip encodes rec as stored and decodes it into a fresh value of its
// type, as a backend reads it back.
func roundTrip[R any](t *testing.T, rec R) R {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var out R
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return out
}

// TestRoundTrip checks that a stored record decodes to the value written, in
// UTC, with nil and empty slices and maps told apart (a client with no
// redirect URIs is not one whose list was never set), except ResourceIDs,
// which is omitted when empty and reads back nil.
func TestRoundTrip(t *testing.T) {
	clients := []struct {
		name string
		in   store.Client
		want store.Client
	}{
		{
			name: "nil",
			in:   store.Client{ID: "app", Type: store.Public},
			want: store.Client{ID: "app", Type: store.Public, CreatedAt: time.Time{}.UTC(), UpdatedAt: time.Time{}.UTC()},
		},
		{
			name: "empty",
			in: store.Client{ID: "app", Type: store.Confidential, Secrets: []store.Secret{}, GrantTypes: []string{},
				RedirectURIs: []string{}, Resources: map[string][]string{}, ResourceIDs: []string{}, CORSOrigins: []string{}},
			want: store.Client{ID: "app", Type: store.Confidential, Secrets: []store.Secret{}, GrantTypes: []string{},
				RedirectURIs: []string{}, Resources: map[string][]string{}, ResourceIDs: nil, CORSOrigins: []string{}},
		},
		{
			name: "populated",
			in: store.Client{ID: "app", Type: store.Confidential,
				Secrets:     []store.Secret{{ID: "s1", Hash: []byte{1}, CreatedAt: created}},
				Resources:   map[string][]string{"https://api.example.com": {}, "https://b.example.com": nil},
				ResourceIDs: []string{"https://api.example.com"}, AccessTokenLifetime: time.Nanosecond,
				CreatedAt: created, UpdatedAt: updated},
			want: store.Client{ID: "app", Type: store.Confidential,
				Secrets:     []store.Secret{{ID: "s1", Hash: []byte{1}, CreatedAt: created.UTC()}},
				Resources:   map[string][]string{"https://api.example.com": {}, "https://b.example.com": nil},
				ResourceIDs: []string{"https://api.example.com"}, AccessTokenLifetime: time.Nanosecond,
				CreatedAt: created.UTC(), UpdatedAt: updated.UTC()},
		},
	}
	for _, tc := range clients {
		t.Run("client "+tc.name, func(t *testing.T) {
			got := roundTrip(t, FromClient(tc.in)).Client()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}

	servers := []struct {
		name string
		in   store.ResourceServer
	}{
		{name: "nil", in: store.ResourceServer{ID: "https://api.example.com"}},
		{name: "empty", in: store.ResourceServer{ID: "https://api.example.com", Scopes: []string{}}},
		{name: "populated", in: store.ResourceServer{ID: "https://api.example.com", Scopes: []string{"read"},
			AccessTokenLifetime: time.Minute, Version: 2, CreatedAt: created, UpdatedAt: updated}},
	}
	for _, tc := range servers {
		t.Run("resource server "+tc.name, func(t *testing.T) {
			want := tc.in
			want.CreatedAt, want.UpdatedAt = want.CreatedAt.UTC(), want.UpdatedAt.UTC()
			if got := roundTrip(t, FromResourceServer(tc.in)).ResourceServer(); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}

	keys := []struct {
		name string
		in   store.SigningKey
	}{
		{name: "nil", in: store.SigningKey{KID: "k1", Alg: "EdDSA", State: store.KeyPublished}},
		{name: "empty", in: store.SigningKey{KID: "k1", Alg: "EdDSA", PublicJWK: []byte{}, Sealed: []byte{}, State: store.KeyPublished}},
		{name: "populated", in: store.SigningKey{KID: "k1", Alg: "EdDSA", PublicJWK: []byte(`{}`), Sealed: []byte{9},
			KEKID: "kek", State: store.KeyActive, CreatedAt: created, ActivateAt: updated, RetireAt: later, Version: 5}},
	}
	for _, tc := range keys {
		t.Run("signing key "+tc.name, func(t *testing.T) {
			want := tc.in
			want.CreatedAt, want.ActivateAt, want.RetireAt = want.CreatedAt.UTC(), want.ActivateAt.UTC(), want.RetireAt.UTC()
			if got := roundTrip(t, FromSigningKey(tc.in)).SigningKey(); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %#v\nwant %#v", got, want)
			}
		})
	}
}
