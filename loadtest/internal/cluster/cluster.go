// Package cluster runs one issuer for load tests and their own tests, in
// one process: an embedded NATS server with JetStream (in-process
// connection) and the issuer service package wired as
// services/issuer/cmd/issuer wires it, user grants included, against a
// Redis it is given. It registers the fixtures a load run needs (a resource
// server, a client-credentials client, a confidential and a public web
// client allowed authorization_code and refresh_token, and a user with a
// generated password) and returns their credentials.
//
// It is a harness, not a deployment: dev mode (cookies without Secure), a
// random key-encryption key, loopback listeners. cmd/cluster serves it to
// loadtest/run.sh; the generators' tests start it beside testenv.Redis.
package cluster

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
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
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/issuer"
)

// The registered fixtures. Their ids are fixed so that scripts can default
// to them; their secrets and the user's password are new on every start.
const (
	// ClientID is the confidential client allowed client_credentials.
	ClientID = "loadtest"
	// WebClientID is the confidential client allowed authorization_code and
	// refresh_token (client_secret_basic).
	WebClientID = "loadtest-web"
	// PublicClientID is the public client (PKCE, no secret) allowed the
	// same grants.
	PublicClientID = "loadtest-native"
	// Resource is the resource server every client may get tokens for,
	// with the scopes read and write.
	Resource = "https://api.loadtest.local/"
	// RedirectURI is the web clients' redirect URI. Nothing listens there:
	// the generators read the code from the Location header.
	RedirectURI = "http://127.0.0.1:9/callback"
	// Username is the user the generators sign in as.
	Username = "loadtest-user"
)

// Options configure Start.
type Options struct {
	// RedisURL names the Redis to use (required).
	RedisURL string
	// KeyPrefix is put in front of every Redis key (default: the
	// configuration's default, "valet:"). Tests pass testenv's prefix.
	KeyPrefix string
	// Listen and Admin are the issuer's public and admin listeners
	// (default 127.0.0.1:0 for both).
	Listen, Admin string
	// Issuer is the issuer identifier (iss); default "http://" + Listen.
	Issuer string
	// JetStreamDir is the JetStream store directory; default a temporary
	// directory removed by Close.
	JetStreamDir string
	// Logger logs the service; default none.
	Logger *zap.Logger
	// UserParams are argon2id's costs for the user's password; zero for
	// users.DefaultParams, what a deployment uses. Tests pass small ones.
	UserParams users.Params
}

// Creds are the fixtures' endpoints and credentials.
type Creds struct {
	Issuer       string // the iss of tokens and authorization responses (RFC 9207)
	TokenURL     string
	AuthorizeURL string
	Resource     string
	RedirectURI  string
	// ClientID and ClientSecret: client_credentials.
	ClientID, ClientSecret string
	// WebClientID and WebClientSecret: authorization_code and
	// refresh_token, client_secret_basic.
	WebClientID, WebClientSecret string
	// PublicClientID: the same grants for a public client (none + PKCE).
	PublicClientID string
	// Username and Password sign in at the login page.
	Username, Password string
}

// Cluster is a running issuer and what it runs on.
type Cluster struct {
	Creds
	// Registry holds the issuer's metrics.
	Registry *prometheus.Registry

	svc    *issuer.Service
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
	err    error
	close  []func()
}

