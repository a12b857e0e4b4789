// Command introload runs one introspection service for load tests, in one
// process: an embedded NATS server with JetStream (in-process connection),
// a signing key ring on the Redis store whose JWKS is served on loopback,
// and the introspection service package wired as
// services/introspection/cmd/introspection wires it (client cache, edge
// checker following the key stream, Redis deny reads). It registers one
// resource server and one confidential client, mints -tokens access tokens
// of that client (client-credentials shape, living 14 minutes), writes them
// one a line to <out>/tokens.txt and the caller's Basic header and the URL
// as shell assignments to <out>/env, and serves net/http/pprof on -pprof so
// that a load run can take a CPU profile of the server.
//
//	introload -redis redis://127.0.0.1:6390/0 -out /tmp/introload
//	. /tmp/introload/env
//	TOKENS=/tmp/introload/tokens.txt wrk -t2 -c32 -d20s --latency \
//	    -s services/introspection/testdata/introspect.lua "$INTROSPECT_URL"
//
// services/introspection/testdata/loadtest.sh does all of that, with a
// private redis-server, and prints the server CPU per request. It is a
// harness, not a deployment: dev mode, a random key-encryption key,
// loopback listeners.
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
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
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/token"
	"github.com/valetauth/valet/services/introspection"
)

// The registered fixtures.
const (
	clientID = "introload"
	resource = "https://api.introload.local/"
)

type options struct {
	redisURL, listen, admin, pprof, out, level string
	tokens                                     int
}

func main() {
	var o options
	flag.StringVar(&o.redisURL, "redis", "", "Redis URL (required), e.g. redis://127.0.0.1:6390/0")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:18180", "introspection public listener")
	flag.StringVar(&o.admin, "admin", "127.0.0.1:19180", "admin listener (metrics, /readyz)")
	flag.StringVar(&o.pprof, "pprof", "127.0.0.1:16160", "net/http/pprof listener; empty for none")
	flag.StringVar(&o.out, "out", "", "directory to write env and tokens.txt to (required)")
	flag.StringVar(&o.level, "log-level", "warn", "log level")
	flag.IntVar(&o.tokens, "tokens", 10000, "distinct access tokens to mint")
	flag.Parse()
	// As services/introspection/cmd/introspection.
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(introspection.GCPercent)
	}
	if o.redisURL == "" || o.out == "" || o.tokens < 1 {
		log.Fatal("introload: -redis and -out are required, -tokens must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatalf("introload: %v", err)
	}
}

