package issuer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/secret"
)

// TestBootstrapAdmin declares an admin client and a machine client in the configuration, applies
// it as cmd/issuer does at start, and uses them: the admin client gets a valet:admin token the
// admin API accepts, the client whose secret is only a `valet hash-secret` hash gets tokens, and
// a secret rotated behind the declaration's back is undone by the next start, which the running
// issuer's client cache learns from the event.
func TestBootstrapAdmin(t *testing.T) {
	a := newAdminHarness(t)
	ctx := context.Background()
	aud := adminauth.Audience(testIssuer)
	adminSecret, err := secret.New()
	if err != nil {
		t.Fatal(err)
	}
	workerSecret, err := secret.New()
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`dev: true
issuer: %[1]s
bootstrap:
  resource_servers:
    - id: %[2]s
      name: Valet admin
      scopes: [%[3]s, valet:read]
  clients:
    - id: boot-worker
      secret: %[4]s
      grant_types: [client_credentials]
      resources:
        - id: %[5]s
          scopes: [read]
      default_resource: %[5]s
  admin_clients:
    - id: boot-admin
      name: Declared operators
      secret: env:BOOT_ADMIN_SECRET
`, testIssuer, aud, adminauth.Scope, secret.HashUnkeyed(workerSecret), apiID)
	env := func(k string) (string, bool) {
		if k == "BOOT_ADMIN_SECRET" {
			return adminSecret, true
		}
		return "", false
	}
	cfg, err := config.Parse([]byte(doc), env)
	if err != nil {
		t.Fatalf("configuration refused:\n%v", err)
	}
	spec, err := bootstrap.Resolve(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	deps := bootstrap.Deps{
		Registry: a.Store, Hasher: a.Hasher, Source: testIssuer,
		Publisher: keys.PublisherFunc(func(ctx context.Context, e events.Event) error { _, err := a.Pub.Publish(ctx, e); return err }),
	}
	rep, err := bootstrap.Apply(ctx, spec, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Results {
		want := bootstrap.Created
		if res.ID == aud { // the harness registered it, exactly as declared here
			want = bootstrap.Unchanged
		}
		if res.Outcome != want || res.EventPending {
			t.Errorf("%s %s: %s (event pending %v), want %s", res.Kind, res.ID, res.Outcome, res.EventPending, want)
		}
	}

	// The declared admin gets a valet:admin token, and the admin API takes it.
	tok := a.tokenFor(t, "boot-admin", adminSecret, aud, adminauth.Scope)
	st, body := a.call(t, tok, "GET", "/admin/clients/boot-worker", nil)
	if st != 200 || body["client_id"] != "boot-worker" {
		t.Fatalf("admin API with the declared admin's token: %d %v", st, body)
	}
	if !a.canGetToken("boot-worker", workerSecret) {
		t.Fatal("the client declared by its hash cannot get a token")
	}

	// A rotation through the API takes the worker away from its declaration...
	st, body = a.call(t, tok, "POST", "/admin/clients/boot-worker/secret", map[string]string{"previous_ttl": "0s"})
	if st != 200 {
		t.Fatalf("rotate: %d %v", st, body)
	}
	rotated, _ := body["client_secret"].(string)
	a.eventually("the rotated secret works", func() bool { return a.canGetToken("boot-worker", rotated) })

	// ... and the next start puts the declared secret back, announcing it to the running cache.
	rep, err = bootstrap.Apply(ctx, spec, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range rep.Results {
		if res.ID == "boot-worker" && (res.Outcome != bootstrap.Drifted || len(res.Drifted) != 1 || res.Drifted[0] != "secret") {
			t.Errorf("boot-worker: %s %v, want drifted [secret]", res.Outcome, res.Drifted)
		}
		if res.ID != "boot-worker" && res.Outcome != bootstrap.Unchanged {
			t.Errorf("%s: %s, want unchanged", res.ID, res.Outcome)
		}
	}
	a.eventually("the declared secret works again", func() bool { return a.canGetToken("boot-worker", workerSecret) })
	a.eventually("the rotated secret no longer works", func() bool { return !a.canGetToken("boot-worker", rotated) })
}
