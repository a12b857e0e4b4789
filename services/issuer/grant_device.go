package issuer

import (
	"context"
	"errors"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// deviceGrant is the device authorization grant at /token (RFC 8628 §3.4,
// §3.5): one store step per poll.
type deviceGrant struct {
	g      *userGrants
	grants DeviceGrants
}

// newDeviceGrant returns the device grant handler, or nil when the grant
// store has no device codes.
func newDeviceGrant(deps Deps, g *userGrants) grantHandler {
	dg := deviceGrantsOf(deps)
	if dg == nil {
		return nil
	}
	return &deviceGrant{g: g, grants: dg}
}

func (*deviceGrant) grantType() string { return grantDeviceCode }

// handle answers one poll:
//   - pending: authorization_pending, or slow_down when polled faster than
//     the interval (which then grows by 5 s, §3.5);
//   - denied: access_denied (400, §3.5);
//   - past its expiry: expired_token;
//   - another client's code, an unknown or revoked one: invalid_grant;
//   - approved: redeemed now (single use), a refresh family started when the
//     client may refresh, and an access token with its fid, as for the code
//     grant;
//   - a poll after the redemption: invalid_grant, and the store has revoked
//     the family and queued family.revoked (reason code_reuse), published
//     here, so everything the first redemption issued dies.
func (h *deviceGrant) handle(ctx context.Context, req *tokenRequest) (issued, error) {
	g, cl := h.g, req.client
	// x/oauth2 repeats the configured scope on every poll; the granted
	// scope is the one stored at /device_authorization.
	if name := req.form.Repeated(); name != "" {
		return issued{}, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	p, err := token.ParseKind(token.KindDevice, req.form.Get("device_code"))
	if err != nil {
		return issued{}, oautherr.ErrInvalidGrant.WithDescription("The device code is invalid, expired or revoked.")
	}
	ev, err := g.revoker.FamilyEvent(p.FID, "", cl.ID, events.ReasonCodeReuse, "")
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	res, err := h.grants.PollDevice(ctx, store.DevicePoll{
		FID: p.FID, Hash: p.Hash, ClientID: cl.ID, Now: req.now, ReuseEvent: ev, Cutoffs: g.cutoffs(cl.ID, ""),
	})
	switch {
	case errors.Is(err, store.ErrReused):
		g.codeReuse.WithLabelValues(cl.ID).Inc()
		return issued{}, g.reuse(ctx, ev, p.FID, cl.ID, "device code")
	case errors.Is(err, store.ErrExpired):
		return issued{}, oautherr.ErrExpiredToken.WithDescription("The device code has expired; start again.")
	case err != nil:
		return issued{}, grantStoreErr("device code", err)
	}
	switch res.Status {
	case store.DevicePending:
		if res.SlowDown {
			return issued{}, oautherr.ErrSlowDown
		}
		return issued{}, oautherr.ErrAuthorizationPending
	case store.DeviceDenied:
		return issued{}, oautherr.ErrAccessDenied.WithDescription("The user denied the request.").WithStatus(400)
	case store.DeviceApproved:
	default:
		return issued{}, oautherr.ErrServerError
	}
	code := res.Code
	rs, err := g.t.clients.ResourceServer(ctx, code.Resource)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return issued{}, oautherr.ErrInvalidTarget.WithDescription("The resource is no longer registered.")
	case err != nil:
		return issued{}, unavailable("The resource registry is temporarily unavailable.", err)
	}
	var refresh string
	if clientMay(cl, grantRefreshToken) {
		rt, err := token.New(token.KindRefresh, p.FID)
		if err != nil {
			return issued{}, oautherr.ErrServerError.WithCause(err)
		}
		fam := store.RefreshFamily{
			FID: p.FID, ClientID: cl.ID, Subject: code.Subject, SubjectType: events.SubjectUser,
			Scopes: code.Scopes, Resource: code.Resource, Grant: grantDeviceCode,
			AuthTime: code.AuthTime, CreatedAt: req.now, IdleTimeout: g.idle,
			AbsoluteExpiresAt: req.now.Add(g.absolute), Generation: 1, Public: cl.Type == store.Public,
		}
		switch err := g.grants.CreateFamily(ctx, fam, rt.Hash); {
		case errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrAlreadyExists):
			return issued{}, oautherr.ErrInvalidGrant.WithDescription("The device code was revoked.")
		case err != nil:
			return issued{}, unavailable("The token store is temporarily unavailable.", err)
		}
		refresh = rt.Value
		g.publishAudit(&events.FamilyCreated{FID: p.FID, Subject: code.Subject, ClientID: cl.ID, Grant: grantDeviceCode})
	}
	req.subject, req.fid = code.Subject, p.FID
	req.scope = appendScopes(req.scope[:0], code.Scopes)
	out, err := g.t.mint(req, code.Resource, g.t.lifetime(cl, rs))
	out.refreshToken = refresh
	return out, err
}
