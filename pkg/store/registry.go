package store

import (
	"context"
	"time"
)

// ClientType is confidential or public (RFC 6749 §2.1).
type ClientType string

// Client types.
const (
	Confidential ClientType = "confidential"
	Public       ClientType = "public"
)

// Secret is one client secret, stored only as a keyed hash. A client holds at
// most two: during rotation the older one has an expiry.
type Secret struct {
	ID        string
	Hash      []byte
	CreatedAt time.Time
	// ExpiresAt is zero for a secret without expiry.
	ExpiresAt time.Time
}

// Client is a registered OAuth client.
type Client struct {
	ID           string
	Name         string
	Type         ClientType
	Secrets      []Secret
	GrantTypes   []string
	RedirectURIs []string
	// Resources maps each resource server the client may get tokens for to
	// the scopes it may ask there.
	Resources       map[string][]string
	DefaultResource string
	// ResourceIDs are the registered resource servers (their identifiers,
	// used as aud) this client authenticates as: at RFC 7662 introspection
	// it may learn about tokens whose aud holds one of them (§4).
	ResourceIDs []string
	// AccessTokenLifetime is zero for the resource's or global default.
	AccessTokenLifetime time.Duration
	// CORSOrigins are browser origins allowed to call the token endpoint.
	CORSOrigins []string
	// FirstParty clients may skip the consent page.
	FirstParty bool
	Disabled   bool
	// Version increases on every update; UpdateClient compares it.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ResourceServer is a registered API (RFC 8707 resource indicator).
type ResourceServer struct {
	// ID is the absolute URI used as the token's aud.
	ID                  string
	Name                string
	Scopes              []string
	AccessTokenLifetime time.Duration
	Version             int64
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// KeyState is a signing key's stage in its lifecycle.
type KeyState string

// Signing key states, in order (revoked can follow any of them).
const (
	KeyPublished KeyState = "published"
	KeyActive    KeyState = "active"
	KeyRetiring  KeyState = "retiring"
	KeyRetired   KeyState = "retired"
	KeyRevoked   KeyState = "revoked"
)

// SigningKey is a signing key as stored: the private key only sealed under a
// key-encryption key.
type SigningKey struct {
	KID string
	Alg string
	// PublicJWK is the public key as a JWK (JSON).
	PublicJWK []byte
	// Sealed is the AEAD-encrypted private key; KEKID names the key that
	// sealed it.
	Sealed    []byte
	KEKID     string
	State     KeyState
	CreatedAt time.Time
	// ActivateAt is when replicas start signing with it (published first).
	ActivateAt time.Time
	// RetireAt is when it leaves JWKS: the last token it signed has expired.
	RetireAt time.Time
	Version  int64
}

// Session is a browser login session, stored by the hash of its cookie.
type Session struct {
	Hash    Hash
	Subject string
	// Name is the login name, shown on consent pages; never an identifier
	// (Subject is).
	Name      string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
	// CSRF is the session's anti-CSRF secret's hash.
	CSRF []byte
}

// Consent is a user's remembered approval of a client's scopes at a resource.
type Consent struct {
	Subject   string
	ClientID  string
	Resource  string
	Scopes    []string
	CreatedAt time.Time
}

// ClientStore keeps clients and resource servers.
type ClientStore interface {
	// CreateClient stores c with Version 1. ErrAlreadyExists if taken.
	CreateClient(ctx context.Context, c Client) error
	// GetClient returns a client or ErrNotFound.
	GetClient(ctx context.Context, id string) (Client, error)
	// UpdateClient replaces c if the stored version equals c.Version, and
	// stores it with Version+1 (returned). ErrConflict otherwise.
	UpdateClient(ctx context.Context, c Client) (Client, error)
	// DeleteClient removes a client; ErrNotFound if there was none.
	DeleteClient(ctx context.Context, id string) error
	// ListClients returns every client ordered by id.
	ListClients(ctx context.Context) ([]Client, error)

	// CreateResourceServer, GetResourceServer, UpdateResourceServer,
	// DeleteResourceServer and ListResourceServers do the same for APIs.
	CreateResourceServer(ctx context.Context, r ResourceServer) error
	GetResourceServer(ctx context.Context, id string) (ResourceServer, error)
	UpdateResourceServer(ctx context.Context, r ResourceServer) (ResourceServer, error)
	DeleteResourceServer(ctx context.Context, id string) error
	ListResourceServers(ctx context.Context) ([]ResourceServer, error)
}

// KeyStore keeps the signing keys every issuer replica shares.
type KeyStore interface {
	// CreateKey stores k with Version 1; ErrAlreadyExists if the kid exists.
	CreateKey(ctx context.Context, k SigningKey) error
	// UpdateKey replaces k if the stored version equals k.Version
	// (ErrConflict otherwise), so replicas agree on activation.
	UpdateKey(ctx context.Context, k SigningKey) (SigningKey, error)
	// ListKeys returns every key that has not been deleted, by CreatedAt.
	ListKeys(ctx context.Context) ([]SigningKey, error)
	// DeleteKey removes a retired key.
	DeleteKey(ctx context.Context, kid string) error
}

// SessionStore keeps login sessions and remembered consents.
type SessionStore interface {
	// CreateSession stores s until ExpiresAt.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session; ErrRevoked if a subject cut-off
	// (plus skew) is at or after its CreatedAt, ErrNotFound if gone.
	GetSession(ctx context.Context, h Hash, skew time.Duration) (Session, error)
	// DeleteSession ends a session (logout); unknown sessions succeed.
	DeleteSession(ctx context.Context, h Hash) error
	// PutConsent remembers a consent for ttl.
	PutConsent(ctx context.Context, c Consent, ttl time.Duration) error
	// GetConsent returns a remembered consent; ErrRevoked if a subject or
	// client cut-off covers it.
	GetConsent(ctx context.Context, subject, clientID, resource string, skew time.Duration) (Consent, error)
	// DeleteConsent forgets one.
	DeleteConsent(ctx context.Context, subject, clientID, resource string) error
}

// Store is everything a backend implements. The conformance suite runs
// against it.
type Store interface {
	GrantStore
	RevocationStore
	ClientStore
	KeyStore
	SessionStore
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
