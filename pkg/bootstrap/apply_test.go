package bootstrap_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

const apiID = "https://api.example.test"

// fixture is a declaration of every kind of record with every kind of secret source, and the
// secrets behind its references.
type fixture struct {
	doc                                   string
	env                                   map[string]string
	workerSecret, hashedSecret, opsSecret string
	alicePassword, bobPassword            string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{
		workerSecret: newSecret(t), hashedSecret: newSecret(t), opsSecret: newSecret(t),
		alicePassword: "alice's long passphrase", bobPassword: "bob's passphrase",
	}
	opsFile := filepath.Join(t.TempDir(), "ops-secret")
	if err := os.WriteFile(opsFile, []byte(f.opsSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bobHash, err := users.Hash(f.bobPassword, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	f.env = map[string]string{"WORKER_SECRET": f.workerSecret, "ALICE_PASSWORD": f.alicePassword}
	f.doc = fmt.Sprintf(`bootstrap:
  resource_servers:
    - id: %[1]s
      name: API
      scopes: [read, write]
      access_token_lifetime: 5m
  clients:
    - id: worker
      name: Worker
      secret: env:WORKER_SECRET
      grant_types: [client_credentials]
      resources:
        - id: %[1]s
          scopes: [read, write]
      default_resource: %[1]s
    - id: hashed
      secret: %[2]s
      grant_types: [client_credentials]
      resources:
        - id: %[1]s
          scopes: [read]
    - id: spa
      type: public
      grant_types: [authorization_code, refresh_token]
      redirect_uris: [http://127.0.0.1/callback]
      resources:
        - id: %[1]s
          scopes: [read]
      cors_origins: [https://spa.example.test]
  admin_clients:
    - id: ops
      name: Operators
      secret: file:%[3]s
  users:
    - username: alice
      password: env:ALICE_PASSWORD
    - username: bob
      password: "%[4]s"
      disabled: true
`, apiID, secret.HashUnkeyed(f.hashedSecret), opsFile, bobHash)
	return f
}

// TestApply runs the life of a declaration on each backend: everything is created, a second
// run changes nothing, changes made behind its back are reported drifted (by field name) and
// re-applied, and disabling by declaration revokes the client's tokens.
func TestApply(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st, us := b.open(t)
			f := newFixture(t)
			spec := loadSpec(t, f.doc, f.env)
			h := newHasher(t)
			ev := newStream(t)
			reg := prometheus.NewRegistry()
			rev, err := revoke.New(revoke.Config{Source: testIssuer, Prefix: ev.prefix, Retain: time.Hour}, st, ev.pub)
			if err != nil {
				t.Fatal(err)
			}
			deps := bootstrap.Deps{
				Registry: st, Hasher: h, Users: us, PasswordParams: fastParams,
				Publisher: ev.publisher(), Source: testIssuer, Revoker: rev,
				Logger: zaptest.NewLogger(t), Registerer: reg,
			}
			aud := adminauth.Audience(testIssuer)
			auth, err := users.NewAuthenticator(us, fastParams)
			if err != nil {
				t.Fatal(err)
			}

			// A record nobody declared stays as it is.
			manual := store.Client{ID: "manual", Name: "Made by hand", Type: store.Public, GrantTypes: []string{"authorization_code"}}
			if err := st.CreateClient(ctx, manual); err != nil {
				t.Fatal(err)
			}

			// 1. Everything is created, and each client is announced by the bootstrap actor.
			rep, err := bootstrap.Apply(ctx, spec, deps)
			if err != nil {
				t.Fatalf("first apply: %v", err)
			}
			wantOutcomes(t, rep, map[string]string{
				"resource_server/" + apiID: "created", "resource_server/" + aud: "created",
				"client/worker": "created", "client/hashed": "created", "client/spa": "created", "client/ops": "created",
				"user/alice": "created", "user/bob": "created",
			})
			if rep.Undeclared[bootstrap.KindClient] != 1 || rep.Undeclared[bootstrap.KindResourceServer] != 0 {
				t.Errorf("undeclared %v, want the one manual client", rep.Undeclared)
			}
			for _, e := range ev.take(t, events.TypeClientUpdated, 4) {
				if e.Actor != bootstrap.Actor || e.Source != testIssuer {
					t.Errorf("event %s by %q from %q, want actor %q from %q", e.Type, e.Actor, e.Source, bootstrap.Actor, testIssuer)
				}
			}

			// Every secret source authenticates, and nothing is stored in clear.
			for id, sec := range map[string]string{"worker": f.workerSecret, "hashed": f.hashedSecret, "ops": f.opsSecret} {
				c, err := st.GetClient(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !verifies(t, h, c, sec) {
					t.Errorf("client %s: the declared secret does not verify", id)
				}
				for _, s := range c.Secrets {
					if strings.Contains(string(s.Hash), sec) {
						t.Errorf("client %s: secret stored in clear", id)
					}
				}
			}
			if c, _ := st.GetClient(ctx, "worker"); !strings.HasPrefix(string(c.Secrets[0].Hash), secret.FormatHMAC+"$") {
				t.Errorf("a secret read from the environment is stored as %.12s..., want the keyed hash", c.Secrets[0].Hash)
			}
			ops, _ := st.GetClient(ctx, "ops")
			if ops.Type != store.Confidential || len(ops.GrantTypes) != 1 || ops.GrantTypes[0] != "client_credentials" ||
				ops.DefaultResource != aud || len(ops.Resources[aud]) != 1 || ops.Resources[aud][0] != adminauth.Scope {
				t.Errorf("admin client stored as %+v", ops)
			}
			if rs, err := st.GetResourceServer(ctx, aud); err != nil || len(rs.Scopes) != 1 || rs.Scopes[0] != adminauth.Scope {
				t.Errorf("admin resource server %+v, %v", rs, err)
			}
			if _, err := auth.Authenticate(ctx, "alice", f.alicePassword); err != nil {
				t.Errorf("alice cannot sign in: %v", err)
			}
			if _, err := auth.Authenticate(ctx, "bob", f.bobPassword); !errors.Is(err, users.ErrInvalidCredentials) {
				t.Errorf("bob is declared disabled but signs in: %v", err)
			}

			// 2. A second run changes nothing and announces nothing.
			rep, err = bootstrap.Apply(ctx, spec, deps)
			if err != nil {
				t.Fatalf("second apply: %v", err)
			}
			for k, o := range outcomes(rep) {
				if o != "unchanged" {
					t.Errorf("second apply: %s %s, want unchanged", k, o)
				}
			}
			if got := ev.quiet(); len(got) != 0 {
				t.Errorf("second apply published %d events", len(got))
			}

			// 3. Changes made through the store are drift: reported by field and undone.
			api, _ := st.GetResourceServer(ctx, apiID)
			api.Scopes = []string{"read"}
			if _, err := st.UpdateResourceServer(ctx, api); err != nil {
				t.Fatal(err)
			}
			rotated := newSecret(t) // as if rotated through the admin API
			w, _ := st.GetClient(ctx, "worker")
			w.Name, w.Secrets = "Renamed", []store.Secret{{ID: "api-1", Hash: h.Hash(rotated), CreatedAt: time.Now()}}
			if _, err := st.UpdateClient(ctx, w); err != nil {
				t.Fatal(err)
			}
			spa, _ := st.GetClient(ctx, "spa")
			spa.CORSOrigins = []string{"https://evil.example.test"}
			if _, err := st.UpdateClient(ctx, spa); err != nil {
				t.Fatal(err)
			}
			alice, _ := us.Get(ctx, "alice")
			if alice.PasswordHash, err = users.Hash("reset by hand", fastParams); err != nil {
				t.Fatal(err)
			}
			alice.Disabled = true
			if err := us.Put(ctx, alice); err != nil {
				t.Fatal(err)
			}
			rep, err = bootstrap.Apply(ctx, spec, deps)
			if err != nil {
				t.Fatalf("apply after drift: %v", err)
			}
			wantOutcomes(t, rep, map[string]string{
				"resource_server/" + apiID: "drifted scopes", "resource_server/" + aud: "unchanged",
				"client/worker": "drifted name secret", "client/hashed": "unchanged", "client/spa": "drifted cors_origins", "client/ops": "unchanged",
				"user/alice": "drifted password disabled", "user/bob": "unchanged",
			})
			got := ev.take(t, events.TypeClientSecretRotated, 1)
			if n := countEvents(got, events.TypeClientUpdated); n != 2 {
				t.Errorf("%d client.updated events after drift, want 2 (worker, spa): %v", n, got)
			}
			w, _ = st.GetClient(ctx, "worker")
			if !verifies(t, h, w, f.workerSecret) || verifies(t, h, w, rotated) || w.Name != "Worker" {
				t.Errorf("worker after drift: declared secret %v, rotated secret %v, name %q",
					verifies(t, h, w, f.workerSecret), verifies(t, h, w, rotated), w.Name)
			}
			if c, _ := st.GetClient(ctx, "manual"); c.Name != manual.Name {
				t.Errorf("an undeclared client was changed: %+v", c)
			}
			if _, err := auth.Authenticate(ctx, "alice", f.alicePassword); err != nil {
				t.Errorf("alice cannot sign in after the drift was undone: %v", err)
			}
			rep, err = bootstrap.Apply(ctx, spec, deps)
			if err != nil {
				t.Fatal(err)
			}
			if n := rep.Count(bootstrap.KindClient, bootstrap.Unchanged); n != 4 || rep.Count(bootstrap.KindUser, bootstrap.Unchanged) != 2 {
				t.Errorf("the run after re-applying is not all unchanged: %v", outcomes(rep))
			}

			// 4. Disabling by declaration revokes the client's tokens, as the admin API does.
			disabled := loadSpec(t, strings.Replace(f.doc, "      name: Worker\n", "      name: Worker\n      disabled: true\n", 1), f.env)
			rep, err = bootstrap.Apply(ctx, disabled, deps)
			if err != nil {
				t.Fatal(err)
			}
			if o := outcomes(rep)["client/worker"]; o != "drifted disabled" {
				t.Errorf("worker: %s, want drifted disabled", o)
			}
			ev.take(t, events.TypeClientRevoked, 1)
			if w, _ := st.GetClient(ctx, "worker"); !w.Disabled {
				t.Error("worker is not disabled")
			}

			// Every outcome was counted.
			if n := counter(t, reg, "valet_bootstrap_objects_total", map[string]string{"kind": "client", "outcome": "created"}); n != 4 {
				t.Errorf("valet_bootstrap_objects_total{kind=client,outcome=created} = %v, want 4", n)
			}
			if n := counter(t, reg, "valet_bootstrap_objects_total", map[string]string{"kind": "client", "outcome": "drifted"}); n != 3 {
				t.Errorf("valet_bootstrap_objects_total{kind=client,outcome=drifted} = %v, want 3", n)
			}
		})
	}
}

// TestApplyConcurrent applies one declaration from four goroutines at once, as issuer replicas
// starting together do: no run fails, each record is created exactly once, and every other run
// finds it unchanged.
func TestApplyConcurrent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st, us := b.open(t)
			f := newFixture(t)
			spec := loadSpec(t, f.doc, f.env)
			ev := newStream(t)
			deps := bootstrap.Deps{
				Registry: st, Hasher: newHasher(t), Users: us, PasswordParams: fastParams,
				Publisher: ev.publisher(), Source: testIssuer, Registerer: prometheus.NewRegistry(),
			}
			const replicas = 4
			reports := make([]bootstrap.Report, replicas)
			errs := make([]error, replicas)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					reports[i], errs[i] = bootstrap.Apply(ctx, spec, deps)
				}()
			}
			close(start)
			wg.Wait()
			created := map[string]int{}
			for i := range replicas {
				if errs[i] != nil {
					t.Fatalf("replica %d: %v", i, errs[i])
				}
				for k, o := range outcomes(reports[i]) {
					switch o {
					case "created":
						created[k]++
					case "unchanged":
					default:
						t.Errorf("replica %d: %s %s, want created or unchanged", i, k, o)
					}
				}
			}
			if len(created) != 8 {
				t.Errorf("created %v, want each of the 8 records once", created)
			}
			for k, n := range created {
				if n != 1 {
					t.Errorf("%s created %d times", k, n)
				}
			}
			rs, _ := st.ListResourceServers(ctx)
			cs, _ := st.ListClients(ctx)
			ul, _ := us.List(ctx)
			if len(rs) != 2 || len(cs) != 4 || len(ul) != 2 {
				t.Errorf("stored %d resource servers, %d clients, %d users; want 2, 4, 2", len(rs), len(cs), len(ul))
			}
			c, _ := st.GetClient(ctx, "worker")
			if len(c.Secrets) != 1 || !verifies(t, deps.Hasher.(*secret.Hasher), c, f.workerSecret) {
				t.Errorf("worker holds %d secrets after the race, want the declared one", len(c.Secrets))
			}
		})
	}
}

