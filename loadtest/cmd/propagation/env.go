package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/clients"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/services/revocation"
)

// Fixtures of the cluster under test.
const (
	issuer   = "https://auth.propagation.test"
	audience = "https://api.propagation.test/"
	clientID = "svc-prop" // the confidential client whose tokens are revoked
)

// cluster is everything but the edges: Redis, JetStream, a key ring whose
// JWKS is served on loopback, the revocation service with its relay, a
// heartbeater and the client cache.
type cluster struct {
	natsURL string
	prefix  string
	jwksURL string
	revoke  string // the /revoke URL
	secret  string // clientID's secret
	keys    *keys.Manager
	pub     *bus.Publisher
	js      jetstream.JetStream

	maxLife time.Duration
	cleanup []func()
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

func (c *cluster) close() {
	c.cancel()
	c.wg.Wait()
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		c.cleanup[i]()
	}
}

func (c *cluster) run(ctx context.Context, fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() { defer c.wg.Done(); fn(ctx) }()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startRedis starts a redis-server on a free loopback port in a temporary
// directory (persistence off, noeviction, as the test harness runs it).
func startRedis(dir string) (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not found (Debian: apt-get install redis-server) and REDIS_URL unset: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning")
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logf.Close() }
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opt, _ := goredis.ParseURL(url)
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("redis-server did not answer within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNATS starts an embedded NATS server with JetStream on a loopback
// port, storing in dir.
func startNATS(dir string) (string, func(), error) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 16 << 30,
		MaxPayload: 1 << 20,
	})
	if err != nil {
		return "", nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", nil, errors.New("embedded NATS not ready")
	}
	return ns.ClientURL(), func() { ns.Shutdown(); ns.WaitForShutdown() }, nil
}

