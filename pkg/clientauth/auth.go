// Package clientauth authenticates OAuth clients at Valet's endpoints (token,
// introspection, revocation): client_secret_basic and client_secret_post
// (RFC 6749 §2.3.1) for confidential clients, and none for public clients
// (RFC 6749 §2.1, §3.2.1; the client only identifies itself, and PKCE binds
// its grants). It also reads the form-encoded request those endpoints share
// (Form, ReadForm), because that is where credentials and their duplicates
// are found.
//
// Every failure is an *oautherr.Error: invalid_client (401, with a
// WWW-Authenticate: Basic challenge when the client used the Authorization
// header, RFC 6749 §5.2), invalid_request for a request that uses two
// methods at once or repeats a credential, and temporarily_unavailable (503)
// when the client registry cannot be read. No secret ever reaches an error,
// a metric label or a log.
package clientauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/oautherr"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
)

// Method is a client authentication method, as registered for
// token_endpoint_auth_methods_supported (RFC 8414 §2, RFC 7591 §2).
type Method string

// The methods Valet supports.
const (
	// MethodBasic is client_secret_basic: HTTP Basic with the form-url-encoded
	// client id and secret (RFC 6749 §2.3.1).
	MethodBasic Method = "client_secret_basic"
	// MethodPost is client_secret_post: client_id and client_secret in the
	// request body (RFC 6749 §2.3.1).
	MethodPost Method = "client_secret_post"
	// MethodNone is a public client identifying itself with client_id alone.
	MethodNone Method = "none"
)

// Methods returns the supported methods, for discovery metadata.
func Methods() []string {
	return []string{string(MethodBasic), string(MethodPost), string(MethodNone)}
}

// Bounds on presented credentials, so that garbage costs neither a store read
// nor a long hash.
const (
	// MaxClientIDLen matches the registry's bound on client ids.
	MaxClientIDLen = 128
	// MaxSecretLen is far above a generated secret (secret.Len).
	MaxSecretLen = 512
)

// DefaultRetryAfter is the Retry-After sent with a 503 when the client
// registry is unavailable.
const DefaultRetryAfter = 2 * time.Second

// Clients finds registered clients. pkg/clients.Cache implements it.
type Clients interface {
	// Client returns the client with id, or an error matching
	// store.ErrNotFound when there is none; any other error means the
	// registry could not be read. The returned client is shared and must
	// not be modified.
	Client(ctx context.Context, id string) (*store.Client, error)
}

// Verifier checks a presented secret against a stored hash.
// *secret.Hasher implements it.
type Verifier interface {
	// Verify reports whether s matches stored, in constant time.
	Verify(stored []byte, s string) (bool, error)
	// Dummy costs what Verify costs, for unknown clients.
	Dummy(s string)
}

var _ Verifier = (*secret.Hasher)(nil)

// Credentials are what one request presents: the Authorization header and
// the client_id and client_secret form parameters. CredentialsFrom builds
// them and refuses repeats.
type Credentials struct {
	// Authorization is the Authorization header, or "".
	Authorization string
	// ClientID and ClientSecret are the form parameters, "" when absent.
	ClientID     string
	ClientSecret string
}