// TestApplyRefusals checks what stops a start, with a message naming the declaring key.
func TestApplyRefusals(t *testing.T) {
	ctx := context.Background()
	st, us := openBolt(t)
	h := newHasher(t)
	deps := bootstrap.Deps{Registry: st, Hasher: h, Users: us, PasswordParams: fastParams}
	sec := newSecret(t)
	env := map[string]string{"S": sec}

	t.Run("unknown resource server", func(t *testing.T) {
		spec := loadSpec(t, `bootstrap:
  clients:
    - id: lost
      secret: env:S
      grant_types: [client_credentials]
      resources:
        - id: https://nowhere.example.test
          scopes: [read]
`, env)
		_, err := bootstrap.Apply(ctx, spec, deps)
		if err == nil || !strings.Contains(err.Error(), "bootstrap.clients[0].resources[0].id:") {
			t.Fatalf("got %v, want a problem naming bootstrap.clients[0].resources[0].id", err)
		}
		if _, err := st.GetClient(ctx, "lost"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the client was written anyway: %v", err)
		}
	})
	t.Run("type change", func(t *testing.T) {
		if err := st.CreateClient(ctx, store.Client{ID: "was-public", Type: store.Public, GrantTypes: []string{"authorization_code"}}); err != nil {
			t.Fatal(err)
		}
		spec := loadSpec(t, `bootstrap:
  clients:
    - id: was-public
      secret: env:S
      grant_types: [client_credentials]
`, env)
		_, err := bootstrap.Apply(ctx, spec, deps)
		if err == nil || !strings.Contains(err.Error(), "bootstrap.clients[0]") || !strings.Contains(err.Error(), "type never changes") {
			t.Fatalf("got %v, want a refusal of the type change naming bootstrap.clients[0]", err)
		}
	})
	t.Run("disable without revoker", func(t *testing.T) {
		doc := `bootstrap:
  clients:
    - id: to-disable
      secret: env:S
      grant_types: [client_credentials]
`
		if _, err := bootstrap.Apply(ctx, loadSpec(t, doc, env), deps); err != nil {
			t.Fatal(err)
		}
		_, err := bootstrap.Apply(ctx, loadSpec(t, doc+"      disabled: true\n", env), deps)
		if err == nil || !strings.Contains(err.Error(), "no revoker") {
			t.Fatalf("got %v, want a refusal: disabling needs the revoke primitive", err)
		}
	})
	t.Run("missing dependencies", func(t *testing.T) {
		spec := loadSpec(t, "bootstrap:\n  users:\n    - username: u\n      password: env:S\n", env)
		if _, err := bootstrap.Apply(ctx, spec, bootstrap.Deps{Registry: st}); err == nil || !strings.Contains(err.Error(), "user store") {
			t.Fatalf("got %v, want a refusal: users without a user store", err)
		}
	})
}