// Start builds the issuer, starts it and its background work, registers the
// fixtures and returns once the issuer serves and its client cache trusts
// the event stream, so that a run measures the cached path from its first
// request. Close stops everything.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.RedisURL == "" {
		return nil, errors.New("cluster: a Redis URL is required")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Admin == "" {
		o.Admin = "127.0.0.1:0"
	}
	if o.Issuer == "" {
		o.Issuer = "http://" + o.Listen
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.UserParams == (users.Params{}) {
		o.UserParams = users.DefaultParams
	}
	c := &Cluster{Registry: prometheus.NewRegistry(), done: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()

	cfg := config.Default()
	cfg.Dev = true
	cfg.Issuer = o.Issuer
	cfg.Services.Issuer = config.Service{PublicURL: cfg.Issuer, Listen: o.Listen, AdminListen: o.Admin}
	cfg.Redis.URL = o.RedisURL
	if o.KeyPrefix != "" {
		cfg.Redis.KeyPrefix = o.KeyPrefix
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: configuration: %w", err)
	}

	js, pub, err := c.startNATS(ctx, &cfg, o.JetStreamDir)
	if err != nil {
		return nil, err
	}

	kek := make([]byte, 32)
	if _, err := rand.Read(kek); err != nil {
		return nil, fmt.Errorf("cluster: key-encryption key: %w", err)
	}
	keks := map[string][]byte{"loadtest": kek}
	ring, err := keys.NewKEKRing("loadtest", keks)
	if err != nil {
		return nil, err
	}
	hasher, err := secret.NewHasher("loadtest", keks)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	opt, err := goredis.ParseURL(o.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: Redis URL: %w", err)
	}
	rdb := goredis.NewClient(opt)
	st, err := redisstore.New(ctx, rdb, aead, redisstore.WithPrefix(cfg.Redis.KeyPrefix))
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("cluster: open the store: %w", err)
	}
	c.close = append(c.close, func() { _ = st.Close() })

	ua, err := users.NewAuthenticator(users.NewRedis(rdb, cfg.Redis.KeyPrefix), o.UserParams)
	if err != nil {
		return nil, err
	}
	if err := c.seed(ctx, st, hasher, ua); err != nil {
		return nil, fmt.Errorf("cluster: register the fixtures: %w", err)
	}

	log, reg := o.Logger, c.Registry
	km, err := keys.New(keys.Config{
		Source: cfg.Issuer, Algorithm: cfg.Keys.Algorithm,
		RotationInterval: cfg.Keys.RotationInterval, PublishLeadTime: cfg.Keys.PublishLeadTime,
		MaxTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime, ClockSkew: cfg.Tokens.ClockSkew,
	}, st, keys.PublisherFunc(func(ctx context.Context, e events.Event) error {
		_, err := pub.Publish(ctx, e)
		return err
	}), ring, keys.WithLogger(log), keys.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	if err := km.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("cluster: load the signing keys: %w", err)
	}
	beat, err := bus.NewHeartbeater(pub, cfg.Issuer, events.Heartbeat{Service: "issuer", Instance: "loadtest"},
		bus.WithHeartbeatInterval(cfg.NATS.HeartbeatInterval))
	if err != nil {
		return nil, err
	}
	rev, err := revoke.New(revoke.Config{
		Source: cfg.Issuer, Prefix: cfg.NATS.SubjectPrefix, Retain: cfg.Tokens.ReplayWindow(),
	}, st, pub, revoke.WithLogger(log), revoke.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	relay := revoke.NewRelay(rev, time.Second, reg)
	cache, err := clients.New(st, clients.Config{Prefix: cfg.NATS.SubjectPrefix, StalenessBound: cfg.Services.Edge.StalenessBound},
		clients.WithLogger(log), clients.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.NewLogin(rdb, cfg.Redis.KeyPrefix, ratelimit.LoginConfig{
		AccountFailures: cfg.Limits.LoginFailuresPerAccount, AddrFailures: cfg.Limits.LoginFailuresPerIP,
	})
	if err != nil {
		return nil, err
	}
	svc, err := issuer.New(&cfg, issuer.Deps{
		Logger: log, Registry: reg, Store: st, Keys: km, Clients: cache, Secrets: hasher,
		Grants: st, Sessions: st, Users: ua, Revoker: rev, Audit: pub, LoginLimiter: limiter,
	})
	if err != nil {
		return nil, err
	}
	c.svc = svc

	bctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for _, fn := range []func(context.Context){
		func(ctx context.Context) { _ = km.Run(ctx) },
		func(ctx context.Context) { _ = beat.Run(ctx) },
		relay.Run,
		func(ctx context.Context) { _ = cache.Run(ctx, js) },
	} {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); fn(bctx) }()
	}
	go func() {
		c.err = svc.Run(bctx)
		close(c.done)
	}()

	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	go func() {
		select {
		case <-c.done: // a listen error: stop waiting for the address
			acancel()
		case <-actx.Done():
		}
	}()
	addr, _, err := svc.Server().Addrs(actx)
	if err != nil {
		select {
		case <-c.done:
			return nil, fmt.Errorf("cluster: the issuer did not start: %w", c.err)
		default:
			return nil, fmt.Errorf("cluster: the issuer did not start: %w", err)
		}
	}
	for !cache.Trusted() {
		select {
		case <-actx.Done():
			return nil, errors.New("cluster: the client cache never trusted the event stream")
		case <-c.done:
			return nil, fmt.Errorf("cluster: the issuer stopped: %w", c.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	base := "http://" + addr.String()
	c.Issuer, c.TokenURL, c.AuthorizeURL = cfg.Issuer, base+"/token", base+"/authorize"
	return c, nil
}

// startNATS starts the embedded JetStream server, connects in-process and
// creates the streams.
func (c *Cluster) startNATS(ctx context.Context, cfg *config.Config, dir string) (jetstream.JetStream, *bus.Publisher, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "valet-loadtest-js-")
		if err != nil {
			return nil, nil, err
		}
		dir = d
		c.close = append(c.close, func() { _ = os.RemoveAll(d) })
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true, JetStreamMaxMemory: 256 << 20, JetStreamMaxStore: 1 << 30,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: NATS: %w", err)
	}
	go ns.Start()
	c.close = append(c.close, ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, nil, errors.New("cluster: embedded NATS not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: connect to NATS: %w", err)
	}
	c.close = append(c.close, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	prefix := cfg.NATS.SubjectPrefix
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: prefix, MaxAccessTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime}); err != nil {
		return nil, nil, fmt.Errorf("cluster: create the streams: %w", err)
	}
	pub, err := bus.NewPublisher(js, prefix)
	if err != nil {
		return nil, nil, err
	}
	return js, pub, nil
}

