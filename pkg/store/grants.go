package store

import (
	"context"
	"time"
)

// AuthCode is an authorization code (RFC 6749 §4.1.2) as stored: single use,
// bound to its client, redirect URI, PKCE challenge, scopes, resource, user
// and the family id of the grant it starts.
type AuthCode struct {
	// FID is the grant's family id; the code's token string carries it.
	FID                 string
	Hash                Hash
	ClientID            string
	RedirectURI         string
	CodeChallenge       string
	CodeChallengeMethod string
	Scopes              []string
	Resource            string
	Subject             string
	AuthTime            time.Time
	CreatedAt           time.Time
	ExpiresAt           time.Time
}

// RefreshFamily is one refresh-token family: the grant a user authorized, and
// the one live refresh token it has at any moment (MISSION §0.3).
type RefreshFamily struct {
	FID      string
	ClientID string
	Subject  string
	// SubjectType is "user" for user grants.
	SubjectType string
	Scopes      []string
	Resource    string
	// Grant is the grant type that created the family.
	Grant     string
	AuthTime  time.Time
	CreatedAt time.Time
	// IdleTimeout ends the family when unused that long; AbsoluteExpiresAt
	// ends it regardless.
	IdleTimeout       time.Duration
	AbsoluteExpiresAt time.Time
	// Generation counts rotations; the first refresh token is generation 1.
	Generation int64
	// Public marks families of public clients (shorter grace window).
	Public bool
}

// Rotation asks to rotate a family's refresh token (RFC 6749 §6, RFC 9700
// §4.14.2): the presented token is replaced by Successor in one atomic step.
type Rotation struct {
	FID       string
	Presented Hash
	ClientID  string
	// Successor is the new refresh token (its full string). The store keeps
	// it AEAD-encrypted, with the fid as associated data, for the grace
	// window only, so that an honest retry gets the very same token back.
	Successor string
	// Scopes, when not nil, narrows the family's scopes from now on; scopes
	// the family does not hold are ErrInvalidScope and change nothing.
	Scopes []string
	Now    time.Time
	// Grace is how long after a rotation the immediately superseded token
	// may be presented again; 0 disables grace. MaxGraceReplays caps the
	// number of such replays.
	Grace           time.Duration
	MaxGraceReplays int
	// ReuseEvent is the encoded family.revoked (reason refresh_reuse) event
	// the store queues in the outbox, in the same atomic step, if the
	// presented token turns out to be a superseded one.
	ReuseEvent OutboxEntry
	Cutoffs    Cutoffs
}

// RotationResult is the outcome of a successful rotation.
type RotationResult struct {
	Family RefreshFamily
	// RefreshToken is the live refresh token to hand out: Rotation.Successor,
	// or on a grace replay the successor the earlier rotation produced.
	RefreshToken string
	// GraceReplay is true when the presented token was the immediately
	// superseded one within the grace window.
	GraceReplay bool
}

// DeviceCode is a device authorization (RFC 8628 §3.2) as stored.
type DeviceCode struct {
	FID      string
	Hash     Hash
	UserCode string
	ClientID string
	Scopes   []string
	Resource string
	// Interval is the minimum polling interval; slow_down adds 5 s.
	Interval  time.Duration
	CreatedAt time.Time
	ExpiresAt time.Time
	// Status is DevicePending, DeviceApproved or DeviceDenied.
	Status DeviceStatus
	// Subject and AuthTime are set on approval.
	Subject  string
	AuthTime time.Time
}

// DeviceStatus is the state of a device authorization.
type DeviceStatus string

// Device authorization states.
const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
)

// DevicePoll is one poll of the token endpoint with a device code.
type DevicePoll struct {
	FID      string
	Hash     Hash
	ClientID string
	Now      time.Time
	// ReuseEvent is queued if the code was already redeemed.
	ReuseEvent OutboxEntry
	Cutoffs    Cutoffs
}

// PollResult tells the token endpoint what to answer.
type PollResult struct {
	// Status is the authorization's state; when DeviceApproved, the code has
	// been redeemed by this poll (single use) and Code says for whom.
	Status DeviceStatus
	// SlowDown is true when the client polled faster than Interval; the
	// stored interval has grown by 5 s (RFC 8628 §3.5).
	SlowDown bool
	Code     DeviceCode
}

// GrantStore keeps authorization codes, refresh families and device codes.
// Every method is one atomic step.
type GrantStore interface {
	// CreateAuthCode stores a code until its ExpiresAt. ErrAlreadyExists if
	// the fid is taken.
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// RedeemAuthCode redeems the code once. A second redemption returns
	// ErrReused after revoking the family (and queueing reuseEvent) so that
	// everything the first one issued dies (RFC 6749 §4.1.2). A code whose
	// hash does not match is ErrNotFound and revokes nothing: the fid is not
	// secret. ErrExpired past ExpiresAt, ErrClientMismatch for another client
	// (the code is spent then too), ErrRevoked when a cut-off covers it.
	RedeemAuthCode(ctx context.Context, fid string, h Hash, clientID string, now time.Time, reuseEvent OutboxEntry, cut Cutoffs) (AuthCode, error)

	// CreateFamily starts a family whose first refresh token hashes to
	// first. ErrRevoked if the fid was revoked already (a code reused before
	// its first redemption finished); ErrAlreadyExists if it exists.
	CreateFamily(ctx context.Context, f RefreshFamily, first Hash) error
	// RotateRefresh rotates a family's refresh token. A superseded token
	// outside the grace rule revokes the family (ErrReused); an unknown hash
	// is ErrNotFound and revokes nothing; a revoked, expired or cut-off
	// family is ErrRevoked or ErrNotFound.
	RotateRefresh(ctx context.Context, r Rotation) (RotationResult, error)
	// GetFamily returns a family by id; a revoked one returns ErrRevoked.
	GetFamily(ctx context.Context, fid string) (RefreshFamily, error)
	// LookupRefresh returns the family whose live refresh token hashes to h,
	// for introspection and revocation (RFC 7662, RFC 7009).
	LookupRefresh(ctx context.Context, fid string, h Hash) (RefreshFamily, error)

	// CreateDeviceCode stores a device authorization and its user code.
	CreateDeviceCode(ctx context.Context, d DeviceCode) error
	// LookupUserCode returns the pending authorization a user code names.
	LookupUserCode(ctx context.Context, userCode string, now time.Time) (DeviceCode, error)
	// DecideDevice approves (subject set) or denies a pending authorization.
	DecideDevice(ctx context.Context, fid string, approve bool, subject string, authTime, now time.Time) error
	// PollDevice answers one poll; see PollResult. A poll after redemption
	// returns ErrReused and revokes the family.
	PollDevice(ctx context.Context, p DevicePoll) (PollResult, error)
}
