package revocation

// The admin revocation API (admin listener, behind pkg/adminauth): JSON
// bodies, cut-offs at the time of the request, every revocation through the
// revoke primitive with the admin client as the audit actor, 200 only after
// the PubAck.
//
//	POST /admin/revoke/family   {"fid": "..."}
//	POST /admin/revoke/subject  {"sub": "...", "sub_type": "user"|"client"}
//	POST /admin/revoke/client   {"client_id": "..."}
//	POST /admin/revoke/token    {"jti": "...", "exp": 1767225600}

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/token"
)

type admin struct {
	rev Revoker
	met *metrics
	log *zap.Logger
	now func() time.Time
}

// Request is the JSON body of every admin revocation; each endpoint reads
// its own fields.
type Request struct {
	FID         string `json:"fid,omitempty"`
	Subject     string `json:"sub,omitempty"`
	SubjectType string `json:"sub_type,omitempty"`
	ClientID    string `json:"client_id,omitempty"`
	JTI         string `json:"jti,omitempty"`
	Exp         int64  `json:"exp,omitempty"`
}

// Response is the body of a successful admin revocation.
type Response struct {
	// Revoked is the kind: family, subject, client or token.
	Revoked string `json:"revoked"`
	// Cutoff is the subject or client cut-off, seconds since the epoch.
	Cutoff int64 `json:"cutoff,omitempty"`
	// Actor is the admin client the revocation is attributed to.
	Actor string `json:"actor"`
}

// maxName bounds every identifier: events carry them, and consumers refuse
// events with oversized or unprintable fields.
const maxName = 256

func validName(s string) bool {
	if s == "" || len(s) > maxName || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (a *admin) family(c echo.Context) error {
	return a.serve(c, kindFamily, func(req Request, actor string, now time.Time) (Response, error) {
		if !token.ValidFamilyID(req.FID) {
			return Response{}, bad("fid must be a Valet refresh family id.")
		}
		return Response{Revoked: kindFamily}, a.rev.Family(c.Request().Context(), req.FID, "", "", events.ReasonAdmin, actor)
	})
}

func (a *admin) subject(c echo.Context) error {
	return a.serve(c, kindSubject, func(req Request, actor string, now time.Time) (Response, error) {
		if req.SubjectType == "" {
			req.SubjectType = events.SubjectUser
		}
		if req.SubjectType != events.SubjectUser && req.SubjectType != events.SubjectClient {
			return Response{}, bad(`sub_type must be "user" or "client".`)
		}
		if !validName(req.Subject) {
			return Response{}, bad("sub must be 1 to 256 bytes of printable text.")
		}
		return Response{Revoked: kindSubject, Cutoff: now.Unix()},
			a.rev.Subject(c.Request().Context(), req.SubjectType, req.Subject, now, events.ReasonAdmin, actor)
	})
}

func (a *admin) client(c echo.Context) error {
	return a.serve(c, kindClient, func(req Request, actor string, now time.Time) (Response, error) {
		if !validName(req.ClientID) {
			return Response{}, bad("client_id must be 1 to 256 bytes of printable text.")
		}
		return Response{Revoked: kindClient, Cutoff: now.Unix()},
			a.rev.Client(c.Request().Context(), req.ClientID, now, events.ReasonAdmin, actor)
	})
}

func (a *admin) token(c echo.Context) error {
	return a.serve(c, kindToken, func(req Request, actor string, now time.Time) (Response, error) {
		if !validName(req.JTI) {
			return Response{}, bad("jti must be 1 to 256 bytes of printable text.")
		}
		if req.Exp <= 0 || req.Exp > 253402300799 {
			return Response{}, bad("exp must be the token's exp claim, seconds since the epoch.")
		}
		return Response{Revoked: kindToken},
			a.rev.Token(c.Request().Context(), req.JTI, time.Unix(req.Exp, 0), "", events.ReasonAdmin, actor)
	})
}

func bad(desc string) error { return oautherr.ErrInvalidRequest.WithDescription("%s", desc) }

// serve reads the JSON body, runs do and answers: 200 with a Response once
// the revocation is durable, 400 for a bad body, 503 with Retry-After when
// the store or NATS cannot make it durable now (the relay completes a
// revocation whose deny state was recorded).
func (a *admin) serve(c echo.Context, kind string, do func(Request, string, time.Time) (Response, error)) error {
	start := time.Now()
	r, w := c.Request(), c.Response()
	actor := adminauth.Actor(r.Context())
	res, err := a.process(r, actor, do)
	result := resultRevoked
	if err != nil {
		e := oautherr.From(err)
		result = e.Code
		if e.Status >= 500 {
			a.log.Warn("admin revocation failed", zap.String("kind", kind), zap.String("actor", actor), zap.String("error", e.Code), zap.Error(e.Cause()))
		}
		oautherr.Write(w, e)
	} else {
		a.log.Info("admin revocation", zap.String("kind", kind), zap.String("actor", actor))
		res.Actor = actor
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(res)
	}
	a.met.requests.WithLabelValues("admin", kind, result).Inc()
	a.met.latency.WithLabelValues("admin").Observe(time.Since(start).Seconds())
	return nil
}

func (a *admin) process(r *http.Request, actor string, do func(Request, string, time.Time) (Response, error)) (Response, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return Response{}, bad("The request body must be application/json.")
	}
	var req Request
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Response{}, bad("The request body is not the expected JSON object.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Response{}, bad("The request body holds more than one JSON value.")
	}
	res, err := do(req, actor, a.now())
	if err == nil {
		return res, nil
	}
	var oe *oautherr.Error
	if errors.As(err, &oe) {
		return Response{}, err
	}
	if errors.Is(err, revoke.ErrPending) {
		return Response{}, unavailable("The revocation is recorded and will take effect everywhere shortly; retry to confirm.", a.rev.RetryAfter(), err)
	}
	return Response{}, unavailable("The token store is temporarily unavailable.", retryAfter, err)
}