// seed registers the resource server, the clients (replacing any a previous
// run left, with new secrets) and the user (with a new password).
func (c *Cluster) seed(ctx context.Context, st *redisstore.Store, h *secret.Hasher, ua *users.Authenticator) error {
	rs := store.ResourceServer{ID: Resource, Name: "load test API", Scopes: []string{"read", "write"}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := st.CreateResourceServer(ctx, rs); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	cc, err := secret.New()
	if err != nil {
		return err
	}
	web, err := secret.New()
	if err != nil {
		return err
	}
	now := time.Now()
	res := map[string][]string{Resource: {"read", "write"}}
	userGrants := []string{"authorization_code", "refresh_token"}
	for _, cl := range []store.Client{{
		ID: ClientID, Name: "load test", Type: store.Confidential,
		Secrets:    []store.Secret{{ID: "s1", Hash: h.Hash(cc), CreatedAt: now}},
		GrantTypes: []string{"client_credentials"},
	}, {
		ID: WebClientID, Name: "Load test web app", Type: store.Confidential,
		Secrets:    []store.Secret{{ID: "s1", Hash: h.Hash(web), CreatedAt: now}},
		GrantTypes: userGrants, RedirectURIs: []string{RedirectURI},
	}, {
		ID: PublicClientID, Name: "Load test native app", Type: store.Public,
		GrantTypes: userGrants, RedirectURIs: []string{RedirectURI},
	}} {
		cl.Resources, cl.DefaultResource, cl.AccessTokenLifetime = res, Resource, 5*time.Minute
		cl.CreatedAt, cl.UpdatedAt = now, now
		if err := st.DeleteClient(ctx, cl.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := st.CreateClient(ctx, cl); err != nil {
			return fmt.Errorf("client %s: %w", cl.ID, err)
		}
	}
	pw, err := secret.New()
	if err != nil {
		return err
	}
	if _, err := ua.Add(ctx, Username, pw); errors.Is(err, users.ErrAlreadyExists) {
		err = ua.SetPassword(ctx, Username, pw)
		if err == nil {
			err = ua.SetDisabled(ctx, Username, false)
		}
		if err != nil {
			return fmt.Errorf("user %s: %w", Username, err)
		}
	} else if err != nil {
		return fmt.Errorf("user %s: %w", Username, err)
	}
	c.Creds = Creds{
		Resource: Resource, RedirectURI: RedirectURI,
		ClientID: ClientID, ClientSecret: cc,
		WebClientID: WebClientID, WebClientSecret: web, PublicClientID: PublicClientID,
		Username: Username, Password: pw,
	}
	return nil
}

// PublicAddr returns the issuer's public listener address.
func (c *Cluster) PublicAddr(ctx context.Context) (net.Addr, error) {
	a, _, err := c.svc.Server().Addrs(ctx)
	return a, err
}

// AdminAddr returns the issuer's admin listener address (/readyz,
// /metrics).
func (c *Cluster) AdminAddr(ctx context.Context) (net.Addr, error) {
	_, a, err := c.svc.Server().Addrs(ctx)
	return a, err
}

// Done is closed when the issuer has stopped; Err then says why.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Err returns why the issuer stopped (nil after a clean Close); only valid
// once Done is closed.
func (c *Cluster) Err() error { return c.err }

// Close drains the issuer, stops its background work and closes NATS and
// Redis. It returns the issuer's error, if it failed.
func (c *Cluster) Close() error {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.wg.Wait()
	}
	c.closeAll()
	if errors.Is(c.err, context.Canceled) {
		return nil
	}
	return c.err
}

// closeAll closes what Start opened, last first.
func (c *Cluster) closeAll() {
	for i := len(c.close) - 1; i >= 0; i-- {
		c.close[i]()
	}
	c.close = nil
}
