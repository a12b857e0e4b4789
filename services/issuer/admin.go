package issuer

// The issuer's admin API (admin listener, behind pkg/adminauth): the registry
// of clients and resource servers, client secret rotation, disabling (which
// revokes the client through the revoke primitive), and the signing-key
// operations. JSON in and out; errors are RFC 6749 §5.2-shaped bodies
// ({"error", "error_description"}) with the codes invalid_request (400),
// not_found (404), conflict (409) and temporarily_unavailable (503).
//
//	GET    /admin/clients                       list (never a secret or hash)
//	POST   /admin/clients                       create; a confidential client's secret is returned once
//	GET    /admin/clients/{id}
//	PUT    /admin/clients/{id}                  replace the mutable fields; "version" required (409 on conflict)
//	DELETE /admin/clients/{id}                  delete, and revoke its tokens (client cut-off now)
//	POST   /admin/clients/{id}/secret           rotate: {"previous_ttl": "24h"}; the new secret returned once
//	POST   /admin/clients/{id}/disable          Disabled=true, then client.revoked through the revoke primitive
//	GET|POST /admin/resource-servers, GET|PUT|DELETE /admin/resource-servers/{id} (id path-escaped)
//	POST   /admin/keys/rotate[?immediate=true]  POST /admin/keys/{kid}/revoke   POST /admin/keys/rewrap
//	GET    /admin/users                         list (never a password or hash)
//	POST   /admin/users                         create: {"username", "password"}
//	GET    /admin/users/{username}              (username path-escaped)
//	POST   /admin/users/{username}/password     reset: {"password", "revoke"}; revoke=true also cuts the subject off
//	POST   /admin/users/{username}/disable      Disabled=true, then subject.revoked through the revoke primitive
//	POST   /admin/users/{username}/enable       Disabled=false
//
// Every client change is written to the store first (compare-and-set on the
// version), then published as client.updated / client.deleted /
// client.secret_rotated with the admin client as the actor, and evicted from
// this replica's client cache. User changes are atomic in the user store
// (pkg/users.Updater) and logged with the actor; disabling a user ends its
// sessions, consents, refresh families and access tokens with a subject
// cut-off, as disabling a client does with a client cut-off.
// docs/admin.md and docs/users.md are the reference.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/clientevent"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

// AdminStore is what the admin API needs of the store: the registry and, for
// pkg/adminauth, the deny state of admin tokens.
type AdminStore interface {
	store.ClientStore
	adminauth.DenyStore
}

// AdminRevoker revokes every token of a client or of a user
// (*revoke.Revoker): what disabling either must kill.
type AdminRevoker interface {
	// Client writes a client cut-off and returns once client.revoked is
	// durable, or revoke.ErrPending when only the deny state is.
	Client(ctx context.Context, clientID string, cutoff time.Time, reason, actor string) error
	// Subject writes a subject cut-off (sessions, consents, refresh families
	// and access tokens issued before it die) and returns once
	// subject.revoked is durable, or revoke.ErrPending.
	Subject(ctx context.Context, subjectType, subject string, cutoff time.Time, reason, actor string) error
	// RetryAfter is the delay to advise while NATS is down.
	RetryAfter() time.Duration
}

var _ AdminRevoker = (*revoke.Revoker)(nil)

// UserAdmin manages the local user store (*users.Authenticator). Its users
// carry their password hashes; the API never shows them.
type UserAdmin interface {
	Add(ctx context.Context, username, password string) (users.User, error)
	Get(ctx context.Context, username string) (users.User, error)
	List(ctx context.Context) ([]users.User, error)
	SetPassword(ctx context.Context, username, password string) error
	SetDisabled(ctx context.Context, username string, disabled bool) error
}

var _ UserAdmin = (*users.Authenticator)(nil)

// redisClienter is a store that exposes its Redis client
// (*redisstore.Store): the admin API then finds the users next to it, as
// cmd/issuer keeps them.
type redisClienter interface {
	Client() goredis.UniversalClient
}

// EventPublisher publishes an event and returns once JetStream stored it
// (keys.PublisherFunc over bus.Publisher.Publish).
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event) error
}

// KeyAdmin is the on-demand side of the signing key ring (*keys.Manager).
type KeyAdmin interface {
	Rotate(ctx context.Context) (string, error)
	RotateNow(ctx context.Context) (string, error)
	Revoke(ctx context.Context, kid, reason string) error
	Rewrap(ctx context.Context) (int, error)
}

// SecretHasher hashes a new client secret for storage (*secret.Hasher).
type SecretHasher interface {
	Hash(s string) []byte
}

var _ SecretHasher = (*secret.Hasher)(nil)

// Evicter drops a client from this replica's cache (*clients.Cache).
type Evicter interface {
	Evict(id string)
}

// AdminDeps are the dependencies of the admin API. When Deps.Admin is nil
// the issuer serves no admin API (tests of other endpoints); cmd/issuer
// always sets it.
type AdminDeps struct {
	// Store is the registry (and the deny state adminauth reads).
	Store AdminStore
	// Checker verifies admin tokens with the edge's code, already started.
	Checker adminauth.Checker
	// Revoker is the revoke primitive; disabling and deleting clients, and
	// disabling users, use it.
	Revoker AdminRevoker
	// Publisher publishes the client events.
	Publisher EventPublisher
	// Keys runs the key operations.
	Keys KeyAdmin
	// Hasher hashes the secrets the API generates.
	Hasher SecretHasher
	// Cache is this replica's client cache, evicted after every change.
	Cache Evicter
	// Users is the local user store behind the login page. Nil: when Store
	// is on Redis, the users under redis.key_prefix in the same Redis (as
	// cmd/issuer keeps them, argon2id users.DefaultParams); otherwise
	// /admin/users answers 404 not_found.
	Users UserAdmin
}

