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
	return g.issueRedeemed(ctx, req, p.FID, grantDeviceCode, "device code", redeemed{
		subject: code.Subject, scopes: code.Scopes, resource: code.Resource, authTime: code.AuthTime,
	})
}