// startCluster builds the cluster. Redis and NATS come from redisURL and
// natsURL when set, and are started otherwise.
func startCluster(redisURL, natsURL string) (_ *cluster, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cluster{cancel: cancel, maxLife: 15 * time.Minute}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	dir, err := os.MkdirTemp("", "valet-propagation-")
	if err != nil {
		return nil, err
	}
	c.cleanup = append(c.cleanup, func() { _ = os.RemoveAll(dir) })
	if redisURL == "" {
		url, stop, err := startRedis(dir)
		if err != nil {
			return nil, err
		}
		c.cleanup = append(c.cleanup, stop)
		redisURL = url
	}
	if natsURL == "" {
		jsDir := filepath.Join(dir, "jetstream")
		url, stop, err := startNATS(jsDir)
		if err != nil {
			return nil, err
		}
		c.cleanup = append(c.cleanup, stop)
		natsURL = url
	}
	c.natsURL = natsURL
	// A fresh prefix per run, so an external Redis or NATS is not disturbed.
	c.prefix = "prop" + randHex(4)

	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = 128
	aead, err := newAEAD()
	if err != nil {
		return nil, err
	}
	st, err := redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(c.prefix+":"))
	if err != nil {
		return nil, err
	}
	c.cleanup = append(c.cleanup, func() { _ = st.Close() })

	nc, err := nats.Connect(natsURL, nats.Name("valet-revocation"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	c.cleanup = append(c.cleanup, nc.Close)
	if c.js, err = jetstream.New(nc); err != nil {
		return nil, err
	}
	if err := bus.EnsureStreams(ctx, c.js, bus.StreamsConfig{Prefix: c.prefix, MaxAccessTokenLifetime: c.maxLife}); err != nil {
		return nil, err
	}
	if c.pub, err = bus.NewPublisher(c.js, c.prefix); err != nil {
		return nil, err
	}

	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	keks := map[string][]byte{"kek-1": kek}
	ring, err := keys.NewKEKRing("kek-1", keks)
	if err != nil {
		return nil, err
	}
	hasher, err := secret.NewHasher("kek-1", keks)
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = issuer
	cfg.Services.Revocation = config.Service{PublicURL: "http://revoke.propagation.test", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"}
	cfg.NATS.SubjectPrefix = c.prefix
	cfg.Tokens.MaxAccessTokenLifetime = c.maxLife

	pub := c.pub
	c.keys, err = keys.New(keys.Config{
		Source: issuer, Algorithm: keys.ES256,
		RotationInterval: 24 * time.Hour, PublishLeadTime: time.Second,
		MaxTokenLifetime: c.maxLife, ClockSkew: cfg.Tokens.ClockSkew,
		RefreshInterval: 200 * time.Millisecond,
	}, st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}), ring)
	if err != nil {
		return nil, err
	}
	if err := c.keys.Refresh(ctx); err != nil {
		return nil, err
	}
	c.run(ctx, func(ctx context.Context) { _ = c.keys.Run(ctx) })

	// JWKS on loopback, as the issuer serves it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	jwks := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := c.keys.JWKS()
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(b)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = jwks.Serve(l) }()
	c.cleanup = append(c.cleanup, func() { _ = jwks.Close() })
	c.jwksURL = "http://" + l.Addr().String() + "/jwks.json"

	// The revocation service, wired as cmd/revocation wires it.
	rev, err := revoke.New(revoke.Config{Source: issuer, Prefix: c.prefix, Retain: cfg.Tokens.ReplayWindow()}, st, pub)
	if err != nil {
		return nil, err
	}
	relay := revoke.NewRelay(rev, time.Second, nil)
	c.run(ctx, relay.Run)
	hb, err := bus.NewHeartbeater(pub, issuer, events.Heartbeat{Service: "propagation", Instance: randHex(4)},
		bus.WithHeartbeatInterval(time.Second))
	if err != nil {
		return nil, err
	}
	c.run(ctx, func(ctx context.Context) { _ = hb.Run(ctx) })
	cache, err := clients.New(st, clients.Config{Prefix: c.prefix, StalenessBound: cfg.Services.Edge.StalenessBound})
	if err != nil {
		return nil, err
	}
	c.run(ctx, func(ctx context.Context) { _ = cache.Run(ctx, c.js) })
	chk, err := edge.NewChecker(edge.CheckerConfig{
		Issuer: issuer, JWKSURL: c.jwksURL, MaxTokenLifetime: c.maxLife, ClockSkew: cfg.Tokens.ClockSkew,
	})
	if err != nil {
		return nil, err
	}
	if err := chk.Start(ctx); err != nil {
		return nil, err
	}
	c.cleanup = append(c.cleanup, func() { _ = chk.Close() })
	svc, err := revocation.New(&cfg, revocation.Deps{
		Logger: zap.NewNop(), Registry: prometheus.NewRegistry(),
		Store: st, Revoker: rev, Clients: cache, Secrets: hasher, Checker: chk,
	})
	if err != nil {
		return nil, err
	}
	c.run(ctx, func(ctx context.Context) { _ = svc.Run(ctx) })
	addr, _, err := svc.Server().Addrs(ctx)
	if err != nil {
		return nil, err
	}
	c.revoke = "http://" + addr.String() + revocation.RevokePath

	// The client whose tokens are revoked, and the API they are for.
	if err := st.CreateResourceServer(ctx, store.ResourceServer{ID: audience, Name: "API", Scopes: []string{"read"}}); err != nil {
		return nil, err
	}
	if c.secret, err = secret.New(); err != nil {
		return nil, err
	}
	if err := st.CreateClient(ctx, store.Client{
		ID: clientID, Type: store.Confidential, GrantTypes: []string{"client_credentials"},
		Resources: map[string][]string{audience: {"read"}},
		Secrets:   []store.Secret{{ID: "s1", Hash: hasher.Hash(c.secret), CreatedAt: time.Now()}},
	}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for !cache.Trusted() {
		if time.Now().After(deadline) {
			return nil, errors.New("client cache never trusted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, nil
}

// mint signs n client-credentials access tokens of clientID for the API,
// valid for ten minutes, and returns them with their jtis.
func (c *cluster) mint(n int, tag string) (toks, jtis []string, err error) {
	s, err := c.keys.Current()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Unix()
	toks, jtis = make([]string, n), make([]string, n)
	for i := range n {
		jti := tag + "-" + strconv.Itoa(i) + "-" + randHex(6)
		b, err := json.Marshal(map[string]any{
			"iss": issuer, "sub": clientID, "aud": audience, "exp": now + 600, "iat": now, "nbf": now,
			"jti": jti, "client_id": clientID, "scope": "read",
		})
		if err != nil {
			return nil, nil, err
		}
		t, err := s.Sign(keys.TypeAccessToken, b)
		if err != nil {
			return nil, nil, err
		}
		toks[i], jtis[i] = string(t), jti
	}
	return toks, jtis, nil
}

func newAEAD() (cipher.AEAD, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