// CredentialsFrom returns the credentials of a request whose form is f. It
// returns invalid_request when the Authorization header, client_id or
// client_secret appears more than once (RFC 6749 §3.2).
func CredentialsFrom(h http.Header, f *Form) (Credentials, error) {
	auth := h.Values("Authorization")
	if len(auth) > 1 {
		return Credentials{}, oautherr.ErrInvalidRequest.WithDescription("The Authorization header is repeated.")
	}
	if f.Count("client_id") > 1 || f.Count("client_secret") > 1 {
		return Credentials{}, oautherr.ErrInvalidRequest.WithDescription("A client credential parameter is repeated.")
	}
	c := Credentials{ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret")}
	if len(auth) == 1 {
		c.Authorization = auth[0]
	}
	return c, nil
}

// Result is an authenticated client.
type Result struct {
	// Client is the registered client; shared, never to be modified.
	Client *store.Client
	// Method is how it authenticated.
	Method Method
}

// Option configures New.
type Option func(*Authenticator)

// WithClock replaces time.Now, which decides whether a rotated-out secret has
// expired.
func WithClock(now func() time.Time) Option { return func(a *Authenticator) { a.now = now } }

// WithLogger sets the logger, told about stored hashes that cannot be checked
// (a key-encryption key missing from the ring). It never sees a secret.
func WithLogger(l *zap.Logger) Option { return func(a *Authenticator) { a.log = l } }

// WithRegisterer registers valet_client_auth_failures_total with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(a *Authenticator) { a.reg = reg } }

// WithRetryAfter sets the Retry-After of a 503. Default DefaultRetryAfter.
func WithRetryAfter(d time.Duration) Option { return func(a *Authenticator) { a.retryAfter = d } }

// Authenticator authenticates clients. It is safe for concurrent use.
type Authenticator struct {
	clients    Clients
	verifier   Verifier
	now        func() time.Time
	log        *zap.Logger
	reg        prometheus.Registerer
	retryAfter time.Duration
	failures   *prometheus.CounterVec
}

// New returns an Authenticator looking clients up in clients and checking
// secrets with v, or an error for a missing dependency or a metric that
// cannot be registered.
func New(clients Clients, v Verifier, opts ...Option) (*Authenticator, error) {
	if clients == nil || v == nil {
		return nil, errors.New("clientauth: New needs a client source and a secret verifier")
	}
	a := &Authenticator{clients: clients, verifier: v, now: time.Now, log: zap.NewNop(), retryAfter: DefaultRetryAfter}
	for _, o := range opts {
		o(a)
	}
	a.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valet_client_auth_failures_total",
		Help: "Client authentication failures by method presented and reason.",
	}, []string{"method", "reason"})
	if a.reg != nil {
		if err := a.reg.Register(a.failures); err != nil {
			return nil, fmt.Errorf("clientauth: register metrics: %w", err)
		}
	}
	return a, nil
}

// Failure reasons, the reason label of valet_client_auth_failures_total.
const (
	reasonMalformed       = "malformed"
	reasonMultipleMethods = "multiple_methods"
	reasonNoCredentials   = "no_credentials"
	reasonUnknownClient   = "unknown_client"
	reasonBadSecret       = "bad_secret"
	reasonWrongMethod     = "wrong_method"
	reasonDisabled        = "disabled"
)

// Authenticate returns the client c authenticates, and how. It refuses
// (RFC 6749 §2.3):
//   - two methods at once (Basic and client_secret), or a client_id in the
//     body naming another client than Basic: invalid_request;
//   - a malformed or non-Basic Authorization header, an unknown client, a
//     wrong or expired secret, a confidential client without a secret, a
//     public client with one, a disabled client: invalid_client, with a
//     Basic challenge when the Authorization header was used;
//   - a registry that cannot be read: temporarily_unavailable (503).
//
// Of a client's two secrets during rotation, one with an ExpiresAt at or
// before now is no longer accepted.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (Result, error) {
	method, id, sec, err := a.parse(c)
	if err != nil {
		return Result{Method: method}, err
	}
	cl, err := a.clients.Client(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if sec != "" {
			a.verifier.Dummy(sec)
		}
		return Result{Method: method}, a.fail(method, reasonUnknownClient, nil)
	case err != nil:
		return Result{Method: method}, oautherr.ErrTemporarilyUnavailable.
			WithDescription("The client registry is temporarily unavailable.").
			WithRetryAfter(a.retryAfter).WithCause(fmt.Errorf("clientauth: look up client: %w", err))
	}
	switch cl.Type {
	case store.Public:
		if method != MethodNone {
			return Result{Method: method}, a.fail(method, reasonWrongMethod, nil)
		}
	default:
		if method == MethodNone {
			return Result{Method: method}, a.fail(method, reasonWrongMethod, nil)
		}
		if !a.verify(cl, sec) {
			return Result{Method: method}, a.fail(method, reasonBadSecret, nil)
		}
	}
	if cl.Disabled {
		// Only now, after the secret: the description tells nothing to
		// someone who does not hold it.
		return Result{Method: method}, a.fail(method, reasonDisabled, nil).WithDescription("The client is disabled.")
	}
	return Result{Client: cl, Method: method}, nil
}

