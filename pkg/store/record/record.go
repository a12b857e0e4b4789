// Package record holds the stored JSON forms of registry records (clients,
// resource servers and signing keys), shared by every store backend so that
// both keep one format: a record one backend wrote decodes in the other, and
// a change to the format is made, and pinned by a test, in one place.
//
// The encoding is encoding/json of these types. Times are stored in UTC with
// nanoseconds; slices and maps keep the difference between nil (null) and
// empty, except Client.ResourceIDs, which is left out when empty and so
// decodes as nil.
package record

import (
	"time"

	"github.com/valetauth/valet/pkg/store"
)

// Client is the stored JSON of a store.Client (RFC 6749 §2). Secrets hold
// keyed hashes only; the lifetime is nanoseconds.
type Client struct {
	ID                    string              `json:"id"`
	Name                  string              `json:"name"`
	Type                  store.ClientType    `json:"type"`
	Secrets               []Secret            `json:"secrets"`
	GrantTypes            []string            `json:"grant_types"`
	RedirectURIs          []string            `json:"redirect_uris"`
	Resources             map[string][]string `json:"resources"`
	DefaultResource       string              `json:"default_resource"`
	ResourceIDs           []string            `json:"resource_ids,omitempty"`
	AccessTokenLifetimeNS int64               `json:"access_token_lifetime_ns"`
	CORSOrigins           []string            `json:"cors_origins"`
	FirstParty            bool                `json:"first_party"`
	Disabled              bool                `json:"disabled"`
	Version               int64               `json:"version"`
	CreatedAt             time.Time           `json:"created_at"`
	UpdatedAt             time.Time           `json:"updated_at"`
}

// Secret is one stored client secret: its keyed hash, never the secret.
type Secret struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// FromClient returns the record to store for c, with its times in UTC.
func FromClient(c store.Client) Client {
	var secrets []Secret
	if c.Secrets != nil {
		secrets = make([]Secret, len(c.Secrets))
		for i, sec := range c.Secrets {
			secrets[i] = Secret{
				ID:        sec.ID,
				Hash:      sec.Hash,
				CreatedAt: sec.CreatedAt.UTC(),
				ExpiresAt: sec.ExpiresAt.UTC(),
			}
		}
	}
	return Client{
		ID:                    c.ID,
		Name:                  c.Name,
		Type:                  c.Type,
		Secrets:               secrets,
		GrantTypes:            c.GrantTypes,
		RedirectURIs:          c.RedirectURIs,
		Resources:             c.Resources,
		DefaultResource:       c.DefaultResource,
		ResourceIDs:           c.ResourceIDs,
		AccessTokenLifetimeNS: int64(c.AccessTokenLifetime),
		CORSOrigins:           c.CORSOrigins,
		FirstParty:            c.FirstParty,
		Disabled:              c.Disabled,
		Version:               c.Version,
		CreatedAt:             c.CreatedAt.UTC(),
		UpdatedAt:             c.UpdatedAt.UTC(),
	}
}

// Client returns the store.Client that r records.
func (r Client) Client() store.Client {
	var secrets []store.Secret
	if r.Secrets != nil {
		secrets = make([]store.Secret, len(r.Secrets))
		for i, sec := range r.Secrets {
			secrets[i] = store.Secret{
				ID:        sec.ID,
				Hash:      sec.Hash,
				CreatedAt: sec.CreatedAt,
				ExpiresAt: sec.ExpiresAt,
			}
		}
	}
	return store.Client{
		ID:                  r.ID,
		Name:                r.Name,
		Type:                r.Type,
		Secrets:             secrets,
		GrantTypes:          r.GrantTypes,
		RedirectURIs:        r.RedirectURIs,
		Resources:           r.Resources,
		DefaultResource:     r.DefaultResource,
		ResourceIDs:         r.ResourceIDs,
		AccessTokenLifetime: time.Duration(r.AccessTokenLifetimeNS),
		CORSOrigins:         r.CORSOrigins,
		FirstParty:          r.FirstParty,
		Disabled:            r.Disabled,
		Version:             r.Version,
		CreatedAt:           r.CreatedAt,
		UpdatedAt:           r.UpdatedAt,
	}
}

// ResourceServer is the stored JSON of a store.ResourceServer (an RFC 8707
// resource); the lifetime is nanoseconds.
type ResourceServer struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	Scopes                []string  `json:"scopes"`
	AccessTokenLifetimeNS int64     `json:"access_token_lifetime_ns"`
	Version               int64     `json:"version"`
	CreatedAt             time.Time `json:"created_at"`
	UpdatedAt             time.Time `json:"updated_at"`
}

// FromResourceServer returns the record to store for r, with its times in
// UTC.
func FromResourceServer(r store.ResourceServer) ResourceServer {
	return ResourceServer{
		ID:                    r.ID,
		Name:                  r.Name,
		Scopes:                r.Scopes,
		AccessTokenLifetimeNS: int64(r.AccessTokenLifetime),
		Version:               r.Version,
		CreatedAt:             r.CreatedAt.UTC(),
		UpdatedAt:             r.UpdatedAt.UTC(),
	}
}

// ResourceServer returns the store.ResourceServer that r records.
func (r ResourceServer) ResourceServer() store.ResourceServer {
	return store.ResourceServer{
		ID:                  r.ID,
		Name:                r.Name,
		Scopes:              r.Scopes,
		AccessTokenLifetime: time.Duration(r.AccessTokenLifetimeNS),
		Version:             r.Version,
		CreatedAt:           r.CreatedAt,
		UpdatedAt:           r.UpdatedAt,
	}
}

// SigningKey is the stored JSON of a store.SigningKey. Sealed is the AEAD
// ciphertext of the private key; the clear key is never stored (MISSION
// §0.5).
type SigningKey struct {
	KID        string         `json:"kid"`
	Alg        string         `json:"alg"`
	PublicJWK  []byte         `json:"public_jwk"`
	Sealed     []byte         `json:"sealed"`
	KEKID      string         `json:"kek_id"`
	State      store.KeyState `json:"state"`
	CreatedAt  time.Time      `json:"created_at"`
	ActivateAt time.Time      `json:"activate_at"`
	RetireAt   time.Time      `json:"retire_at"`
	Version    int64          `json:"version"`
}

// FromSigningKey returns the record to store for k, with its times in UTC.
func FromSigningKey(k store.SigningKey) SigningKey {
	return SigningKey{
		KID:        k.KID,
		Alg:        k.Alg,
		PublicJWK:  k.PublicJWK,
		Sealed:     k.Sealed,
		KEKID:      k.KEKID,
		State:      k.State,
		CreatedAt:  k.CreatedAt.UTC(),
		ActivateAt: k.ActivateAt.UTC(),
		RetireAt:   k.RetireAt.UTC(),
		Version:    k.Version,
	}
}

// SigningKey returns the store.SigningKey that r records.
func (r SigningKey) SigningKey() store.SigningKey {
	return store.SigningKey{
		KID:        r.KID,
		Alg:        r.Alg,
		PublicJWK:  r.PublicJWK,
		Sealed:     r.Sealed,
		KEKID:      r.KEKID,
		State:      r.State,
		CreatedAt:  r.CreatedAt,
		ActivateAt: r.ActivateAt,
		RetireAt:   r.RetireAt,
		Version:    r.Version,
	}
}
