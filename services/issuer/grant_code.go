package issuer

// The user grants at /token: authorization_code (RFC 6749 §4.1.3, RFC 7636
// §4.6) here and refresh_token (RFC 6749 §6) in grant_refresh.go. Both mint
// with tokenEndpoint.mint, with the user as sub and the family id as fid so
// that revoking the family kills the access tokens at every edge.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// Grants is what the user grants need of the grant store (pkg/store
// GrantStore): codes and refresh families, each step atomic.
type Grants interface {
	CreateAuthCode(ctx context.Context, c store.AuthCode) error
	RedeemAuthCode(ctx context.Context, fid string, h store.Hash, clientID string, now time.Time, reuseEvent store.OutboxEntry, cut store.Cutoffs) (store.AuthCode, error)
	CreateFamily(ctx context.Context, f store.RefreshFamily, first store.Hash) error
	RotateRefresh(ctx context.Context, r store.Rotation) (store.RotationResult, error)
}

// FamilyRevoker is what reuse detection needs of the revoke primitive
// (*revoke.Revoker): the family.revoked outbox entry the store queues in
// the step that detects reuse, and its publication afterwards.
type FamilyRevoker interface {
	FamilyEvent(fid, subject, clientID, reason, actor string) (store.OutboxEntry, error)
	Flush(ctx context.Context, e store.OutboxEntry) error
}

var _ FamilyRevoker = (*revoke.Revoker)(nil)

// userGrants holds what both user grants share.
type userGrants struct {
	t       *tokenEndpoint
	grants  Grants
	revoker FamilyRevoker
	audit   *auditQueue
	hints   *hintCache
	log     *zap.Logger
	source  string
	skew    time.Duration

	idle, absolute          time.Duration
	graceConf, gracePublic  time.Duration
	maxReplays              int
	rotations               *prometheus.CounterVec
	refreshReuse, codeReuse *prometheus.CounterVec
	auditDropped            prometheus.Counter
	rotated, graced, reused prometheus.Counter
}

func newUserGrants(cfg *config.Config, deps Deps, t *tokenEndpoint) (*userGrants, error) {
	if deps.Revoker == nil {
		return nil, errors.New("issuer: the user grants need a revoker")
	}
	tc := cfg.Tokens
	g := &userGrants{
		t: t, grants: deps.Grants, revoker: deps.Revoker, log: deps.Logger, hints: newHintCache(hintCacheSize),
		source: cfg.Issuer, skew: tc.ClockSkew,
		idle: tc.RefreshIdleLifetime, absolute: tc.RefreshAbsoluteLifetime,
		graceConf: tc.RefreshGraceConfidential, gracePublic: tc.RefreshGracePublic, maxReplays: tc.RefreshGraceMaxReplays,
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_refresh_rotations_total",
			Help: "Refresh-token grant outcomes: rotated, grace (an honest retry got the same successor), reuse (family revoked).",
		}, []string{"outcome"}),
		refreshReuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_refresh_reuse_total",
			Help: "Superseded refresh tokens presented outside the grace rule (suspected theft; the family was revoked), by client.",
		}, []string{"client_id"}),
		codeReuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_code_reuse_total",
			Help: "Authorization codes redeemed a second time (the family was revoked), by client.",
		}, []string{"client_id"}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valet_audit_events_dropped_total",
			Help: "family.created and family.rotated audit events not published (queue full or NATS error).",
		}),
	}
	for _, c := range []prometheus.Collector{g.rotations, g.refreshReuse, g.codeReuse, g.auditDropped} {
		if err := deps.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register grant metrics: %w", err)
		}
	}
	if deps.Audit != nil {
		g.audit = newAuditQueue(deps.Audit, cfg.Issuer, time.Now, g.auditDropped)
	}
	g.rotated = g.rotations.WithLabelValues("rotated")
	g.graced = g.rotations.WithLabelValues("grace")
	g.reused = g.rotations.WithLabelValues("reuse")
	return g, nil
}