// Admin API limits and defaults.
const (
	// AdminPrefix is where the admin API lives on the admin listener.
	AdminPrefix = "/admin"
	// DefaultPreviousSecretTTL is how long a rotated-out secret keeps
	// working when the request names no previous_ttl.
	DefaultPreviousSecretTTL = 24 * time.Hour
	// MaxPreviousSecretTTL bounds previous_ttl.
	MaxPreviousSecretTTL = 30 * 24 * time.Hour
	maxName              = 256
	maxListLen           = 100
	casAttempts          = 5
	// maxUserHashes bounds the argon2id hashes the admin API computes at
	// once (each holds its memory cost, 64 MiB by default).
	maxUserHashes = 2
)

// Grant types a client may be registered for.
var knownGrants = []string{"client_credentials", "authorization_code", "refresh_token", grantDeviceCode}

type adminAPI struct {
	d       AdminDeps
	log     *zap.Logger
	now     func() time.Time
	source  string
	maxLife time.Duration
	hashes  chan struct{} // argon2id slots for user passwords
}

func newAdminAPI(g *echo.Group, d AdminDeps, log *zap.Logger, now func() time.Time, source string, maxLife time.Duration) error {
	if d.Store == nil || d.Checker == nil || d.Revoker == nil || d.Publisher == nil || d.Keys == nil || d.Hasher == nil || d.Cache == nil {
		return errors.New("issuer: the admin API needs a store, checker, revoker, publisher, keys, hasher and cache")
	}
	a := &adminAPI{d: d, log: log, now: now, source: source, maxLife: maxLife, hashes: make(chan struct{}, maxUserHashes)}
	g.GET("/clients", a.listClients)
	g.POST("/clients", a.createClient)
	g.GET("/clients/:id", a.getClient)
	g.PUT("/clients/:id", a.updateClient)
	g.DELETE("/clients/:id", a.deleteClient)
	g.POST("/clients/:id/secret", a.rotateSecret)
	g.POST("/clients/:id/disable", a.disableClient)
	g.GET("/resource-servers", a.listResources)
	g.POST("/resource-servers", a.createResource)
	g.GET("/resource-servers/:id", a.getResource)
	g.PUT("/resource-servers/:id", a.updateResource)
	g.DELETE("/resource-servers/:id", a.deleteResource)
	g.POST("/keys/rotate", a.rotateKeys)
	g.POST("/keys/:kid/revoke", a.revokeKey)
	g.POST("/keys/rewrap", a.rewrapKeys)
	g.GET("/users", a.listUsers)
	g.POST("/users", a.createUser)
	g.GET("/users/:username", a.getUser)
	g.POST("/users/:username/password", a.resetPassword)
	g.POST("/users/:username/disable", func(c echo.Context) error { return a.setUserDisabled(c, true) })
	g.POST("/users/:username/enable", func(c echo.Context) error { return a.setUserDisabled(c, false) })
	return nil
}

// ClientView is the JSON form of a client. Secrets are listed by id and
// dates only; Secret is set once, in the answer that generated it.
type ClientView struct {
	ID                  string              `json:"client_id"`
	Name                string              `json:"name,omitempty"`
	Type                string              `json:"type"`
	GrantTypes          []string            `json:"grant_types"`
	RedirectURIs        []string            `json:"redirect_uris,omitempty"`
	Resources           map[string][]string `json:"resources,omitempty"`
	DefaultResource     string              `json:"default_resource,omitempty"`
	ResourceIDs         []string            `json:"resource_ids,omitempty"`
	AccessTokenLifetime int64               `json:"access_token_lifetime,omitempty"` // seconds
	CORSOrigins         []string            `json:"cors_origins,omitempty"`
	FirstParty          bool                `json:"first_party,omitempty"`
	Disabled            bool                `json:"disabled"`
	Secrets             []SecretView        `json:"secrets,omitempty"`
	Version             int64               `json:"version"`
	CreatedAt           time.Time           `json:"created_at,omitzero"`
	UpdatedAt           time.Time           `json:"updated_at,omitzero"`
	// Secret is the client secret in clear, present only in the answer to a
	// create or a rotation: it is stored only as a keyed hash.
	Secret string `json:"client_secret,omitempty"`
	// EventPending is true when the change is stored but its event could not
	// be published: other replicas may serve the previous registration until
	// their cache entry ages out (pkg/clients.DefaultClientMaxAge).
	EventPending bool `json:"event_pending,omitempty"`
}

// SecretView describes one stored secret without its hash.
type SecretView struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// ResourceServerView is the JSON form of a resource server.
type ResourceServerView struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name,omitempty"`
	Scopes              []string  `json:"scopes"`
	AccessTokenLifetime int64     `json:"access_token_lifetime,omitempty"` // seconds
	Version             int64     `json:"version"`
	CreatedAt           time.Time `json:"created_at,omitzero"`
	UpdatedAt           time.Time `json:"updated_at,omitzero"`
}