// parse works out the method and the presented id and secret.
func (a *Authenticator) parse(c Credentials) (Method, string, string, error) {
	if c.Authorization != "" {
		if c.ClientSecret != "" {
			return MethodBasic, "", "", a.fail(MethodBasic, reasonMultipleMethods, oautherr.ErrInvalidRequest.
				WithDescription("The client used more than one authentication method."))
		}
		id, sec, ok := parseBasic(c.Authorization)
		if !ok || !validID(id) || sec == "" || len(sec) > MaxSecretLen {
			return MethodBasic, "", "", a.fail(MethodBasic, reasonMalformed, nil)
		}
		if c.ClientID != "" && c.ClientID != id {
			return MethodBasic, "", "", a.fail(MethodBasic, reasonMultipleMethods, oautherr.ErrInvalidRequest.
				WithDescription("The client_id parameter does not match the authenticated client."))
		}
		return MethodBasic, id, sec, nil
	}
	method := MethodNone
	if c.ClientSecret != "" {
		method = MethodPost
	}
	switch {
	case c.ClientID == "" && c.ClientSecret == "":
		return method, "", "", a.fail(method, reasonNoCredentials, nil)
	case !validID(c.ClientID) || len(c.ClientSecret) > MaxSecretLen:
		return method, "", "", a.fail(method, reasonMalformed, nil)
	}
	return method, c.ClientID, c.ClientSecret, nil
}

// verify checks sec against every secret of cl that has not expired.
func (a *Authenticator) verify(cl *store.Client, sec string) bool {
	now := a.now()
	ok := false
	for i := range cl.Secrets {
		s := &cl.Secrets[i]
		if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
			continue
		}
		match, err := a.verifier.Verify(s.Hash, sec)
		if err != nil {
			a.log.Error("client secret hash cannot be checked", zap.String("client_id", cl.ID), zap.String("secret_id", s.ID), zap.Error(err))
			continue
		}
		ok = ok || match
	}
	return ok
}

// fail counts a failure and returns it: invalid_client unless e is given,
// with a Basic challenge when the Authorization header was used.
func (a *Authenticator) fail(method Method, reason string, e *oautherr.Error) *oautherr.Error {
	a.failures.WithLabelValues(string(method), reason).Inc()
	if e == nil {
		e = oautherr.ErrInvalidClient
		if method == MethodBasic {
			e = basicChallenge
		}
	}
	return e
}

// basicChallenge is invalid_client with the challenge RFC 6749 §5.2 requires
// when the client used the Authorization header.
var basicChallenge = oautherr.ErrInvalidClient.WithChallenge("Basic")

// parseBasic decodes an Authorization: Basic header (RFC 7617) into the
// client id and secret, each form-url-decoded as RFC 6749 §2.3.1 requires.
func parseBasic(h string) (id, sec string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	enc := strings.TrimLeft(h[len(prefix):], " ")
	if len(enc) > 4*(MaxClientIDLen*3+MaxSecretLen*3)/3+8 {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", false
	}
	u, p, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(u); err != nil {
		return "", "", false
	}
	if sec, err = url.QueryUnescape(p); err != nil {
		return "", "", false
	}
	return id, sec, true
}

// validID reports whether id can be a registered client id: 1..128 VSCHARs
// (RFC 6749 Appendix A.1). Anything else is refused without a store read.
func validID(id string) bool {
	if id == "" || len(id) > MaxClientIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
