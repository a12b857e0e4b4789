// Package bootstrap applies the configuration's declarative bootstrap section (config.Bootstrap,
// docs/bootstrap.md): resource servers, clients, admin clients and users, declared in the file
// with their secrets given as references or hashes, are created in the store at start, or
// re-applied when the store has drifted from the declaration, and each is reported as created,
// unchanged or drifted. It is how the first admin client of a deployment comes to exist, and how
// a deployment is described in version control (GitOps) rather than written to the store by hand.
//
// Apply is idempotent and safe to run from several issuer replicas at once: creates that race end
// in store.ErrAlreadyExists and updates in store.ErrConflict, and the loser re-reads the record
// and compares again, so every record is written once and every run ends with the declaration in
// the store. Records the spec does not declare are never touched; they are only counted.
//
// The drift policy: the declaration wins. A stored record that differs from its declaration is
// rewritten with the declared fields, and reported drifted with the names of the differing fields,
// never their values. A client whose stored secrets no longer verify against the declared ones
// gets exactly the declared secrets (the others stop working at once) and a
// client.secret_rotated event; any other client change gets client.updated, and disabling a
// stored client also revokes its tokens through the revoke primitive, as the admin API does
// (pkg/clientevent).
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/clientevent"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

// Actor is the actor of the events bootstrap publishes and of the revocations it causes.
const Actor = "bootstrap"

// Kinds of declared records: the kind of a Result and the kind label of the metric.
const (
	KindResourceServer = "resource_server"
	KindClient         = "client"
	KindUser           = "user"
)

// Outcome is what Apply did with one declared record.
type Outcome string

// Outcomes.
const (
	// Created: the record did not exist and was written.
	Created Outcome = "created"
	// Unchanged: the stored record already matched the declaration.
	Unchanged Outcome = "unchanged"
	// Drifted: the stored record differed and the declaration was written over it.
	Drifted Outcome = "drifted"
)

// casAttempts bounds how often one record is re-read after losing a race to another replica.
const casAttempts = 8

// Registry is what Apply needs of the store's client registry (store.ClientStore).
type Registry interface {
	CreateClient(ctx context.Context, c store.Client) error
	GetClient(ctx context.Context, id string) (store.Client, error)
	UpdateClient(ctx context.Context, c store.Client) (store.Client, error)
	ListClients(ctx context.Context) ([]store.Client, error)
	CreateResourceServer(ctx context.Context, r store.ResourceServer) error
	GetResourceServer(ctx context.Context, id string) (store.ResourceServer, error)
	UpdateResourceServer(ctx context.Context, r store.ResourceServer) (store.ResourceServer, error)
	ListResourceServers(ctx context.Context) ([]store.ResourceServer, error)
}

var _ Registry = store.ClientStore(nil)

// SecretHasher hashes a secret read from a reference with the server's key, and checks a
// declared secret against a stored hash (*secret.Hasher).
type SecretHasher interface {
	Hash(s string) []byte
	Verify(stored []byte, s string) (bool, error)
}

var _ SecretHasher = (*secret.Hasher)(nil)

// UserStore is what Apply needs of the user store (users.Store).
type UserStore interface {
	Create(ctx context.Context, u users.User) error
	Get(ctx context.Context, username string) (users.User, error)
	Put(ctx context.Context, u users.User) error
	List(ctx context.Context) ([]users.User, error)
}

var _ UserStore = users.Store(nil)

// ClientRevoker revokes every token of a client (*revoke.Revoker), when a declaration disables a
// stored client.
type ClientRevoker interface {
	Client(ctx context.Context, clientID string, cutoff time.Time, reason, actor string) error
}

var _ ClientRevoker = (*revoke.Revoker)(nil)

// Deps are Apply's dependencies.
type Deps struct {
	// Registry is the client and resource-server registry. Required.
	Registry Registry
	// Hasher hashes secrets read from references (keyed, as the admin API stores them) and
	// verifies declared secrets against stored hashes. Required when clients are declared.
	Hasher SecretHasher
	// Users is the login page's user store. Required when users are declared.
	Users UserStore
	// PasswordParams are the argon2id costs of passwords read from references; zero takes
	// users.DefaultParams, as the issuer's authenticator does.
	PasswordParams users.Params
	// Publisher announces client changes on the stream (pkg/clientevent). Without it nothing
	// is published and every client change is reported event_pending; cmd/issuer always sets it.
	Publisher clientevent.Publisher
	// Source is the events' source, the issuer identifier. Required with Publisher.
	Source string
	// Revoker revokes the tokens of a client the declaration disables. Without it, disabling a
	// stored client is an error.
	Revoker ClientRevoker
	// Logger receives one line per declared record; nil logs nothing.
	Logger *zap.Logger
	// Registerer, when set, gets valet_bootstrap_objects_total{kind,outcome}.
	Registerer prometheus.Registerer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Result is what happened to one declared record.
type Result struct {
	// Kind is KindResourceServer, KindClient or KindUser.
	Kind string
	// ID is the resource server id, client id or username.
	ID string
	// Key is where the record is declared (bootstrap.clients[1]).
	Key string
	// Outcome is created, unchanged or drifted.
	Outcome Outcome
	// Drifted names the fields that differed from the declaration, as the file names them
	// (scopes, secret, disabled); never their values. Empty unless Outcome is Drifted.
	Drifted []string
	// EventPending is set when the record is stored but its event, or the revocation of a
	// disabled client, is not yet durable on the stream: other replicas may serve the previous
	// registration until their cache entry ages out (docs/admin.md).
	EventPending bool
}

// Report is what Apply did, one Result per declared record in the order applied (resource
// servers, clients, users).
type Report struct {
	Results []Result
	// Undeclared counts, per kind, the stored records no declaration names. Apply leaves them
	// alone.
	Undeclared map[string]int
}

// Count returns how many records of kind had outcome.
func (r Report) Count(kind string, outcome Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Kind == kind && res.Outcome == outcome {
			n++
		}
	}
	return n
}