func clientView(c store.Client) ClientView {
	v := ClientView{
		ID: c.ID, Name: c.Name, Type: string(c.Type), GrantTypes: nonNil(c.GrantTypes), RedirectURIs: c.RedirectURIs,
		Resources: c.Resources, DefaultResource: c.DefaultResource, ResourceIDs: c.ResourceIDs,
		AccessTokenLifetime: int64(c.AccessTokenLifetime / time.Second), CORSOrigins: c.CORSOrigins,
		FirstParty: c.FirstParty, Disabled: c.Disabled, Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	for _, s := range c.Secrets {
		v.Secrets = append(v.Secrets, SecretView{ID: s.ID, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt})
	}
	return v
}

func resourceView(r store.ResourceServer) ResourceServerView {
	return ResourceServerView{ID: r.ID, Name: r.Name, Scopes: nonNil(r.Scopes),
		AccessTokenLifetime: int64(r.AccessTokenLifetime / time.Second), Version: r.Version,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Errors of the admin API beyond the OAuth sentinels.
var (
	errNotFound = &oautherr.Error{Code: "not_found", Status: http.StatusNotFound, Description: "No such record."}
	errConflict = &oautherr.Error{Code: "conflict", Status: http.StatusConflict,
		Description: "The record changed since it was read (version mismatch); read it again and retry."}
	errExists = &oautherr.Error{Code: "conflict", Status: http.StatusConflict, Description: "A record with this id already exists."}
)

func bad(format string, args ...any) error {
	return oautherr.ErrInvalidRequest.WithDescription(format, args...)
}

// storeErr maps a store error to its answer.
func storeErr(err error) error {
	var oe *oautherr.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe):
		return err
	case errors.Is(err, store.ErrNotFound):
		return errNotFound.WithCause(err)
	case errors.Is(err, store.ErrConflict):
		return errConflict.WithCause(err)
	case errors.Is(err, store.ErrAlreadyExists):
		return errExists.WithCause(err)
	case errors.Is(err, revoke.ErrPending):
		return oautherr.ErrTemporarilyUnavailable.WithDescription(
			"The revocation is recorded and will take effect everywhere shortly; retry to confirm.").WithCause(err)
	}
	return oautherr.ErrTemporarilyUnavailable.WithDescription("The store is temporarily unavailable.").
		WithRetryAfter(retryAfter).WithCause(err)
}

// reply writes v as JSON with status, or err as an error body; it logs the
// action with its actor (never a secret: v is not logged).
func (a *adminAPI) reply(c echo.Context, action, target string, status int, v any, err error) error {
	actor := adminauth.Actor(c.Request().Context())
	w := c.Response()
	if err != nil {
		e := oautherr.From(err)
		if e.Status >= 500 {
			a.log.Warn("admin action failed", zap.String("action", action), zap.String("target", target),
				zap.String("actor", actor), zap.String("error", e.Code), zap.Error(e.Cause()))
		}
		if errors.Is(err, revoke.ErrPending) {
			e = e.WithRetryAfter(a.d.Revoker.RetryAfter())
		}
		oautherr.Write(w, e)
		return nil
	}
	if c.Request().Method != http.MethodGet {
		a.log.Info("admin action", zap.String("action", action), zap.String("target", target), zap.String("actor", actor))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if v == nil {
		w.WriteHeader(status)
		return nil
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads one JSON object of type T from the body, refusing unknown
// fields; an empty body is allowed when emptyOK.
func decode(r *http.Request, dst any, emptyOK bool) error {
	if r.ContentLength == 0 && emptyOK {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		if emptyOK && r.Header.Get("Content-Type") == "" {
			return nil
		}
		return bad("The request body must be application/json.")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) && emptyOK {
			return nil
		}
		return bad("The request body is not the expected JSON object: %s.", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("The request body holds more than one JSON value.")
	}
	return nil
}

// jsonProblem names what was wrong with a body without echoing it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return "field " + strconv.Quote(te.Field) + " has the wrong type"
	}
	if s := err.Error(); strings.HasPrefix(s, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(s, "json: unknown field ")
	}
	return "malformed JSON"
}

func validName(s string) bool {
	if s == "" || len(s) > maxName || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return true
}

// validScope reports whether s is a scope-token (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b == '"' || b == '\\' || b > 0x7e {
			return false
		}
	}
	return true
}

// publish announces a registry change with the admin client as actor
// (pkg/clientevent, shared with declarative bootstrap); false means the
// change stands but its event is pending.
func (a *adminAPI) publish(ctx context.Context, c echo.Context, p events.Payload) bool {
	err := clientevent.Publish(ctx, a.d.Publisher, a.source, adminauth.Actor(c.Request().Context()), a.now(), p)
	if err != nil {
		a.log.Warn("admin change stored but its event is not published", zap.String("event", string(p.EventType())), zap.Error(err))
		return false
	}
	return true
}

// ---- clients

// clientInput is the body of POST and PUT /admin/clients.
type clientInput struct {
	ID                  string              `json:"client_id"`
	Name                string              `json:"name"`
	Type                string              `json:"type"`
	GrantTypes          []string            `json:"grant_types"`
	RedirectURIs        []string            `json:"redirect_uris"`
	Resources           map[string][]string `json:"resources"`
	DefaultResource     string              `json:"default_resource"`
	ResourceIDs         []string            `json:"resource_ids"`
	AccessTokenLifetime int64               `json:"access_token_lifetime"`
	CORSOrigins         []string            `json:"cors_origins"`
	FirstParty          bool                `json:"first_party"`
	Disabled            bool                `json:"disabled"`
	Version             int64               `json:"version"`
}

