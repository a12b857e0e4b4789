package events

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
)

// Type names an event's payload.
type Type string

// The event types of schema version 1. docs/events.md has one example of each.
const (
	// TypeTokenRevoked kills one access token by jti until its exp.
	TypeTokenRevoked Type = "token.revoked"
	// TypeFamilyRevoked kills every token of one refresh family: its refresh
	// token and every access token carrying its fid.
	TypeFamilyRevoked Type = "family.revoked"
	// TypeSubjectRevoked kills every token of a subject issued at or before a
	// cut-off.
	TypeSubjectRevoked Type = "subject.revoked"
	// TypeClientRevoked kills every token of a client issued at or before a
	// cut-off.
	TypeClientRevoked Type = "client.revoked"

	// TypeClientUpdated says a client's registration changed; caches reload it.
	TypeClientUpdated Type = "client.updated"
	// TypeClientDeleted says a client no longer exists.
	TypeClientDeleted Type = "client.deleted"
	// TypeClientSecretRotated says a client got a new secret; the old one
	// stays valid until its expiry.
	TypeClientSecretRotated Type = "client.secret_rotated"

	// TypeFamilyCreated records a new refresh family (audit, projections).
	TypeFamilyCreated Type = "family.created"
	// TypeFamilyRotated records one rotation of a refresh family.
	TypeFamilyRotated Type = "family.rotated"

	// TypeKeyPublished says a signing key is in JWKS and will sign from
	// NotBefore on.
	TypeKeyPublished Type = "key.published"
	// TypeKeyActivated says issuers now sign with the key.
	TypeKeyActivated Type = "key.activated"
	// TypeKeyRetired says the key left JWKS: every token it signed expired.
	TypeKeyRetired Type = "key.retired"
	// TypeKeyRevoked says the key is compromised: reject its tokens at once.
	TypeKeyRevoked Type = "key.revoked"

	// TypeHeartbeat is emitted by every service every few seconds so that a
	// consumer can prove it is current.
	TypeHeartbeat Type = "stream.heartbeat"
)

// Family revocation reasons.
const (
	ReasonRefreshReuse = "refresh_reuse" // a superseded refresh token was presented
	ReasonCodeReuse    = "code_reuse"    // an authorization code was redeemed twice
	ReasonAdmin        = "admin"         // an operator revoked it
	ReasonClient       = "client"        // the client revoked its own token (RFC 7009)
	ReasonLogout       = "logout"        // the user ended the session
)

// Subject kinds for SubjectRevoked: a client-credentials token's sub is a
// client id, so a cut-off must say which namespace it is in.
const (
	SubjectUser   = "user"
	SubjectClient = "client"
)

var registry = map[Type]func() Payload{
	TypeTokenRevoked:        func() Payload { return &TokenRevoked{} },
	TypeFamilyRevoked:       func() Payload { return &FamilyRevoked{} },
	TypeSubjectRevoked:      func() Payload { return &SubjectRevoked{} },
	TypeClientRevoked:       func() Payload { return &ClientRevoked{} },
	TypeClientUpdated:       func() Payload { return &ClientUpdated{} },
	TypeClientDeleted:       func() Payload { return &ClientDeleted{} },
	TypeClientSecretRotated: func() Payload { return &ClientSecretRotated{} },
	TypeFamilyCreated:       func() Payload { return &FamilyCreated{} },
	TypeFamilyRotated:       func() Payload { return &FamilyRotated{} },
	TypeKeyPublished:        func() Payload { return &KeyPublished{} },
	TypeKeyActivated:        func() Payload { return &KeyActivated{} },
	TypeKeyRetired:          func() Payload { return &KeyRetired{} },
	TypeKeyRevoked:          func() Payload { return &KeyRevoked{} },
	TypeHeartbeat:           func() Payload { return &Heartbeat{} },
}

