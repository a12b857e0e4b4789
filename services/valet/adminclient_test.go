package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/services/issuer"
)

// issuerEnv is a running issuer with its admin API on real Redis and
// JetStream, the admin resource server registered, and the admin client
// "ops" (valet:admin) whose credentials the CLI's environment holds.
type issuerEnv struct {
	st        *redisstore.Store
	keys      *keys.Manager
	publicURL string
}

func newIssuerEnv(t *testing.T) *issuerEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	rs := testenv.Redis(t)
	opt, _ := goredis.ParseURL(rs.URL)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	e := &issuerEnv{}
	var err error
	if e.st, err = redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(rs.Prefix)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: ns.Prefix, MaxAccessTokenLifetime: 15 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(js, ns.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	publish := keys.PublisherFunc(func(ctx context.Context, ev events.Event) error { _, err := pub.Publish(ctx, ev); return err })
	keks := map[string][]byte{"k": key}
	ring, _ := keys.NewKEKRing("k", keks)
	hasher, _ := secret.NewHasher("k", keks)
	cfg := config.Default()
	cfg.Dev, cfg.Issuer = true, cliIssuer
	cfg.Services.Issuer = config.Service{PublicURL: cliIssuer, Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	cfg.NATS.SubjectPrefix = ns.Prefix
	e.keys, err = keys.New(keys.Config{Source: cliIssuer, Algorithm: keys.ES256, RotationInterval: 24 * time.Hour, PublishLeadTime: time.Second,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew, RefreshInterval: 200 * time.Millisecond},
		e.st, publish, ring)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.keys.Run(ctx) }()
	// No event consumer: the cache is untrusted and reads the store.
	cache, _ := clients.New(e.st, clients.Config{Prefix: ns.Prefix})
	rev, _ := revoke.New(revoke.Config{Source: cliIssuer, Prefix: ns.Prefix, Retain: time.Hour}, e.st, pub)
	chk, err := edge.NewChecker(edge.CheckerConfig{Issuer: cliIssuer, JWKSURL: cliIssuer + "/jwks.json", MaxTokenLifetime: 15 * time.Minute,
		HTTPClient: &http.Client{Transport: issuer.LocalJWKS(e.keys)}, UnknownKIDInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := chk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = chk.Close() })
	svc, err := issuer.New(&cfg, issuer.Deps{Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: e.st, Keys: e.keys, Clients: cache, Secrets: hasher,
		Admin: &issuer.AdminDeps{Store: e.st, Checker: chk, Revoker: rev, Publisher: publish, Keys: e.keys, Hasher: hasher, Cache: cache}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	pubAddr, adm, err := svc.Server().Addrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.publicURL = "http://" + pubAddr.String()

	aud := adminauth.Audience(cliIssuer)
	if err := e.st.CreateResourceServer(ctx, store.ResourceServer{ID: aud, Scopes: []string{adminauth.Scope}}); err != nil {
		t.Fatal(err)
	}
	opsSec, _ := secret.New()
	if err := e.st.CreateClient(ctx, store.Client{ID: "ops", Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{aud: {adminauth.Scope}}, DefaultResource: aud,
		Secrets: []store.Secret{{ID: "s", Hash: hasher.Hash(opsSec), CreatedAt: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		envIssuerAdminURL: "http://" + adm.String(), envTokenURL: e.publicURL + "/token",
		envClientID: "ops", envClientSecret: opsSec, envIssuer: cliIssuer,
	} {
		t.Setenv(k, v)
	}
	return e
}

// cli runs the valet command in-process and returns its exit code and
// output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliStep is one CLI invocation and what it must answer.
type cliStep struct {
	name     string
	args     []string
	wantCode int
	wantOut  string
}

func runSteps(t *testing.T, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errOut := cli(t, s.args...)
			if code != s.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, s.wantCode, out, errOut)
			}
			// Compare with runs of blanks collapsed: tables are aligned.
			squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
			if !strings.Contains(squash(out+errOut), squash(s.wantOut)) {
				t.Fatalf("output lacks %q:\n%s%s", s.wantOut, out, errOut)
			}
		})
	}
}