// validateClient checks in against the registry and returns the fields it
// sets on a client.
func (a *adminAPI) validateClient(ctx context.Context, in clientInput) (store.Client, error) {
	if !validName(in.ID) {
		return store.Client{}, bad("client_id must be 1 to 128 visible ASCII characters (RFC 6749 Appendix A.1).")
	}
	if len(in.Name) > maxName || !utf8.ValidString(in.Name) {
		return store.Client{}, bad("name must be at most 256 bytes of text.")
	}
	typ := store.ClientType(in.Type)
	if typ == "" {
		typ = store.Confidential
	}
	if typ != store.Confidential && typ != store.Public {
		return store.Client{}, bad(`type must be "confidential" or "public".`)
	}
	if len(in.GrantTypes) == 0 {
		return store.Client{}, bad("grant_types must name at least one grant type.")
	}
	for _, g := range in.GrantTypes {
		if !slices.Contains(knownGrants, g) {
			return store.Client{}, bad("grant type %q is not one of %s.", g, strings.Join(knownGrants, ", "))
		}
		if g == "client_credentials" && typ == store.Public {
			return store.Client{}, bad("A public client cannot use client_credentials (RFC 6749 §4.4).")
		}
	}
	if len(in.RedirectURIs) > maxListLen || len(in.CORSOrigins) > maxListLen || len(in.Resources) > maxListLen || len(in.ResourceIDs) > maxListLen {
		return store.Client{}, bad("Lists are limited to %d entries.", maxListLen)
	}
	for _, u := range in.RedirectURIs {
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() || p.Fragment != "" || len(u) > 2048 {
			return store.Client{}, bad("redirect URI %q must be an absolute URI without a fragment (RFC 6749 §3.1.2).", u)
		}
		if p.Scheme == "http" && !loopbackHost(p.Hostname()) {
			return store.Client{}, bad("redirect URI %q: plain http is allowed only for loopback hosts (RFC 8252 §7.3).", u)
		}
	}
	if slices.Contains(in.GrantTypes, "authorization_code") && len(in.RedirectURIs) == 0 {
		return store.Client{}, bad("authorization_code needs at least one redirect URI.")
	}
	for _, o := range in.CORSOrigins {
		p, err := url.Parse(o)
		if err != nil || p.Scheme == "" || p.Host == "" || (p.Path != "" && p.Path != "/") || p.RawQuery != "" {
			return store.Client{}, bad("CORS origin %q must be scheme://host[:port].", o)
		}
	}
	for rid, scopes := range in.Resources {
		rs, err := a.d.Store.GetResourceServer(ctx, rid)
		if errors.Is(err, store.ErrNotFound) {
			return store.Client{}, bad("resource %q is not a registered resource server.", rid)
		}
		if err != nil {
			return store.Client{}, storeErr(err)
		}
		for _, s := range scopes {
			if !slices.Contains(rs.Scopes, s) {
				return store.Client{}, bad("scope %q is not defined by resource server %q.", s, rid)
			}
		}
	}
	if in.DefaultResource != "" {
		if _, ok := in.Resources[in.DefaultResource]; !ok {
			return store.Client{}, bad("default_resource must be one of the client's resources.")
		}
	}
	for _, rid := range in.ResourceIDs {
		if _, err := a.d.Store.GetResourceServer(ctx, rid); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return store.Client{}, bad("resource_ids: %q is not a registered resource server.", rid)
			}
			return store.Client{}, storeErr(err)
		}
	}
	if in.AccessTokenLifetime < 0 || in.AccessTokenLifetime > int64(a.maxLife/time.Second) {
		return store.Client{}, bad("access_token_lifetime must be 0 (the default) to %d seconds.", int64(a.maxLife/time.Second))
	}
	life := time.Duration(in.AccessTokenLifetime) * time.Second
	cl := store.Client{
		ID: in.ID, Name: in.Name, Type: typ, GrantTypes: in.GrantTypes, RedirectURIs: in.RedirectURIs,
		Resources: in.Resources, DefaultResource: in.DefaultResource, ResourceIDs: in.ResourceIDs,
		AccessTokenLifetime: life, CORSOrigins: in.CORSOrigins, FirstParty: in.FirstParty,
	}
	// The store's own rules (e.g. client ids of 1..128 visible ASCII
	// characters) are bad input here, not a store failure: without this
	// check they would surface from the write as a 503.
	if err := store.ValidateClient(cl); err != nil {
		return store.Client{}, bad("%s.", err.Error())
	}
	return cl, nil
}

func loopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

func (a *adminAPI) newSecret(now time.Time) (string, store.Secret, error) {
	s, err := secret.New()
	if err != nil {
		return "", store.Secret{}, err
	}
	id := "s" + strconv.FormatInt(now.UnixNano(), 36)
	return s, store.Secret{ID: id, Hash: a.d.Hasher.Hash(s), CreatedAt: now}, nil
}

func (a *adminAPI) listClients(c echo.Context) error {
	cs, err := a.d.Store.ListClients(c.Request().Context())
	out := make([]ClientView, 0, len(cs))
	for _, cl := range cs {
		out = append(out, clientView(cl))
	}
	return a.reply(c, "client.list", "", http.StatusOK, map[string]any{"clients": out}, storeErr(err))
}

func (a *adminAPI) getClient(c echo.Context) error {
	cl, err := a.d.Store.GetClient(c.Request().Context(), c.Param("id"))
	return a.reply(c, "client.get", c.Param("id"), http.StatusOK, clientView(cl), storeErr(err))
}

func (a *adminAPI) createClient(c echo.Context) error {
	ctx := c.Request().Context()
	var in clientInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "client.create", "", 0, nil, err)
	}
	if in.Disabled || in.Version != 0 {
		return a.reply(c, "client.create", in.ID, 0, nil, bad("disabled and version cannot be set on create."))
	}
	cl, err := a.validateClient(ctx, in)
	if err != nil {
		return a.reply(c, "client.create", in.ID, 0, nil, err)
	}
	now := a.now()
	cl.CreatedAt, cl.UpdatedAt = now, now
	var clear string
	if cl.Type == store.Confidential {
		s, sec, err := a.newSecret(now)
		if err != nil {
			return a.reply(c, "client.create", in.ID, 0, nil, err)
		}
		clear, cl.Secrets = s, []store.Secret{sec}
	}
	if err := a.d.Store.CreateClient(ctx, cl); err != nil {
		return a.reply(c, "client.create", in.ID, 0, nil, storeErr(err))
	}
	cl.Version = 1
	a.d.Cache.Evict(cl.ID)
	v := clientView(cl)
	v.Secret = clear
	v.EventPending = !a.publish(ctx, c, clientevent.Updated(cl.ID, cl.Version))
	return a.reply(c, "client.create", cl.ID, http.StatusCreated, v, nil)
}