// cutoffs are the hints for the store's cut-off checks.
func (g *userGrants) cutoffs(clientID, subject string) store.Cutoffs {
	return store.Cutoffs{SubjectType: events.SubjectUser, Subject: subject, ClientID: clientID, Skew: g.skew}
}

// reuse answers a detected reuse: the store has revoked the family and
// queued e; publish it now. If NATS cannot take it, the relay will: the
// family is already dead in the store, and the client's answer is the same.
func (g *userGrants) reuse(ctx context.Context, e store.OutboxEntry, fid, clientID, what string) error {
	if err := g.revoker.Flush(ctx, e); err != nil {
		g.log.Warn("family.revoked not yet durable; the relay will publish it", zap.String("fid", fid), zap.String("client_id", clientID), zap.Error(err))
	}
	g.log.Warn("credential reuse: family revoked", zap.String("what", what), zap.String("fid", fid), zap.String("client_id", clientID))
	return oautherr.ErrInvalidGrant.WithDescription("The %s was already used; the grant has been revoked.", what)
}

// publishAudit queues p for the audit stream, best effort (auditQueue).
func (g *userGrants) publishAudit(p events.Payload) { g.audit.publish(p) }

// grantStoreErr maps a store failure of a redemption to the RFC answer: a dead,
// unknown, expired or foreign credential is invalid_grant; anything else is
// unavailability (503), never a negative answer.
func grantStoreErr(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrRevoked),
		errors.Is(err, store.ErrClientMismatch):
		return oautherr.ErrInvalidGrant.WithDescription("The %s is invalid, expired or revoked.", what)
	case errors.Is(err, store.ErrInvalidScope):
		return oautherr.ErrInvalidScope.WithDescription("A refresh may narrow the granted scope, never widen it.")
	}
	return unavailable("The token store is temporarily unavailable.", err)
}

// authorizationCode is the authorization code grant (RFC 6749 §4.1.3) with
// PKCE (RFC 7636 §4.6), the RFC 9700 profile.
type authorizationCode struct{ g *userGrants }

func (*authorizationCode) grantType() string { return grantAuthorizationCode }

