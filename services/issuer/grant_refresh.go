package issuer

import (
	"context"
	"errors"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/token"
)

// refreshGrant is the refresh token grant (RFC 6749 §6) with rotation and
// reuse detection (RFC 9700 §4.14.2): every use rotates the family's one
// live refresh token in one store script.
type refreshGrant struct{ g *userGrants }

func (*refreshGrant) grantType() string { return grantRefreshToken }

// handle rotates once:
//   - the live token: the successor becomes live (outcome rotated);
//   - the immediately superseded token, by the same client, within the grace
//     window (tokens.refresh_grace_confidential / _public) and under the
//     replay cap (tokens.refresh_grace_max_replays): the same successor again
//     and a fresh access token (outcome grace; the family is intact);
//   - any other superseded token: the store revokes the family and queues
//     family.revoked (reason refresh_reuse), published here; invalid_grant
//     (outcome reuse).
//
// A scope parameter may narrow the family's scopes (from then on); a scope
// the family does not hold is invalid_scope and changes nothing.
func (h *refreshGrant) handle(ctx context.Context, req *tokenRequest) (issued, error) {
	g, cl := h.g, req.client
	if name := req.form.Repeated(); name != "" {
		return issued{}, oautherr.ErrInvalidRequest.WithDescription("A parameter is repeated: %.64s.", name)
	}
	p, err := token.ParseKind(token.KindRefresh, req.form.Get("refresh_token"))
	if err != nil {
		return issued{}, oautherr.ErrInvalidGrant.WithDescription("The refresh token is invalid, expired or revoked.")
	}
	var narrowed []string
	if s := req.form.Get("scope"); s != "" {
		for _, tok := range splitScope([]byte(s)) {
			if !validScopeToken(tok) {
				return issued{}, oautherr.ErrInvalidScope.WithDescription("The scope parameter is malformed: scope tokens separated by single spaces (RFC 6749 section 3.3).")
			}
			narrowed = append(narrowed, tok)
		}
	}
	succ, err := token.New(token.KindRefresh, p.FID)
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	ev, err := g.revoker.FamilyEvent(p.FID, "", cl.ID, events.ReasonRefreshReuse, "")
	if err != nil {
		return issued{}, oautherr.ErrServerError.WithCause(err)
	}
	grace := g.graceConf
	if cl.Type == store.Public {
		grace = g.gracePublic
	}
	cut := g.cutoffs(cl.ID, "")
	if h, ok := g.hints.get(p.FID); ok {
		cut.SubjectType, cut.Subject = h.typ, h.sub
	}
	res, err := g.grants.RotateRefresh(ctx, store.Rotation{
		FID: p.FID, Presented: p.Hash, ClientID: cl.ID, Successor: succ.Value, Scopes: narrowed,
		Now: req.now, Grace: grace, MaxGraceReplays: g.maxReplays, ReuseEvent: ev, Cutoffs: cut,
	})
	switch {
	case errors.Is(err, store.ErrReused):
		g.reused.Inc()
		g.refreshReuse.WithLabelValues(cl.ID).Inc()
		return issued{}, g.reuse(ctx, ev, p.FID, cl.ID, "refresh token")
	case err != nil:
		return issued{}, grantStoreErr("refresh token", err)
	}
	if res.GraceReplay {
		g.graced.Inc()
	} else {
		g.rotated.Inc()
	}
	fam := res.Family
	g.hints.put(p.FID, subjectHint{typ: fam.SubjectType, sub: fam.Subject})
	g.publishAudit(&events.FamilyRotated{FID: p.FID, Generation: max(fam.Generation, 1), Grace: res.GraceReplay})
	rs, err := g.t.clients.ResourceServer(ctx, fam.Resource)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return issued{}, oautherr.ErrInvalidTarget.WithDescription("The resource is no longer registered.")
	case err != nil:
		return issued{}, unavailable("The resource registry is temporarily unavailable.", err)
	}
	scopes := fam.Scopes
	if narrowed != nil {
		scopes = narrowed
	}
	req.subject, req.fid = fam.Subject, p.FID
	req.scope = appendScopes(req.scope[:0], dedupe(scopes))
	out, err := g.t.mint(req, fam.Resource, g.t.lifetime(cl, rs))
	out.refreshToken = res.RefreshToken
	return out, err
}

// dedupe returns s without repeated entries, in order.
func dedupe(s []string) []string {
	out := s[:0:0]
	for _, v := range s {
		dup := false
		for _, w := range out {
			if w == v {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}