func (a *adminAPI) updateClient(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	var in clientInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "client.update", id, 0, nil, err)
	}
	if in.ID == "" {
		in.ID = id
	}
	if in.ID != id {
		return a.reply(c, "client.update", id, 0, nil, bad("client_id cannot be changed."))
	}
	if in.Version <= 0 {
		return a.reply(c, "client.update", id, 0, nil, bad("version (the version read) is required for an update."))
	}
	cur, err := a.d.Store.GetClient(ctx, id)
	if err != nil {
		return a.reply(c, "client.update", id, 0, nil, storeErr(err))
	}
	if in.Type == "" {
		in.Type = string(cur.Type)
	}
	if in.Type != string(cur.Type) {
		return a.reply(c, "client.update", id, 0, nil, bad("type cannot be changed; create a new client."))
	}
	if in.Disabled && !cur.Disabled {
		return a.reply(c, "client.update", id, 0, nil, bad("Disable a client with POST /admin/clients/{id}/disable, which also revokes its tokens."))
	}
	next, err := a.validateClient(ctx, in)
	if err != nil {
		return a.reply(c, "client.update", id, 0, nil, err)
	}
	next.Secrets, next.CreatedAt, next.Disabled = cur.Secrets, cur.CreatedAt, in.Disabled
	next.Version, next.UpdatedAt = in.Version, a.now()
	saved, err := a.d.Store.UpdateClient(ctx, next)
	if err != nil {
		return a.reply(c, "client.update", id, 0, nil, storeErr(err))
	}
	a.d.Cache.Evict(id)
	v := clientView(saved)
	v.EventPending = !a.publish(ctx, c, clientevent.Updated(id, saved.Version))
	return a.reply(c, "client.update", id, http.StatusOK, v, nil)
}

// modify applies fn to the stored client with compare-and-set, rereading
// on conflict.
func (a *adminAPI) modify(ctx context.Context, id string, fn func(*store.Client) error) (store.Client, error) {
	for attempt := 0; ; attempt++ {
		cur, err := a.d.Store.GetClient(ctx, id)
		if err != nil {
			return store.Client{}, err
		}
		if err := fn(&cur); err != nil {
			return store.Client{}, err
		}
		cur.UpdatedAt = a.now()
		saved, err := a.d.Store.UpdateClient(ctx, cur)
		if err == nil || !errors.Is(err, store.ErrConflict) || attempt == casAttempts-1 {
			return saved, err
		}
	}
}

// rotateInput is the body of POST /admin/clients/{id}/secret.
type rotateInput struct {
	// PreviousTTL is how long the current secret keeps working, a Go
	// duration ("24h", "0s" to end it now).
	PreviousTTL *string `json:"previous_ttl"`
}

func (a *adminAPI) rotateSecret(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	var in rotateInput
	if err := decode(c.Request(), &in, true); err != nil {
		return a.reply(c, "client.rotate_secret", id, 0, nil, err)
	}
	ttl := DefaultPreviousSecretTTL
	if in.PreviousTTL != nil {
		d, err := time.ParseDuration(*in.PreviousTTL)
		if err != nil || d < 0 || d > MaxPreviousSecretTTL {
			return a.reply(c, "client.rotate_secret", id, 0, nil, bad("previous_ttl must be a duration from 0s to %s.", MaxPreviousSecretTTL))
		}
		ttl = d
	}
	now := a.now()
	clear, sec, err := a.newSecret(now)
	if err != nil {
		return a.reply(c, "client.rotate_secret", id, 0, nil, err)
	}
	expires := now.Add(ttl)
	saved, err := a.modify(ctx, id, func(cl *store.Client) error {
		if cl.Type != store.Confidential {
			return bad("A public client has no secret.")
		}
		// Keep the newest live secret as the previous one, with its expiry;
		// anything older goes (at most two secrets).
		var prev []store.Secret
		for _, s := range cl.Secrets {
			if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
				continue
			}
			if len(prev) == 0 || s.CreatedAt.After(prev[0].CreatedAt) {
				prev = []store.Secret{s}
			}
		}
		cl.Secrets = []store.Secret{sec}
		if len(prev) == 1 && ttl > 0 {
			p := prev[0]
			if p.ExpiresAt.IsZero() || expires.Before(p.ExpiresAt) {
				p.ExpiresAt = expires
			}
			cl.Secrets = append(cl.Secrets, p)
		}
		return nil
	})
	if err != nil {
		return a.reply(c, "client.rotate_secret", id, 0, nil, storeErr(err))
	}
	a.d.Cache.Evict(id)
	v := clientView(saved)
	v.Secret = clear
	var prevExpires time.Time
	if ttl > 0 {
		prevExpires = expires
	}
	v.EventPending = !a.publish(ctx, c, clientevent.SecretRotated(id, prevExpires))
	return a.reply(c, "client.rotate_secret", id, http.StatusOK, v, nil)
}

func (a *adminAPI) disableClient(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	saved, err := a.modify(ctx, id, func(cl *store.Client) error { cl.Disabled = true; return nil })
	if err != nil {
		return a.reply(c, "client.disable", id, 0, nil, storeErr(err))
	}
	a.d.Cache.Evict(id)
	v := clientView(saved)
	v.EventPending = !a.publish(ctx, c, clientevent.Updated(id, saved.Version))
	// The cut-off comes after the store says disabled: no token issued
	// after it can predate it.
	if err := a.d.Revoker.Client(ctx, id, a.now(), events.ReasonAdmin, adminauth.Actor(ctx)); err != nil {
		return a.reply(c, "client.disable", id, 0, nil, storeErr(err))
	}
	return a.reply(c, "client.disable", id, http.StatusOK, v, nil)
}