// Apply writes spec to the store: resource servers, then clients (whose references to resource
// servers are checked first, all at once), then users. It stops at the first record it cannot
// apply and returns the report so far with an error naming that record's key; what was applied
// stays applied, and the next run continues from there. A store outage is an error wrapping the
// store's; it never yields a partial write of one record.
func Apply(ctx context.Context, spec Spec, d Deps) (Report, error) {
	a, err := newApplier(d, spec)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Undeclared: map[string]int{}}
	record := func(res Result) {
		rep.Results = append(rep.Results, res)
		a.record(res)
	}
	for _, r := range spec.ResourceServers {
		res, err := a.resourceServer(ctx, r)
		if err != nil {
			return rep, fmt.Errorf("%s: resource server %q: %w", r.Key, r.ID, err)
		}
		record(res)
	}
	if err := a.checkReferences(ctx, spec.Clients); err != nil {
		return rep, err
	}
	for _, c := range spec.Clients {
		res, err := a.client(ctx, c)
		if err != nil {
			return rep, fmt.Errorf("%s: client %q: %w", c.Key, c.ID, err)
		}
		record(res)
	}
	for _, u := range spec.Users {
		res, err := a.user(ctx, u)
		if err != nil {
			return rep, fmt.Errorf("%s: user %q: %w", u.Key, u.Username, err)
		}
		record(res)
	}
	if err := a.undeclared(ctx, spec, rep.Undeclared); err != nil {
		return rep, err
	}
	a.log.Info("bootstrap applied",
		zap.Int("created", countOutcome(rep, Created)),
		zap.Int("unchanged", countOutcome(rep, Unchanged)), zap.Int("drifted", countOutcome(rep, Drifted)),
		zap.Int("undeclared_resource_servers", rep.Undeclared[KindResourceServer]),
		zap.Int("undeclared_clients", rep.Undeclared[KindClient]),
		zap.Int("undeclared_users", rep.Undeclared[KindUser]))
	return rep, nil
}

func countOutcome(r Report, o Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == o {
			n++
		}
	}
	return n
}

// applier is one run of Apply.
type applier struct {
	Deps
	log     *zap.Logger
	params  users.Params
	objects *prometheus.CounterVec
}

func newApplier(d Deps, spec Spec) (*applier, error) {
	switch {
	case d.Registry == nil:
		return nil, errors.New("bootstrap: a registry is required")
	case len(spec.Clients) > 0 && d.Hasher == nil:
		return nil, errors.New("bootstrap: clients are declared but there is no secret hasher")
	case len(spec.Users) > 0 && d.Users == nil:
		return nil, errors.New("bootstrap: users are declared but there is no user store")
	case d.Publisher != nil && d.Source == "":
		return nil, errors.New("bootstrap: an event source (the issuer identifier) is required with a publisher")
	}
	a := &applier{Deps: d, log: d.Logger, params: d.PasswordParams}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	if a.params == (users.Params{}) {
		a.params = users.DefaultParams
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if d.Registerer != nil {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valet_bootstrap_objects_total",
			Help: "Declared bootstrap records applied at start, by kind and outcome (created, unchanged, drifted).",
		}, []string{"kind", "outcome"})
		if err := d.Registerer.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("bootstrap: register metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("bootstrap: register metrics: %w", err)
			}
			vec = existing
		}
		for _, k := range []string{KindResourceServer, KindClient, KindUser} {
			for _, o := range []Outcome{Created, Unchanged, Drifted} {
				vec.WithLabelValues(k, string(o))
			}
		}
		a.objects = vec
	}
	return a, nil
}

// record logs a result and counts it.
func (a *applier) record(res Result) {
	fields := []zap.Field{zap.String("kind", res.Kind), zap.String("id", res.ID), zap.String("key", res.Key),
		zap.String("outcome", string(res.Outcome))}
	if len(res.Drifted) > 0 {
		fields = append(fields, zap.Strings("drifted", res.Drifted))
	}
	if res.EventPending {
		a.log.Warn("bootstrap object stored; its event is not yet published", append(fields, zap.Bool("event_pending", true))...)
	} else {
		a.log.Info("bootstrap object", fields...)
	}
	if a.objects != nil {
		a.objects.WithLabelValues(res.Kind, string(res.Outcome)).Inc()
	}
}

// undeclared counts the stored records the spec does not name.
func (a *applier) undeclared(ctx context.Context, spec Spec, out map[string]int) error {
	rs, err := a.Registry.ListResourceServers(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: list resource servers: %w", err)
	}
	declared := map[string]bool{}
	for _, r := range spec.ResourceServers {
		declared[r.ID] = true
	}
	for _, r := range rs {
		if !declared[r.ID] {
			out[KindResourceServer]++
		}
	}
	cs, err := a.Registry.ListClients(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: list clients: %w", err)
	}
	clear(declared)
	for _, c := range spec.Clients {
		declared[c.ID] = true
	}
	for _, c := range cs {
		if !declared[c.ID] {
			out[KindClient]++
		}
	}
	if a.Users == nil {
		return nil
	}
	us, err := a.Users.List(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap: list users: %w", err)
	}
	clear(declared)
	for _, u := range spec.Users {
		declared[u.Username] = true
	}
	for _, u := range us {
		if !declared[u.Username] {
			out[KindUser]++
		}
	}
	return nil
}