// handle redeems the code once, in one store step that also detects a
// second redemption (which revokes the family and publishes family.revoked
// with reason code_reuse), then checks the redirect URI and the PKCE
// verifier, starts the refresh family when the client may refresh, and
// mints the access token with the family's fid.
func (h *authorizationCode) handle(ctx context.Context, req *tokenRequest) (issued, error) {
	g, cl := h.g, req.client
	if name := req.form.Repeated(); name != "" {
		return issued{}, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	p, err := token.ParseKind(token.KindCode, req.form.Get("code"))
	if err != nil {
		return issued{}, oautherr.ErrInvalidGrant.WithDescription("The authorization code is invalid, expired or revoked.")
	}
	verifier := req.form.Get("code_verifier")
	if verifier == "" {
		// Refused before the code is spent: the legitimate client, which
		// always sends one, can still redeem it.
		g.t.met.pkceFailures.Inc()
		return issued{}, oautherr.ErrInvalidRequest.WithDescription("The code_verifier parameter is missing (PKCE is required, RFC 7636).")
	}
	ev, err := g.revoker.FamilyEvent(p.FID, "", cl.ID, events.ReasonCodeReuse, "")
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	code, err := g.grants.RedeemAuthCode(ctx, p.FID, p.Hash, cl.ID, req.now, ev, g.cutoffs(cl.ID, ""))
	switch {
	case errors.Is(err, store.ErrReused):
		g.codeReuse.WithLabelValues(cl.ID).Inc()
		return issued{}, g.reuse(ctx, ev, p.FID, cl.ID, "authorization code")
	case err != nil:
		return issued{}, grantStoreErr("authorization code", err)
	}
	if req.form.Get("redirect_uri") != code.RedirectURI {
		return issued{}, oautherr.ErrInvalidGrant.WithDescription("The redirect_uri does not match the authorization request.")
	}
	if !pkceValid(code.CodeChallengeMethod, code.CodeChallenge, verifier) {
		g.t.met.pkceFailures.Inc()
		return issued{}, oautherr.ErrInvalidGrant.WithDescription("The code_verifier does not match the code challenge.")
	}
	return g.issueRedeemed(ctx, req, p.FID, grantAuthorizationCode, "authorization code", redeemed{
		subject: code.Subject, scopes: code.Scopes, resource: code.Resource, authTime: code.AuthTime,
	})
}

// redeemed is what a redeemed code granted: whom, what and when the user
// authenticated.
type redeemed struct {
	subject  string
	scopes   []string
	resource string
	authTime time.Time
}

// issueRedeemed finishes a redeemed user grant, an authorization code or an
// approved device code (named by what in errors): the resource must still be
// registered; the refresh family starts when the client may refresh, and is
// refused as revoked when a reuse of the code got there first; the access
// token carries the family's fid, so that revoking the family kills it.
func (g *userGrants) issueRedeemed(ctx context.Context, req *tokenRequest, fid, grant, what string, r redeemed) (issued, error) {
	cl := req.client
	rs, err := g.t.clients.ResourceServer(ctx, r.resource)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return issued{}, oautherr.ErrInvalidTarget.WithDescription("The resource is no longer registered.")
	case err != nil:
		return issued{}, unavailable("The resource registry is temporarily unavailable.", err)
	}
	var refresh string
	if clientMay(cl, grantRefreshToken) {
		rt, err := token.New(token.KindRefresh, fid)
		if err != nil {
			return issued{}, oautherr.ErrServerError.WithCause(err)
		}
		fam := store.RefreshFamily{
			FID: fid, ClientID: cl.ID, Subject: r.subject, SubjectType: events.SubjectUser,
			Scopes: r.scopes, Resource: r.resource, Grant: grant,
			AuthTime: r.authTime, CreatedAt: req.now, IdleTimeout: g.idle,
			AbsoluteExpiresAt: req.now.Add(g.absolute), Generation: 1, Public: cl.Type == store.Public,
		}
		switch err := g.grants.CreateFamily(ctx, fam, rt.Hash); {
		case errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrAlreadyExists):
			return issued{}, oautherr.ErrInvalidGrant.WithDescription("The %s was revoked.", what)
		case err != nil:
			return issued{}, unavailable("The token store is temporarily unavailable.", err)
		}
		refresh = rt.Value
		g.publishAudit(&events.FamilyCreated{FID: fid, Subject: r.subject, ClientID: cl.ID, Grant: grant})
	}
	req.subject, req.fid = r.subject, fid
	req.scope = appendScopes(req.scope[:0], r.scopes)
	res, err := g.t.mint(req, r.resource, g.t.lifetime(cl, rs))
	res.refreshToken = refresh
	return res, err
}

// pkceValid checks an RFC 7636 §4.6 S256 verifier in constant time. Only
// S256 codes exist (/authorize refuses plain); the verifier must be 43 to
// 128 unreserved characters (§4.1).
func pkceValid(method, challenge, verifier string) bool {
	if method != pkceS256 || !validVerifier(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	var buf [43]byte
	base64.RawURLEncoding.Encode(buf[:], sum[:])
	return subtle.ConstantTimeCompare(buf[:], []byte(challenge)) == 1
}

// validVerifier reports whether v is an RFC 7636 §4.1 code_verifier (also
// the shape of an S256 challenge's alphabet).
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// clientMay reports whether cl is allowed grant.
func clientMay(cl *store.Client, grant string) bool {
	for _, g := range cl.GrantTypes {
		if g == grant {
			return true
		}
	}
	return false
}

// appendScopes appends scopes space-separated to dst.
func appendScopes(dst []byte, scopes []string) []byte {
	for _, s := range scopes {
		dst = appendToken(dst, s)
	}
	return dst
}

// splitScope splits a scope value (validated by grantScope) into tokens.
func splitScope(s []byte) []string {
	if len(s) == 0 {
		return nil
	}
	return strings.Split(string(s), " ")
}