func (a *adminAPI) deleteClient(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if err := a.d.Store.DeleteClient(ctx, id); err != nil {
		return a.reply(c, "client.delete", id, 0, nil, storeErr(err))
	}
	a.d.Cache.Evict(id)
	pending := !a.publish(ctx, c, clientevent.Deleted(id))
	// Tokens of a deleted client must not outlive it at the edges.
	if err := a.d.Revoker.Client(ctx, id, a.now(), events.ReasonAdmin, adminauth.Actor(ctx)); err != nil {
		return a.reply(c, "client.delete", id, 0, nil, storeErr(err))
	}
	return a.reply(c, "client.delete", id, http.StatusOK, map[string]any{"deleted": id, "event_pending": pending}, nil)
}

// ---- resource servers

type resourceInput struct {
	ID                  string   `json:"id"`
	Name                string   `json:"name"`
	Scopes              []string `json:"scopes"`
	AccessTokenLifetime int64    `json:"access_token_lifetime"`
	Version             int64    `json:"version"`
}

func (a *adminAPI) validateResource(in resourceInput) (store.ResourceServer, error) {
	u, err := url.Parse(in.ID)
	if err != nil || !u.IsAbs() || u.Fragment != "" || len(in.ID) > 2048 || !validName(in.ID) {
		return store.ResourceServer{}, bad("id must be an absolute URI without a fragment (RFC 8707 §2).")
	}
	if len(in.Name) > maxName || !utf8.ValidString(in.Name) {
		return store.ResourceServer{}, bad("name must be at most 256 bytes of text.")
	}
	if len(in.Scopes) > maxListLen {
		return store.ResourceServer{}, bad("At most %d scopes.", maxListLen)
	}
	for _, s := range in.Scopes {
		if !validScope(s) {
			return store.ResourceServer{}, bad("scope %q is not a scope-token (RFC 6749 §3.3).", s)
		}
	}
	if in.AccessTokenLifetime < 0 || in.AccessTokenLifetime > int64(a.maxLife/time.Second) {
		return store.ResourceServer{}, bad("access_token_lifetime must be 0 (the default) to %d seconds.", int64(a.maxLife/time.Second))
	}
	life := time.Duration(in.AccessTokenLifetime) * time.Second
	rs := store.ResourceServer{ID: in.ID, Name: in.Name, Scopes: in.Scopes, AccessTokenLifetime: life}
	if err := store.ValidateResourceServer(rs); err != nil {
		return store.ResourceServer{}, bad("%s.", err.Error())
	}
	return rs, nil
}

// resourceID is the path parameter, unescaped (ids are URIs).
func resourceID(c echo.Context) (string, error) {
	id, err := pathParam(c, "id")
	if err != nil {
		return "", bad("The resource server id in the path is not correctly escaped.")
	}
	return id, nil
}

// pathParam returns the path parameter name unescaped. Echo matches the
// escaped path only when the request's differs from the default escaping
// (URL.RawPath set, e.g. an escaped "/"); otherwise the parameter is already
// unescaped, and unescaping it again would corrupt a "%".
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	return url.PathUnescape(v)
}

func (a *adminAPI) listResources(c echo.Context) error {
	rs, err := a.d.Store.ListResourceServers(c.Request().Context())
	out := make([]ResourceServerView, 0, len(rs))
	for _, r := range rs {
		out = append(out, resourceView(r))
	}
	return a.reply(c, "resource.list", "", http.StatusOK, map[string]any{"resource_servers": out}, storeErr(err))
}

func (a *adminAPI) getResource(c echo.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return a.reply(c, "resource.get", "", 0, nil, err)
	}
	r, err := a.d.Store.GetResourceServer(c.Request().Context(), id)
	return a.reply(c, "resource.get", id, http.StatusOK, resourceView(r), storeErr(err))
}

func (a *adminAPI) createResource(c echo.Context) error {
	var in resourceInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "resource.create", "", 0, nil, err)
	}
	if in.Version != 0 {
		return a.reply(c, "resource.create", in.ID, 0, nil, bad("version cannot be set on create."))
	}
	r, err := a.validateResource(in)
	if err != nil {
		return a.reply(c, "resource.create", in.ID, 0, nil, err)
	}
	now := a.now()
	r.CreatedAt, r.UpdatedAt = now, now
	if err := a.d.Store.CreateResourceServer(c.Request().Context(), r); err != nil {
		return a.reply(c, "resource.create", in.ID, 0, nil, storeErr(err))
	}
	r.Version = 1
	return a.reply(c, "resource.create", r.ID, http.StatusCreated, resourceView(r), nil)
}

func (a *adminAPI) updateResource(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := resourceID(c)
	if err != nil {
		return a.reply(c, "resource.update", "", 0, nil, err)
	}
	var in resourceInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "resource.update", id, 0, nil, err)
	}
	if in.ID == "" {
		in.ID = id
	}
	if in.ID != id {
		return a.reply(c, "resource.update", id, 0, nil, bad("id cannot be changed."))
	}
	if in.Version <= 0 {
		return a.reply(c, "resource.update", id, 0, nil, bad("version (the version read) is required for an update."))
	}
	next, err := a.validateResource(in)
	if err != nil {
		return a.reply(c, "resource.update", id, 0, nil, err)
	}
	cur, err := a.d.Store.GetResourceServer(ctx, id)
	if err != nil {
		return a.reply(c, "resource.update", id, 0, nil, storeErr(err))
	}
	next.CreatedAt, next.UpdatedAt, next.Version = cur.CreatedAt, a.now(), in.Version
	saved, err := a.d.Store.UpdateResourceServer(ctx, next)
	return a.reply(c, "resource.update", id, http.StatusOK, resourceView(saved), storeErr(err))
}

func (a *adminAPI) deleteResource(c echo.Context) error {
	id, err := resourceID(c)
	if err != nil {
		return a.reply(c, "resource.delete", "", 0, nil, err)
	}
	err = a.d.Store.DeleteResourceServer(c.Request().Context(), id)
	return a.reply(c, "resource.delete", id, http.StatusOK, map[string]any{"deleted": id}, storeErr(err))
}