// TestApplyEventPending: a stream that does not take the event does not fail the start; the
// record is stored and reported event_pending.
func TestApplyEventPending(t *testing.T) {
	ctx := context.Background()
	st, _ := openBolt(t)
	sec := newSecret(t)
	spec := loadSpec(t, "bootstrap:\n  admin_clients:\n    - id: ops\n      secret: env:S\n", map[string]string{"S": sec})
	down := keys.PublisherFunc(func(context.Context, events.Event) error { return errors.New("nats: no responders") })
	rep, err := bootstrap.Apply(ctx, spec, bootstrap.Deps{Registry: st, Hasher: newHasher(t), Publisher: down, Source: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Results {
		if res.Kind == bootstrap.KindClient && (res.Outcome != bootstrap.Created || !res.EventPending) {
			t.Errorf("%+v, want created with the event pending", res)
		}
	}
	if _, err := st.GetClient(ctx, "ops"); err != nil {
		t.Errorf("the client is not stored: %v", err)
	}
}

// TestResolve checks the reading of references: every problem is reported at once with its key,
// and no value ever appears in a message or in a printed Spec.
func TestResolve(t *testing.T) {
	long := newSecret(t)
	doc := `bootstrap:
  clients:
    - id: a
      secret: env:A_SECRET
      grant_types: [client_credentials]
    - id: b
      secret: env:B_SECRET
      previous_secret: env:B_OLD
      grant_types: [client_credentials]
  users:
    - username: u
      password: env:U_PASSWORD
`
	cfg := parse(t, doc)
	_, err := bootstrap.Resolve(cfg, envMap(map[string]string{"B_SECRET": "short", "B_OLD": long}))
	for _, want := range []string{
		"bootstrap.clients[0].secret: environment variable A_SECRET is not set",
		"bootstrap.clients[1].secret: the secret read from env:B_SECRET is shorter than 32 characters",
		"bootstrap.users[0].password: environment variable U_PASSWORD is not set",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want a problem %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "short") && !strings.Contains(err.Error(), "shorter") || strings.Contains(err.Error(), long)) {
		t.Errorf("a message quotes a secret:\n%v", err)
	}

	spec, err := bootstrap.Resolve(cfg, envMap(map[string]string{"A_SECRET": long, "B_SECRET": long + "x", "B_OLD": long + "y", "U_PASSWORD": "pa55word"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Clients[1].Secrets) != 2 || spec.Clients[1].Secrets[0].Key != "bootstrap.clients[1].secret" {
		t.Errorf("client b secrets %v", spec.Clients[1].Secrets)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if out := fmt.Sprintf(verb, spec); strings.Contains(out, long) || strings.Contains(out, "pa55word") {
			t.Errorf("Sprintf(%q, spec) prints a secret: %s", verb, out)
		}
	}

	// An explicitly declared admin resource server must keep valet:admin.
	cfg = parse(t, fmt.Sprintf(`bootstrap:
  resource_servers:
    - id: %s/admin
      scopes: [valet:read]
  admin_clients:
    - id: ops
      secret: env:A_SECRET
`, testIssuer))
	if _, err := bootstrap.Resolve(cfg, envMap(map[string]string{"A_SECRET": long})); err == nil ||
		!strings.Contains(err.Error(), "bootstrap.resource_servers[0].scopes: the admin resource server") {
		t.Errorf("got %v, want a refusal of an admin resource server without valet:admin", err)
	}
}

// TestPlaintextRefused: a secret written into the file is refused when the configuration is
// loaded, before anything is resolved, and the message does not repeat it.
func TestPlaintextRefused(t *testing.T) {
	sec := newSecret(t)
	_, err := parseErr(fmt.Sprintf("bootstrap:\n  admin_clients:\n    - id: ops\n      secret: %s\n", sec))
	if err == nil || !strings.Contains(err.Error(), "bootstrap.admin_clients[0].secret: must be env:NAME, file:/path or a hash") {
		t.Fatalf("got %v, want a refusal naming bootstrap.admin_clients[0].secret", err)
	}
	if strings.Contains(err.Error(), sec) {
		t.Errorf("the refusal quotes the secret:\n%v", err)
	}
}

func wantOutcomes(t *testing.T, rep bootstrap.Report, want map[string]string) {
	t.Helper()
	got := outcomes(rep)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("report has %d records, want %d: %v", len(got), len(want), got)
	}
}

func countEvents(evs []events.Event, typ events.Type) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// counter returns the value of the counter name with exactly labels in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