// Types returns every type this package decodes, sorted.
func Types() []Type {
	out := make([]Type, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Known reports whether t is a type this package decodes.
func Known(t Type) bool {
	_, ok := registry[t]
	return ok
}

func missing(t Type, field string) error {
	return fmt.Errorf("%w: %s requires %s", ErrMalformed, t, field)
}

// TokenRevoked kills one access token. Consumers keep it until Exp (plus
// clock skew), after which the token is dead anyway.
type TokenRevoked struct {
	JTI string `json:"jti"`
	// Exp is the token's exp claim, seconds since the epoch.
	Exp      int64  `json:"exp"`
	ClientID string `json:"client_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// EventType returns TypeTokenRevoked.
func (*TokenRevoked) EventType() Type { return TypeTokenRevoked }
func (p *TokenRevoked) validate() error {
	if p.JTI == "" {
		return missing(TypeTokenRevoked, "jti")
	}
	if p.Exp <= 0 {
		return missing(TypeTokenRevoked, "exp")
	}
	return nil
}

// FamilyRevoked kills a refresh family and every access token whose fid claim
// names it. Consumers keep it for the maximum access-token lifetime after the
// event's time: no token of the family is minted after it.
type FamilyRevoked struct {
	FID      string `json:"fid"`
	Subject  string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
}

// EventType returns TypeFamilyRevoked.
func (*FamilyRevoked) EventType() Type { return TypeFamilyRevoked }
func (p *FamilyRevoked) validate() error {
	if p.FID == "" {
		return missing(TypeFamilyRevoked, "fid")
	}
	if p.Reason == "" {
		return missing(TypeFamilyRevoked, "reason")
	}
	return nil
}

// SubjectRevoked kills every token of a subject whose iat is at or before
// Cutoff plus the consumer's clock-skew allowance.
type SubjectRevoked struct {
	Subject string `json:"sub"`
	// SubjectType is SubjectUser or SubjectClient.
	SubjectType string `json:"sub_type"`
	// Cutoff is in seconds since the epoch.
	Cutoff int64  `json:"cutoff"`
	Reason string `json:"reason,omitempty"`
}

// EventType returns TypeSubjectRevoked.
func (*SubjectRevoked) EventType() Type { return TypeSubjectRevoked }
func (p *SubjectRevoked) validate() error {
	if p.Subject == "" {
		return missing(TypeSubjectRevoked, "sub")
	}
	if p.SubjectType != SubjectUser && p.SubjectType != SubjectClient {
		return fmt.Errorf("%w: %s sub_type must be %q or %q", ErrMalformed, TypeSubjectRevoked, SubjectUser, SubjectClient)
	}
	if p.Cutoff <= 0 {
		return missing(TypeSubjectRevoked, "cutoff")
	}
	return nil
}

// ClientRevoked kills every token issued to a client at or before Cutoff
// plus the consumer's clock-skew allowance.
type ClientRevoked struct {
	ClientID string `json:"client_id"`
	// Cutoff is in seconds since the epoch.
	Cutoff int64  `json:"cutoff"`
	Reason string `json:"reason,omitempty"`
}

// EventType returns TypeClientRevoked.
func (*ClientRevoked) EventType() Type { return TypeClientRevoked }
func (p *ClientRevoked) validate() error {
	if p.ClientID == "" {
		return missing(TypeClientRevoked, "client_id")
	}
	if p.Cutoff <= 0 {
		return missing(TypeClientRevoked, "cutoff")
	}
	return nil
}

// ClientUpdated says a client's registration changed (created, edited,
// disabled). It carries no secret material; caches reload the client.
type ClientUpdated struct {
	ClientID string `json:"client_id"`
	// Version is the registration's version after the change, so a cache
	// can ignore a stale reload.
	Version int64 `json:"version,omitempty"`
}

// EventType returns TypeClientUpdated.
func (*ClientUpdated) EventType() Type { return TypeClientUpdated }
func (p *ClientUpdated) validate() error {
	if p.ClientID == "" {
		return missing(TypeClientUpdated, "client_id")
	}
	return nil
}

// ClientDeleted says a client no longer exists.
type ClientDeleted struct {
	ClientID string `json:"client_id"`
}

// EventType returns TypeClientDeleted.
func (*ClientDeleted) EventType() Type { return TypeClientDeleted }
func (p *ClientDeleted) validate() error {
	if p.ClientID == "" {
		return missing(TypeClientDeleted, "client_id")
	}
	return nil
}

// ClientSecretRotated says a client got a new secret. The previous one stays
// valid until PreviousExpires (seconds since the epoch; 0 means revoked now).
type ClientSecretRotated struct {
	ClientID        string `json:"client_id"`
	PreviousExpires int64  `json:"previous_expires,omitempty"`
}

// EventType returns TypeClientSecretRotated.
func (*ClientSecretRotated) EventType() Type { return TypeClientSecretRotated }
func (p *ClientSecretRotated) validate() error {
	if p.ClientID == "" {
		return missing(TypeClientSecretRotated, "client_id")
	}
	return nil
}

// FamilyCreated records a new refresh family, for audit and projections.
// FID, Subject and ClientID are required.
type FamilyCreated struct {
	FID      string `json:"fid"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	// Grant is the grant that created it: "authorization_code" or
	// "urn:ietf:params:oauth:grant-type:device_code".
	Grant string `json:"grant,omitempty"`
}

// EventType returns TypeFamilyCreated.
func (*FamilyCreated) EventType() Type { return TypeFamilyCreated }
func (p *FamilyCreated) validate() error {
	switch {
	case p.FID == "":
		return missing(TypeFamilyCreated, "fid")
	case p.Subject == "":
		return missing(TypeFamilyCreated, "sub")
	case p.ClientID == "":
		return missing(TypeFamilyCreated, "client_id")
	}
	return nil
}

// FamilyRotated records that a family's refresh token rotated to Generation,
// which is at least 1: a rotation always moves past the family's first token.
type FamilyRotated struct {
	FID        string `json:"fid"`
	Generation int64  `json:"generation"`
	// Grace is true when the rotation was a grace replay that returned the
	// existing successor.
	Grace bool `json:"grace,omitempty"`
}

// EventType returns TypeFamilyRotated.
func (*FamilyRotated) EventType() Type { return TypeFamilyRotated }
func (p *FamilyRotated) validate() error {
	if p.FID == "" {
		return missing(TypeFamilyRotated, "fid")
	}
	if p.Generation <= 0 {
		return missing(TypeFamilyRotated, "generation")
	}
	return nil
}

// KeyPublished says the key KID is in the issuer's JWKS. It carries no key
// material: an edge treats it as a signal to fetch JWKS over HTTPS, and checks
// the fetched key's RFC 7638 thumbprint against Thumbprint. KID, Alg and
// Thumbprint are required.
type KeyPublished struct {
	KID string `json:"kid"`
	// Alg is the JWS algorithm the key signs with ("ES256", "EdDSA", "RS256").
	Alg string `json:"alg"`
	// Thumbprint is the base64url SHA-256 JWK thumbprint (RFC 7638).
	Thumbprint string `json:"thumbprint"`
	// NotBefore is when issuers may start signing with it (seconds).
	NotBefore int64 `json:"nbf,omitempty"`
	// JWKSURI is where to fetch it.
	JWKSURI string `json:"jwks_uri,omitempty"`
}

// EventType returns TypeKeyPublished.
func (*KeyPublished) EventType() Type { return TypeKeyPublished }
func (p *KeyPublished) validate() error {
	return validKey(TypeKeyPublished, p.KID, p.Alg, p.Thumbprint)
}

// KeyActivated says issuers sign with KID from now on. The key stream keeps
// only the latest event per kid, so for a live key this is often the only one
// a consumer sees: it repeats Alg and Thumbprint, all three required.
type KeyActivated struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// Thumbprint is the base64url SHA-256 JWK thumbprint (RFC 7638).
	Thumbprint string `json:"thumbprint"`
}

// EventType returns TypeKeyActivated.
func (*KeyActivated) EventType() Type { return TypeKeyActivated }
func (p *KeyActivated) validate() error {
	return validKey(TypeKeyActivated, p.KID, p.Alg, p.Thumbprint)
}

// KeyRetired says KID left JWKS because every token it signed has expired.
type KeyRetired struct {
	KID string `json:"kid"`
}

// EventType returns TypeKeyRetired.
func (*KeyRetired) EventType() Type   { return TypeKeyRetired }
func (p *KeyRetired) validate() error { return validKID(TypeKeyRetired, p.KID) }

// KeyRevoked says KID is compromised: every consumer rejects its tokens at
// once, whatever their exp.
type KeyRevoked struct {
	KID    string `json:"kid"`
	Reason string `json:"reason,omitempty"`
}

// EventType returns TypeKeyRevoked.
func (*KeyRevoked) EventType() Type   { return TypeKeyRevoked }
func (p *KeyRevoked) validate() error { return validKID(TypeKeyRevoked, p.KID) }

// Heartbeat proves the stream is alive: a consumer that has applied a
// heartbeat (or any event) recently and has nothing pending is current.
type Heartbeat struct {
	// Service is the emitting service ("issuer", "revocation", ...).
	Service string `json:"service"`
	// Instance identifies the emitting process.
	Instance string `json:"instance"`
}

// EventType returns TypeHeartbeat.
func (*Heartbeat) EventType() Type { return TypeHeartbeat }
func (p *Heartbeat) validate() error {
	if p.Instance == "" {
		return missing(TypeHeartbeat, "instance")
	}
	return nil
}

// validKID accepts key ids usable as one NATS subject token: the key stream
// keeps the latest event per kid by subject.
func validKID(t Type, kid string) error {
	if kid == "" {
		return missing(t, "kid")
	}
	if !validToken(kid) {
		return fmt.Errorf("%w: %s kid %q must be 1..128 characters of [A-Za-z0-9_-]", ErrMalformed, t, kid)
	}
	return nil
}

// validKey checks what an edge needs to pin a key it fetches from JWKS.
func validKey(t Type, kid, alg, thumbprint string) error {
	if err := validKID(t, kid); err != nil {
		return err
	}
	if alg == "" {
		return missing(t, "alg")
	}
	if strings.EqualFold(alg, "none") {
		return fmt.Errorf("%w: %s alg %q", ErrMalformed, t, alg)
	}
	if thumbprint == "" {
		return missing(t, "thumbprint")
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(thumbprint); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: %s thumbprint must be a base64url SHA-256 (RFC 7638)", ErrMalformed, t)
	}
	return nil
}

func validToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}