// ---- users

// UserView is the JSON form of a user. The password hash is never part of
// it.
type UserView struct {
	Username  string    `json:"username"`
	Subject   string    `json:"sub"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Revoked is true in the answer to a change that also wrote a subject
	// cut-off (disable, or a password reset with "revoke"): every session,
	// consent, refresh family and access token of the user issued until now
	// is dead, and subject.revoked is durable in the stream.
	Revoked bool `json:"revoked,omitempty"`
}

func userView(u users.User) UserView {
	return UserView{Username: u.Username, Subject: u.Subject, Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// userInput is the body of POST /admin/users and of a password reset.
type userInput struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Revoke, on a password reset, also cuts the user's subject off (as
	// after a compromise).
	Revoke bool `json:"revoke"`
}

var errNoUsers = &oautherr.Error{Code: "not_found", Status: http.StatusNotFound,
	Description: "This issuer has no local user store to manage (AdminDeps.Users)."}

// userErr maps a user-store error to its answer.
func userErr(err error) error {
	var oe *oautherr.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe):
		return err
	case errors.Is(err, users.ErrNotFound):
		return errNotFound.WithDescription("No such user.").WithCause(err)
	case errors.Is(err, users.ErrAlreadyExists):
		return errExists.WithDescription("A user with this username already exists.").WithCause(err)
	case errors.Is(err, revoke.ErrPending):
		return storeErr(err)
	}
	return oautherr.ErrTemporarilyUnavailable.WithDescription("The user store is temporarily unavailable.").
		WithRetryAfter(retryAfter).WithCause(err)
}

// username is the path's username, unescaped and checked.
func username(c echo.Context) (string, error) {
	name, err := pathParam(c, "username")
	if err != nil || !users.ValidUsername(name) {
		return "", bad("The username in the path is not a valid, correctly escaped username.")
	}
	return name, nil
}

func checkPassword(pw string) error {
	if err := users.ValidPassword(pw); err != nil {
		return bad("password must be %d to %d bytes of UTF-8 text.", users.MinPasswordLen, users.MaxPasswordLen)
	}
	return nil
}

// hashing runs fn, which hashes a password, in one of the admin API's
// argon2id slots, waiting for one as long as the request may.
func (a *adminAPI) hashing(ctx context.Context, fn func() error) error {
	select {
	case a.hashes <- struct{}{}:
	case <-ctx.Done():
		return oautherr.ErrTemporarilyUnavailable.WithDescription("Too many password changes at once; retry.").
			WithRetryAfter(retryAfter).WithCause(ctx.Err())
	}
	defer func() { <-a.hashes }()
	return fn()
}

// cutOff writes a subject cut-off for u now, after the store says what
// it says: no session or token issued after it can predate it.
func (a *adminAPI) cutOff(ctx context.Context, u users.User) error {
	return a.d.Revoker.Subject(ctx, events.SubjectUser, u.Subject, a.now(), events.ReasonAdmin, adminauth.Actor(ctx))
}

func (a *adminAPI) listUsers(c echo.Context) error {
	if a.d.Users == nil {
		return a.reply(c, "user.list", "", 0, nil, errNoUsers)
	}
	us, err := a.d.Users.List(c.Request().Context())
	out := make([]UserView, 0, len(us))
	for _, u := range us {
		out = append(out, userView(u))
	}
	return a.reply(c, "user.list", "", http.StatusOK, map[string]any{"users": out}, userErr(err))
}

func (a *adminAPI) getUser(c echo.Context) error {
	if a.d.Users == nil {
		return a.reply(c, "user.get", "", 0, nil, errNoUsers)
	}
	name, err := username(c)
	if err != nil {
		return a.reply(c, "user.get", "", 0, nil, err)
	}
	u, err := a.d.Users.Get(c.Request().Context(), name)
	return a.reply(c, "user.get", name, http.StatusOK, userView(u), userErr(err))
}

func (a *adminAPI) createUser(c echo.Context) error {
	if a.d.Users == nil {
		return a.reply(c, "user.create", "", 0, nil, errNoUsers)
	}
	ctx := c.Request().Context()
	var in userInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "user.create", "", 0, nil, err)
	}
	if !users.ValidUsername(in.Username) {
		return a.reply(c, "user.create", "", 0, nil,
			bad("username must be 1 to 128 bytes of text without control characters or surrounding spaces."))
	}
	if in.Revoke {
		return a.reply(c, "user.create", in.Username, 0, nil, bad("revoke applies to a password reset only."))
	}
	if err := checkPassword(in.Password); err != nil {
		return a.reply(c, "user.create", in.Username, 0, nil, err)
	}
	var u users.User
	err := a.hashing(ctx, func() error {
		var err error
		u, err = a.d.Users.Add(ctx, in.Username, in.Password)
		return err
	})
	return a.reply(c, "user.create", in.Username, http.StatusCreated, userView(u), userErr(err))
}

func (a *adminAPI) resetPassword(c echo.Context) error {
	if a.d.Users == nil {
		return a.reply(c, "user.reset_password", "", 0, nil, errNoUsers)
	}
	ctx := c.Request().Context()
	name, err := username(c)
	if err != nil {
		return a.reply(c, "user.reset_password", "", 0, nil, err)
	}
	var in userInput
	if err := decode(c.Request(), &in, false); err != nil {
		return a.reply(c, "user.reset_password", name, 0, nil, err)
	}
	if in.Username != "" && in.Username != name {
		return a.reply(c, "user.reset_password", name, 0, nil, bad("username cannot be changed."))
	}
	if err := checkPassword(in.Password); err != nil {
		return a.reply(c, "user.reset_password", name, 0, nil, err)
	}
	if err := a.hashing(ctx, func() error { return a.d.Users.SetPassword(ctx, name, in.Password) }); err != nil {
		return a.reply(c, "user.reset_password", name, 0, nil, userErr(err))
	}
	u, err := a.d.Users.Get(ctx, name)
	if err != nil {
		return a.reply(c, "user.reset_password", name, 0, nil, userErr(err))
	}
	v := userView(u)
	if in.Revoke {
		if err := a.cutOff(ctx, u); err != nil {
			return a.reply(c, "user.reset_password", name, 0, nil, userErr(err))
		}
		v.Revoked = true
	}
	return a.reply(c, "user.reset_password", name, http.StatusOK, v, nil)
}

// setUserDisabled answers /disable and /enable. Disabling refuses every
// later login (users.Authenticator) and then, like disabling a client,
// writes a cut-off through the revoke primitive: the subject's sessions,
// remembered consents, refresh families and access tokens die everywhere.
// Enabling writes no cut-off: what the user held stays dead.
func (a *adminAPI) setUserDisabled(c echo.Context, disabled bool) error {
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	if a.d.Users == nil {
		return a.reply(c, action, "", 0, nil, errNoUsers)
	}
	ctx := c.Request().Context()
	name, err := username(c)
	if err != nil {
		return a.reply(c, action, "", 0, nil, err)
	}
	if err := a.d.Users.SetDisabled(ctx, name, disabled); err != nil {
		return a.reply(c, action, name, 0, nil, userErr(err))
	}
	u, err := a.d.Users.Get(ctx, name)
	if err != nil {
		return a.reply(c, action, name, 0, nil, userErr(err))
	}
	v := userView(u)
	if disabled {
		if err := a.cutOff(ctx, u); err != nil {
			return a.reply(c, action, name, 0, nil, userErr(err))
		}
		v.Revoked = true
	}
	return a.reply(c, action, name, http.StatusOK, v, nil)
}

// ---- keys

func (a *adminAPI) rotateKeys(c echo.Context) error {
	ctx := c.Request().Context()
	immediate := false
	if q := c.QueryParam("immediate"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			return a.reply(c, "keys.rotate", "", 0, nil, bad("immediate must be true or false."))
		}
		immediate = b
	}
	rotate := a.d.Keys.Rotate
	if immediate {
		rotate = a.d.Keys.RotateNow
	}
	kid, err := rotate(ctx)
	if err != nil {
		return a.reply(c, "keys.rotate", "", 0, nil, keyErr(err))
	}
	return a.reply(c, "keys.rotate", kid, http.StatusOK, map[string]any{"kid": kid, "immediate": immediate}, nil)
}

func (a *adminAPI) revokeKey(c echo.Context) error {
	kid := c.Param("kid")
	if !validName(kid) {
		return a.reply(c, "keys.revoke", "", 0, nil, bad("kid must be 1 to 256 bytes of printable text."))
	}
	ctx := c.Request().Context()
	err := a.d.Keys.Revoke(ctx, kid, "admin:"+adminauth.Actor(ctx))
	return a.reply(c, "keys.revoke", kid, http.StatusOK, map[string]any{"revoked": kid}, keyErr(err))
}

func (a *adminAPI) rewrapKeys(c echo.Context) error {
	n, err := a.d.Keys.Rewrap(c.Request().Context())
	return a.reply(c, "keys.rewrap", "", http.StatusOK, map[string]any{"rewrapped": n}, keyErr(err))
}

// keyErr maps a key-ring error: unknown kid 404, anything else 503 (the
// store or the stream did not take it; every key operation is retryable).
func keyErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound.WithDescription("No signing key with this kid.").WithCause(err)
	}
	return oautherr.ErrTemporarilyUnavailable.WithDescription("The key operation could not complete; it is safe to retry.").
		WithRetryAfter(retryAfter).WithCause(err)
}

// mountAdmin registers the admin API on the admin listener behind the
// adminauth guard (admin audience, valet:admin scope, deny state).
func mountAdmin(cfg *config.Config, srv *server.Server, d AdminDeps, log *zap.Logger, now func() time.Time) error {
	if d.Store == nil || d.Checker == nil {
		return errors.New("issuer: the admin API needs a store and a token checker")
	}
	guard, err := adminauth.New(adminauth.Config{
		Audience: adminauth.Audience(cfg.Issuer), ClockSkew: cfg.Tokens.ClockSkew, RetryAfter: retryAfter,
	}, d.Checker, d.Store)
	if err != nil {
		return err
	}
	if d.Users == nil {
		if rc, ok := d.Store.(redisClienter); ok {
			ua, err := users.NewAuthenticator(users.NewRedis(rc.Client(), cfg.Redis.KeyPrefix), users.DefaultParams)
			if err != nil {
				return fmt.Errorf("issuer: admin user store: %w", err)
			}
			d.Users = ua
		}
	}
	return newAdminAPI(srv.Admin.Group(AdminPrefix, guard.Middleware()), d, log, now, cfg.Issuer, cfg.Tokens.MaxAccessTokenLifetime)
}

// JWKSSource is a public JWK Set (*keys.Manager).
type JWKSSource interface {
	JWKS() ([]byte, error)
}

// LocalJWKS returns an http.RoundTripper for the admin token checker
// (edge.CheckerConfig.HTTPClient) that answers every fetch with src's JWKS,
// or 503 while src has none. The issuer thus verifies admin tokens with the
// edge's code without a round trip to its own public URL, which may sit
// behind a load balancer it cannot reach; the keys come from the shared key
// store, which the issuer trusts in any case.
func LocalJWKS(src JWKSSource) http.RoundTripper { return localJWKS{src} }

type localJWKS struct{ src JWKSSource }

func (t localJWKS) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	b, err := t.src.JWKS()
	status := http.StatusOK
	if err != nil {
		status, b = http.StatusServiceUnavailable, nil
	}
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)), Request: r,
	}, nil
}