func run(ctx context.Context, o options) error {
	logger, err := boot.NewLogger(o.level, "console")
	if err != nil {
		return err
	}
	storeDir, err := os.MkdirTemp("", "valet-introload-js-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(storeDir)

	// The JWKS listener first: the issuer URL names it.
	jwksLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = "http://" + jwksLn.Addr().String()
	cfg.Services.Issuer = config.Service{PublicURL: cfg.Issuer, Listen: jwksLn.Addr().String(), AdminListen: "127.0.0.1:0"}
	cfg.Services.Introspection = config.Service{PublicURL: "http://" + o.listen, Listen: o.listen, AdminListen: o.admin}
	cfg.Redis.URL = o.redisURL
	cfg.Log.Level = o.level

	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: storeDir,
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
	keks := map[string][]byte{"introload": kek}
	ring, err := keys.NewKEKRing("introload", keks)
	if err != nil {
		return err
	}
	hasher, err := secret.NewHasher("introload", keks)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	opt, err := goredis.ParseURL(o.redisURL)
	if err != nil {
		return err
	}
	// As the introspection service's main builds it: one batch flusher.
	st, err := redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(cfg.Redis.KeyPrefix), redisstore.WithBatchFlushers(1))
	if err != nil {
		return err
	}
	defer st.Close()
	sec, err := seed(ctx, st, hasher)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	km, err := keys.New(boot.KeysConfig(&cfg), st, boot.PublishFunc(pub), ring, keys.WithLogger(logger))
	if err != nil {
		return err
	}
	if err := km.Refresh(ctx); err != nil {
		return err
	}
	jwks := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := km.JWKS()
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	})}
	go func() { _ = jwks.Serve(jwksLn) }()
	defer jwks.Close()

	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "issuer", Instance: "introload"},
		bus.WithHeartbeatInterval(cfg.NATS.HeartbeatInterval))
	if err != nil {
		return err
	}
	cache, err := clients.New(st, clients.Config{Prefix: prefix, StalenessBound: cfg.Services.Edge.StalenessBound},
		clients.WithLogger(logger), clients.WithRegisterer(reg))
	if err != nil {
		return err
	}
	chkCfg := boot.CheckerConfig(&cfg, js)
	chkCfg.Observer = introspection.CheckerObserver(logger)
	chk, err := edge.NewChecker(chkCfg)
	if err != nil {
		return err
	}
	if err := chk.Start(ctx); err != nil {
		return err
	}
	defer chk.Close()
	svc, err := introspection.New(&cfg, introspection.Deps{
		Logger: logger, Registry: reg, Store: st, Clients: cache, Secrets: hasher, Checker: chk,
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
	if o.pprof != "" {
		go func() {
			if err := http.ListenAndServe(o.pprof, nil); err != nil {
				logger.Error("pprof listener", zap.Error(err))
			}
		}()
	}
	// The env file is the signal that the run may start: write it once the
	// client cache trusts its events, so that the run measures the cached
	// path from its first request.
	go func() {
		for deadline := time.Now().Add(30 * time.Second); !cache.Trusted() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if err := writeOut(o, cfg, km, sec); err != nil {
			logger.Error("write tokens", zap.Error(err))
			return
		}
		fmt.Fprintf(os.Stderr, "introload: introspection on http://%s (admin %s, pprof %s), %d tokens in %s\n",
			o.listen, o.admin, o.pprof, o.tokens, o.out)
	}()
	err = svc.Run(ctx)
	cancel()
	wg.Wait()
	return err
}

// seed registers the resource server and the client (replacing them if a
// previous run left them) and returns the client's new secret.
func seed(ctx context.Context, st *redisstore.Store, h *secret.Hasher) (string, error) {
	rs := store.ResourceServer{ID: resource, Name: "introload API", Scopes: []string{"read", "write"}}
	if err := st.CreateResourceServer(ctx, rs); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return "", err
	}
	sec, err := secret.New()
	if err != nil {
		return "", err
	}
	if err := st.DeleteClient(ctx, clientID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	err = st.CreateClient(ctx, store.Client{
		ID: clientID, Name: "introload", Type: store.Confidential,
		Secrets:    []store.Secret{{ID: "s1", Hash: h.Hash(sec), CreatedAt: time.Now()}},
		GrantTypes: []string{"client_credentials"},
		Resources:  map[string][]string{resource: {"read", "write"}},
		CreatedAt:  time.Now(), UpdatedAt: time.Now(),
	})
	return sec, err
}

// writeOut mints the tokens and writes tokens.txt, then env (last: its
// presence says everything is ready).
func writeOut(o options, cfg config.Config, km *keys.Manager, sec string) error {
	if err := os.MkdirAll(o.out, 0o700); err != nil {
		return err
	}
	s, err := km.Current()
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	var b strings.Builder
	for range o.tokens {
		jti, err := token.NewID()
		if err != nil {
			return err
		}
		c, err := json.Marshal(map[string]any{
			"iss": cfg.Issuer, "sub": clientID, "aud": resource, "client_id": clientID, "scope": "read",
			"iat": now, "nbf": now, "exp": now + 14*60, "jti": jti,
		})
		if err != nil {
			return err
		}
		tok, err := s.Sign(keys.TypeAccessToken, c)
		if err != nil {
			return err
		}
		b.Write(tok)
		b.WriteByte('\n')
	}
	tokens := filepath.Join(o.out, "tokens.txt")
	if err := os.WriteFile(tokens, []byte(b.String()), 0o600); err != nil {
		return err
	}
	authz := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(sec)))
	env := fmt.Sprintf("INTROSPECT_URL=http://%s%s\nTOKENS=%s\nAUTHORIZATION='%s'\n",
		o.listen, introspection.IntrospectPath, tokens, authz)
	return os.WriteFile(filepath.Join(o.out, "env"), []byte(env), 0o600)
}
