// Command cluster runs one issuer for load tests, in one process: an
// embedded NATS server with JetStream (in-process connection), the issuer
// service package wired as services/issuer/cmd/issuer wires it, against the
// Redis named by -redis. It registers one resource server and one
// confidential client, writes their credentials as shell assignments to
// -out, and serves net/http/pprof on -pprof so that a load run can take a
// CPU profile of the server.
//
//	cluster -redis redis://127.0.0.1:6380/0 -listen 127.0.0.1:18080 -out creds.env
//
// It is a harness, not a deployment: dev mode, a random key-encryption key,
// loopback listeners. loadtest/run.sh drives it.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof" // -pprof
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/services/issuer"
)

// The registered fixtures.
const (
	ClientID = "loadtest"
	Resource = "https://api.loadtest.local/"
)

func main() {
	redisURL := flag.String("redis", "", "Redis URL (required), e.g. redis://127.0.0.1:6380/0")
	listen := flag.String("listen", "127.0.0.1:18080", "issuer public listener")
	admin := flag.String("admin", "127.0.0.1:19080", "issuer admin listener (metrics, /readyz)")
	pprofAddr := flag.String("pprof", "127.0.0.1:16060", "net/http/pprof listener; empty for none")
	out := flag.String("out", "", "file to write CLIENT_ID, CLIENT_SECRET, TOKEN_URL, RESOURCE and AUTHORIZATION to")
	storeDir := flag.String("jetstream-dir", "", "JetStream store directory (default: a temporary directory)")
	level := flag.String("log-level", "warn", "log level")
	flag.Parse()
	// As services/issuer/cmd/issuer: GOGC 400 unless the environment says.
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(400)
	}
	if *redisURL == "" {
		log.Fatal("cluster: -redis is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *redisURL, *listen, *admin, *pprofAddr, *out, *storeDir, *level); err != nil {
		log.Fatalf("cluster: %v", err)
	}
}

func run(ctx context.Context, redisURL, listen, admin, pprofAddr, out, storeDir, level string) error {
	logger, err := boot.NewLogger(level, "console")
	if err != nil {
		return err
	}
	if storeDir == "" {
		if storeDir, err = os.MkdirTemp("", "valet-loadtest-js-"); err != nil {
			return err
		}
		defer os.RemoveAll(storeDir)
	}

	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = "http://" + listen
	cfg.Services.Issuer = config.Service{PublicURL: cfg.Issuer, Listen: listen, AdminListen: admin}
	cfg.Redis.URL = redisURL
	cfg.Log.Level = level
	if err := cfg.Validate(); err != nil {
		return err
	}

	// NATS with JetStream, in this process; the client connects in-process.
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: storeDir,
		NoLog: true, NoSigs: true, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 1 << 30,
	})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("embedded NATS not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	prefix := cfg.NATS.SubjectPrefix
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: prefix, MaxAccessTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime}); err != nil {
		return err
	}
	pub, err := bus.NewPublisher(js, prefix)
	if err != nil {
		return err
	}

	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		return err
	}
	keks := map[string][]byte{"loadtest": kek}
	ring, err := keys.NewKEKRing("loadtest", keks)
	if err != nil {
		return err
	}
	hasher, err := secret.NewHasher("loadtest", keks)
	if err != nil {
		return err
	}
	block, _ := aes.NewCipher(kek)
	aead, _ := cipher.NewGCM(block)
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := goredis.NewClient(opt)
	st, err := redisstore.New(ctx, rdb, aead, redisstore.WithPrefix(cfg.Redis.KeyPrefix))
	if err != nil {
		return err
	}
	defer st.Close()

	sec, err := seed(ctx, st, hasher)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	km, err := keys.New(keys.Config{
		Source: cfg.Issuer, Algorithm: cfg.Keys.Algorithm,
		RotationInterval: cfg.Keys.RotationInterval, PublishLeadTime: cfg.Keys.PublishLeadTime,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
	}, st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}), ring, keys.WithLogger(logger), keys.WithRegisterer(reg))
	if err != nil {
		return err
	}
	if err := km.Refresh(ctx); err != nil {
		return err
	}
	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "issuer", Instance: "loadtest"},
		bus.WithHeartbeatInterval(cfg.NATS.HeartbeatInterval))
	if err != nil {
		return err
	}
	cache, err := clients.New(st, clients.Config{Prefix: prefix, StalenessBound: cfg.Services.Edge.StalenessBound},
		clients.WithLogger(logger), clients.WithRegisterer(reg))
	if err != nil {
		return err
	}
	svc, err := issuer.New(&cfg, issuer.Deps{
		Logger: logger, Registry: reg, Store: st, Keys: km, Clients: cache, Secrets: hasher,
	})
	if err != nil {
		return err
	}

	bctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range []func(context.Context){
		func(ctx context.Context) { _ = km.Run(ctx) },
		func(ctx context.Context) { _ = beat.Run(ctx) },
		func(ctx context.Context) { _ = cache.Run(ctx, js) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bctx) }()
	}
	if pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(pprofAddr, nil); err != nil {
				logger.Error("pprof listener", zap.Error(err))
			}
		}()
	}
	// The credentials file is the signal that the run may start: write it
	// once the client cache trusts its events, so that the run measures the
	// cached path from its first request.
	go func() {
		for deadline := time.Now().Add(30 * time.Second); !cache.Trusted() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if out != "" {
			if err := writeCreds(out, cfg.Services.Issuer.URL("/token"), sec); err != nil {
				logger.Error("write credentials", zap.Error(err))
			}
		}
		fmt.Fprintf(os.Stderr, "cluster: issuer on http://%s (admin %s, pprof %s)\n", listen, admin, pprofAddr)
	}()
	err = svc.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// seed registers the load test's resource server and client (replacing
// them if a previous run left them) and returns the client's new secret.
func seed(ctx context.Context, st *redisstore.Store, h *secret.Hasher) (string, error) {
	rs := store.ResourceServer{ID: Resource, Name: "load test API", Scopes: []string{"read", "write"}}
	if err := st.CreateResourceServer(ctx, rs); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", err
	}
	sec, err := secret.New()
	if err != nil {
		return "", err
	}
	if err := st.DeleteClient(ctx, ClientID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	err = st.CreateClient(ctx, store.Client{
		ID: ClientID, Name: "load test", Type: store.Confidential,
		Secrets:         []store.Secret{{ID: "s1", Hash: h.Hash(sec), CreatedAt: time.Now()}},
		GrantTypes:      []string{"client_credentials"},
		Resources:       map[string][]string{Resource: {"read", "write"}},
		DefaultResource: Resource, AccessTokenLifetime: 5 * time.Minute,
		CreatedAt: time.Now(), UpdatedAt: time.Now(),
	})
	return sec, err
}

// writeCreds writes the credentials as shell assignments (values are
// URL-safe, so no quoting is needed).
func writeCreds(path, tokenURL, sec string) error {
	authz := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(ClientID)+":"+url.QueryEscape(sec)))
	body := fmt.Sprintf("CLIENT_ID=%s\nCLIENT_SECRET=%s\nTOKEN_URL=%s\nRESOURCE=%s\nAUTHORIZATION='%s'\n",
		ClientID, sec, tokenURL, Resource, authz)
	return os.WriteFile(path, []byte(body), 0o600)
}
