package main

// valet dev: the whole system in one process (MISSION §2, issue 7 item 2).
//
// One data directory holds everything that must survive a restart: the
// embedded store (valet.db, bbolt, locked by one process), the embedded NATS
// server's JetStream files (nats/), the development key-encryption key
// (dev-kek, 0600) and the demo credentials (demo-credentials.json and
// demo.env, 0600). REDIS_URL and NATS_URL (or VALET_REDIS_URL and
// VALET_NATS_URL) replace the embedded stand-ins with real servers.
//
// The process hosts the issuer, introspection, revocation and the edge
// authorizer on their configured listeners (defaults :8080 to :8083, admin
// listeners 127.0.0.1:9080 to 9083). The edge runs in its reverse-proxy mode
// (docs/gateway.md): besides its forward-auth endpoints, it authorizes every
// other request and passes accepted ones, with the X-Valet-* identity
// headers, to a demo upstream that echoes them (or to --upstream).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/bootstrap"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/cors"
	pkgedge "github.com/valetauth/valet/pkg/edge"
	"github.com/valetauth/valet/pkg/keys"
	"github.com/valetauth/valet/pkg/ratelimit/clientlimit"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/server"
	"github.com/valetauth/valet/pkg/store"
	boltstore "github.com/valetauth/valet/pkg/store/bolt"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/edge"
	"github.com/valetauth/valet/services/introspection"
	"github.com/valetauth/valet/services/issuer"
	"github.com/valetauth/valet/services/revocation"
)

const devUsage = `usage: valet dev [--data DIR] [--config FILE] [--upstream URL] [--nats-port N]

Runs the issuer, introspection, revocation and the edge authorizer (as a
reverse proxy in front of a demo API) in one process, with an embedded NATS server and the embedded store
under DIR (default ./data). REDIS_URL and NATS_URL select real servers.
Every configuration key can be overridden as in the services
(docs/configuration.md); dev: true is implied.
`

// Defaults of valet dev.
const (
	// DefaultDevNATSPort is where the embedded NATS server listens, away from
	// 4222 so that a NATS already running there is left alone; a random
	// free port is taken when it is busy.
	defaultDevNATSPort = 14222
)

// devOptions configure one dev server.
type devOptions struct {
	// DataDir holds the store, the NATS files, the KEK and the demo
	// credentials.
	DataDir string
	// ConfigPath is an optional configuration file.
	ConfigPath string
	// Upstream, when set, is where the edge proxies accepted requests
	// instead of the built-in demo upstream.
	Upstream string
	// NATSPort is the embedded NATS server's preferred port; -1 takes a
	// random free one.
	NATSPort int
	// LookupEnv reads the environment (tests replace it).
	LookupEnv func(string) (string, bool)
	// Out receives the banner: URLs, credentials and the ready line.
	Out io.Writer
	// Logger replaces the logger built from the configuration (tests).
	Logger *zap.Logger
}

// runDev is `valet dev`: it runs until SIGINT or SIGTERM.
func runDev(args []string, stdout, stderr io.Writer) int {
	start := time.Now()
	fs := flag.NewFlagSet("valet dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, devUsage); fs.PrintDefaults() }
	opts := devOptions{LookupEnv: os.LookupEnv, Out: stdout}
	fs.StringVar(&opts.DataDir, "data", "data", "data directory (store, NATS files, development key, demo credentials)")
	fs.StringVar(&opts.ConfigPath, "config", "", "configuration file (default: $"+config.FileEnv+")")
	fs.StringVar(&opts.Upstream, "upstream", "", "proxy requests the edge accepts to this URL instead of the built-in demo upstream")
	fs.IntVar(&opts.NATSPort, "nats-port", defaultDevNATSPort, "embedded NATS port (-1: random; a busy port falls back to random)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "valet dev: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := newDev(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "valet dev: %v\n", err)
		return 1
	}
	d.started = start
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "valet dev: %v\n", err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintln(stderr, "valet dev: a port is taken: stop what listens there, or move the service with its VALET_SERVICES_<NAME>_LISTEN and _PUBLIC_URL (docs/configuration.md)")
		}
		return 1
	}
	return 0
}

// devServer is every service of Valet in one process.
type devServer struct {
	cfg   *config.Config
	opts  devOptions
	log   *zap.Logger
	creds demoCredentials
	fresh bool // the demo data was created by this start

	ns       natsServer // nil with NATS_URL
	natsURL  string
	nc       *nats.Conn
	js       jetstream.JetStream
	st       store.Store
	users    users.Store
	chk      *pkgedge.Checker
	services []namedService
	// upstream names where the edge proxies accepted requests (banner).
	upstream string
	bg       []func(context.Context)

	// transport carries the in-process HTTP calls (JWKS for the edge and
	// the checker); Run closes its idle
	// connections before the listeners drain, which would otherwise wait
	// up to 5s for a pooled connection that never sent a request.
	transport *http.Transport

	started time.Time
	ready   chan struct{}
	closers []func()
}

// namedService is one hosted service.
type namedService struct {
	name string
	svc  interface {
		Run(ctx context.Context) error
		Server() *server.Server
	}
}

// newDev opens every dependency (store, NATS, keys), creates the demo data
// on first start, and builds the services. Nothing listens yet: Run starts
// them. On error everything opened so far is closed.
func newDev(ctx context.Context, o devOptions) (_ *devServer, err error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	d := &devServer{opts: o, ready: make(chan struct{}), started: time.Now(),
		transport: http.DefaultTransport.(*http.Transport).Clone()}
	hc := &http.Client{Transport: d.transport, Timeout: 10 * time.Second}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	cfg, err := config.Load(boot.ConfigPath(o.ConfigPath), devEnv(o.LookupEnv))
	if err != nil {
		return nil, fmt.Errorf("configuration refused:\n%w", err)
	}
	if !cfg.Dev {
		return nil, errors.New("valet dev runs in dev mode only: remove dev: false from the configuration")
	}
	d.cfg = cfg
	if d.log = o.Logger; d.log == nil {
		if d.log, err = boot.NewLogger(cfg.Log.Level, cfg.Log.Format); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}

	// Key-encryption keys: the configured ones, else the development key
	// of this data directory.
	active, keks, err := boot.ResolveKEKs(cfg)
	if errors.Is(err, boot.ErrNoKEKs) {
		active, keks, err = devKEK(o.DataDir)
		if err == nil {
			d.log.Warn("using the development key-encryption key of the data directory; it protects nothing",
				zap.String("file", filepath.Join(o.DataDir, devKEKFile)))
		}
	}
	if err != nil {
		return nil, err
	}
	ring, err := keys.NewKEKRing(active, keks)
	if err != nil {
		return nil, err
	}
	hasher, err := secret.NewHasher(active, keks)
	if err != nil {
		return nil, err
	}
	aead, err := boot.SuccessorAEAD(keks[active])
	if err != nil {
		return nil, err
	}

	// The store: Redis when configured, else the embedded one (one
	// process per data directory: its file is locked).
	if cfg.Redis.URL != "" {
		rs, err := boot.Store(ctx, cfg, aead, d.log)
		if err != nil {
			return nil, err
		}
		d.st = rs
		// Users live in the same Redis, under the same prefix, as with
		// cmd/issuer.
		d.users = users.NewRedis(rs.Client(), cfg.Redis.KeyPrefix)
	} else {
		path := filepath.Join(o.DataDir, "valet.db")
		bs, err := boltstore.New(path, aead, boltstore.WithLogger(d.log),
			boltstore.WithDenyRetention(cfg.Tokens.ReplayWindow()), boltstore.WithMaxGrantLifetime(cfg.Tokens.RefreshAbsoluteLifetime))
		if err != nil {
			return nil, fmt.Errorf("%w\n(is another `valet dev` running on %s? one process per data directory; use --data for another)", err, o.DataDir)
		}
		d.st = bs
		// Users live in the same file (its users bucket).
		d.users = bs.Users()
	}
	d.closers = append(d.closers, func() { _ = d.st.Close() })

	// NATS: the configured servers, else the embedded one.
	if cfg.NATS.URL != "" {
		if d.nc, err = boot.NATS(cfg.NATS, "valet-dev"); err != nil {
			return nil, err
		}
		d.natsURL = cfg.NATS.URL
	} else {
		ns, err := startNATS(filepath.Join(o.DataDir, "nats"), o.NATSPort)
		if err != nil {
			return nil, err
		}
		d.ns = ns
		d.closers = append(d.closers, func() { ns.Shutdown(); ns.WaitForShutdown() })
		d.natsURL = ns.ClientURL()
		if d.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("valet-dev"),
			nats.MaxReconnects(-1)); err != nil {
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
	}
	nc := d.nc
	d.closers = append(d.closers, func() { nc.Close() })
	if d.js, err = jetstream.New(nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = bus.EnsureStreams(sctx, d.js, boot.StreamsConfig(cfg))
	cancel()
	if err != nil {
		return nil, err
	}
	pub, err := bus.NewPublisher(d.js, cfg.NATS.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	// What the key manager, the bootstrap and the admin API publish.
	publish := boot.PublishFunc(pub)

	// The local user store behind the login page (argon2id, as in
	// cmd/issuer).
	ua, err := users.NewAuthenticator(d.users, users.DefaultParams)
	if err != nil {
		return nil, err
	}

	// Demo data, straight into the store, before any cache reads it.
	if d.creds, d.fresh, err = seedDemo(ctx, d.st, hasher, ua, cfg, o.DataDir); err != nil {
		return nil, err
	}

	natsReady := boot.NATSReady(nc)
	// Each service gets its own registry, served on its own admin
	// listener, as when they run apart: their metric names overlap.
	issReg, inReg, revReg, edgeReg := newRegistries()

	km, err := keys.New(boot.KeysConfig(cfg), d.st, publish, ring,
		keys.WithLogger(d.log.With(zap.String("service", "issuer"))), keys.WithRegisterer(issReg))
	if err != nil {
		return nil, err
	}
	// The first load creates and announces the first signing key, so the
	// issuer is ready to sign when it starts listening.
	if err := km.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	beat, err := boot.NewHeartbeater(boot.Env{Config: cfg, Logger: d.log}, pub, "valet-dev")
	if err != nil {
		return nil, err
	}
	revEnv := boot.Env{Config: cfg, Logger: d.log.With(zap.String("service", "revocation")), Registry: revReg}
	rev, relay, err := boot.NewRevoker(revEnv, d.st, pub)
	if err != nil {
		return nil, err
	}
	if !cfg.Bootstrap.Empty() {
		// Declared objects (docs/bootstrap.md) are applied as the issuer
		// applies them, after the demo seed, so a declaration wins.
		spec, err := bootstrap.Resolve(cfg, devEnv(o.LookupEnv))
		if err != nil {
			return nil, fmt.Errorf("declarative bootstrap refused (docs/bootstrap.md):\n%w", err)
		}
		if _, err := bootstrap.Apply(ctx, spec, bootstrap.Deps{
			Registry: d.st, Hasher: hasher, Users: d.users, PasswordParams: users.DefaultParams,
			Publisher: publish, Source: cfg.Issuer, Revoker: rev,
			Logger: d.log.With(zap.String("component", "bootstrap")), Registerer: issReg,
		}); err != nil {
			return nil, fmt.Errorf("declarative bootstrap not applied (docs/bootstrap.md): %w", err)
		}
	}
	// One client cache serves the three services that authenticate
	// clients; its metrics are the issuer's.
	cache, err := boot.NewClientCache(boot.Env{Config: cfg, Logger: d.log, Registry: issReg}, d.st)
	if err != nil {
		return nil, err
	}
	// The checker of introspection and revocation fetches the issuer's
	// JWKS: Run starts it once the issuer listens.
	ccfg := boot.CheckerConfig(cfg, d.js)
	ccfg.HTTPClient = hc
	if d.chk, err = pkgedge.NewChecker(ccfg); err != nil {
		return nil, err
	}
	chk := d.chk
	d.closers = append(d.closers, func() { _ = chk.Close() })
	jwksReady := server.Check{Name: "jwks", Fn: func(context.Context) error { return chk.Ready() }}

	// CORS allow-list for /token, /revoke, discovery and JWKS: the origins
	// of every enabled public client, re-read from the store.
	origins, err := cors.NewRegistry(d.st, cors.WithLogger(d.log))
	if err != nil {
		return nil, err
	}
	// Request limits (limits.client_*), one set per service as each
	// service's main builds them: in memory, per replica.
	var clientLimits [3]clientlimit.Limits
	for i := range clientLimits {
		if clientLimits[i], err = clientlimit.FromConfig(cfg.Limits); err != nil {
			return nil, err
		}
	}
	iss, err := issuer.New(cfg, issuer.Deps{
		Logger: d.log.With(zap.String("service", "issuer")), Registry: issReg, ClientLimits: clientLimits[0],
		Store: d.st, Keys: km, Clients: cache, Secrets: hasher,
		// The user grants (authorization code with PKCE, refresh, device,
		// login and consent pages), wired as in cmd/issuer. LoginLimiter
		// stays nil: dev mode does not slow password guessing.
		Grants: d.st, Sessions: d.st, Users: ua, Revoker: rev, Audit: pub,
		Origins: origins,
		// The admin API on the issuer's admin listener, as in cmd/issuer,
		// so that valet clients|resources|keys|users work against valet dev
		// with the printed admin client.
		Admin: &issuer.AdminDeps{
			Store: d.st, Checker: chk, Revoker: rev, Keys: km, Hasher: hasher, Cache: cache, Users: ua,
			Publisher: publish,
		},
		Ready: []server.Check{natsReady},
	})
	if err != nil {
		return nil, err
	}
	in, err := introspection.New(cfg, introspection.Deps{
		Logger: d.log.With(zap.String("service", "introspection")), Registry: inReg, ClientLimits: clientLimits[1],
		Store: d.st, Clients: cache, Secrets: hasher, Checker: chk,
		Ready: []server.Check{natsReady, jwksReady},
	})
	if err != nil {
		return nil, err
	}
	rv, err := revocation.New(cfg, revocation.Deps{
		Logger: d.log.With(zap.String("service", "revocation")), Registry: revReg, ClientLimits: clientLimits[2],
		Store: d.st, Revoker: rev, Clients: cache, Secrets: hasher, Checker: chk,
		Origins: origins,
		Ready:   []server.Check{natsReady, jwksReady},
	})
	if err != nil {
		return nil, err
	}
	audience := cfg.Services.Edge.Audience
	if audience == "" {
		audience = demoResource
	}
	policy := demoPolicy
	if cfg.Services.Edge.RoutesFile != "" {
		if policy, err = edge.LoadPolicy(cfg.Services.Edge.RoutesFile); err != nil {
			return nil, err
		}
	}
	// The edge is the demo gateway too: its reverse-proxy mode passes
	// accepted requests to --upstream, a configured services.edge.upstream,
	// or the built-in demo API.
	var demoAPI http.Handler
	switch {
	case o.Upstream != "":
		cfg.Services.Edge.Upstream = o.Upstream
		d.upstream = o.Upstream
	case cfg.Services.Edge.Upstream != "":
		d.upstream = cfg.Services.Edge.Upstream
	default:
		demoAPI, d.upstream = http.HandlerFunc(demoUpstream), "the built-in demo upstream"
	}
	ed, err := edge.New(cfg, edge.Deps{
		Logger: d.log.With(zap.String("service", "edge")), Registry: edgeReg, Upstream: demoAPI,
		JetStream: d.js, Audience: audience, Policy: policy,
		EdgeOptions: []pkgedge.Option{pkgedge.WithHTTPClient(hc)},
		Ready:       []server.Check{natsReady},
	})
	if err != nil {
		return nil, err
	}
	d.services = []namedService{{"issuer", iss}, {"introspection", in}, {"revocation", rv}, {"edge", ed}}
	d.bg = []func(context.Context){
		func(ctx context.Context) { _ = km.Run(ctx) },
		// Key events of other replicas and `valet keys revoke` refresh the
		// ring at once, not at the next refresh interval.
		func(ctx context.Context) { _ = km.Follow(ctx, d.js, cfg.NATS.SubjectPrefix) },
		func(ctx context.Context) { _ = beat.Run(ctx) },
		func(ctx context.Context) { relay.Run(ctx) },
		origins.Run,
		func(ctx context.Context) {
			if err := cache.Run(ctx, d.js); err != nil && ctx.Err() == nil {
				d.log.Error("client cache stopped; lookups read the store", zap.Error(err))
			}
		},
	}
	return d, nil
}

// devEnv is lookupEnv with dev mode on and REDIS_URL and NATS_URL mapped
// to redis.url and nats.url, unless the VALET_ variables say otherwise; the
// logs default to the console format.
func devEnv(lookupEnv func(string) (string, bool)) func(string) (string, bool) {
	defaults := map[string]string{"VALET_DEV": "true", "VALET_LOG_FORMAT": "console"}
	alias := map[string]string{"VALET_REDIS_URL": "REDIS_URL", "VALET_NATS_URL": "NATS_URL"}
	return func(name string) (string, bool) {
		if v, ok := lookupEnv(name); ok && v != "" {
			return v, true
		}
		if a, ok := alias[name]; ok {
			if v, ok := lookupEnv(a); ok && v != "" {
				return v, true
			}
		}
		v, ok := defaults[name]
		return v, ok
	}
}

// newRegistries returns one metrics registry per hosted service; the first
// (the issuer's) also carries the Go and process collectors, once.
func newRegistries() (issuer, introspection, revocation, edge *prometheus.Registry) {
	issuer = prometheus.NewRegistry()
	issuer.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return issuer, prometheus.NewRegistry(), prometheus.NewRegistry(), prometheus.NewRegistry()
}

// Ready is closed once every service answers /readyz with 200 and the
// gateway listens.
func (d *devServer) Ready() <-chan struct{} { return d.ready }

// Run serves until ctx ends, then shuts everything down: the listeners
// drain, the background work stops, NATS and the store close.
func (d *devServer) Run(ctx context.Context) error {
	defer d.close()
	bctx, cancelBG := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	for _, fn := range d.bg {
		bg.Go(func() { fn(bctx) })
	}
	defer func() { cancelBG(); bg.Wait() }()

	// The listeners stop when ctx ends, just after the idle in-process
	// connections are closed.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopped := context.AfterFunc(ctx, func() {
		d.transport.CloseIdleConnections()
		cancel()
	})
	defer stopped()
	errc := make(chan error, len(d.services)+1)
	var wg sync.WaitGroup
	for _, s := range d.services {
		wg.Go(func() {
			if err := s.svc.Run(sctx); err != nil {
				errc <- fmt.Errorf("%s: %w", s.name, err)
				cancel()
			}
		})
	}
	defer wg.Wait()

	if err := d.startup(sctx); err != nil {
		cancel()
		wg.Wait()
		select {
		case e := <-errc:
			return e
		default:
		}
		return err
	}
	<-sctx.Done()
	d.log.Info("valet dev: shutting down")
	wg.Wait()
	select {
	case e := <-errc:
		return e
	default:
	}
	return nil
}

// startup waits for the listeners, starts the token checker once the
// issuer serves JWKS, waits until every service is ready, then prints the
// banner and the ready line.
func (d *devServer) startup(ctx context.Context) error {
	addrs := map[string][2]net.Addr{}
	for _, s := range d.services {
		pub, adm, err := s.svc.Server().Addrs(ctx)
		if err != nil {
			return err
		}
		addrs[s.name] = [2]net.Addr{pub, adm}
	}
	if err := boot.StartChecker(ctx, d.chk.Start); err != nil {
		d.log.Warn("JWKS not fetched yet; retrying in the background", zap.Error(err))
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, s := range d.services {
		u := "http://" + loopback(addrs[s.name][1]) + "/readyz"
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			resp, err := hc.Do(req)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	d.banner(addrs)
	close(d.ready)
	return nil
}

// loopback returns addr with an unspecified host replaced by 127.0.0.1.
func loopback(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// localhost returns addr as localhost:port when its host is unspecified
// or loopback, for URLs a person types.
func localhost(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsUnspecified() || ip.IsLoopback())) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// banner prints where everything is and the demo credentials.
func (d *devServer) banner(addrs map[string][2]net.Addr) {
	cfg, c := d.cfg, d.creds
	w := d.opts.Out
	storeDesc := "embedded, " + filepath.Join(d.opts.DataDir, "valet.db")
	if cfg.Redis.URL != "" {
		storeDesc = "redis " + cfg.Redis.URL
	}
	natsDesc := d.natsURL + " (embedded, JetStream in " + filepath.Join(d.opts.DataDir, "nats") + ")"
	if d.ns == nil {
		natsDesc = d.natsURL
	}
	fmt.Fprintf(w, "\nValet dev cluster (data: %s)\n", d.opts.DataDir)
	fmt.Fprintf(w, "  issuer          %s  (token: %s, JWKS: %s)\n", cfg.Issuer, cfg.Services.Issuer.URL("/token"), cfg.Services.Issuer.URL("/jwks.json"))
	fmt.Fprintf(w, "  introspection   %s\n", cfg.Services.Introspection.URL(introspection.IntrospectPath))
	fmt.Fprintf(w, "  revocation      %s  (admin API: http://%s%s/...)\n", cfg.Services.Revocation.URL(revocation.RevokePath), loopback(addrs["revocation"][1]), revocation.AdminPrefix)
	fmt.Fprintf(w, "  edge            http://%s/  (reverse proxy to %s; forward-auth at %s, %s, %s)\n",
		localhost(addrs["edge"][0]), d.upstream, edge.PathTraefik, edge.PathNGINX, edge.PathEnvoy)
	for _, s := range d.services {
		fmt.Fprintf(w, "  %-15s admin http://%s  (/healthz, /readyz, /metrics)\n", s.name, loopback(addrs[s.name][1]))
	}
	fmt.Fprintf(w, "  NATS            %s\n", natsDesc)
	fmt.Fprintf(w, "  store           %s\n", storeDesc)
	fmt.Fprintf(w, "demo resource     %s  (scopes: read write)\n", c.Resource)
	fmt.Fprintf(w, "demo client       %s / %s  (client_credentials)\n", c.ClientID, c.ClientSecret)
	fmt.Fprintf(w, "admin client      %s / %s  (resource %s, scope valet:admin)\n", c.AdminClientID, c.AdminClientSecret, c.AdminResource)
	fmt.Fprintf(w, "demo public app   %s  (authorization_code + PKCE, refresh_token, device_code; redirect %s, any port)\n", c.SPAClientID, demoSPARedirect)
	fmt.Fprintf(w, "demo user         %s / %s  (login page: %s)\n", c.Username, c.Password, cfg.Services.Issuer.URL("/authorize"))
	envPath := filepath.Join(d.opts.DataDir, demoEnvFile)
	if err := writeDemoEnv(envPath, c, [][2]string{
		{"ISSUER", cfg.Issuer},
		{"TOKEN_URL", cfg.Services.Issuer.URL("/token")},
		{"INTROSPECT_URL", cfg.Services.Introspection.URL(introspection.IntrospectPath)},
		{"REVOKE_URL", cfg.Services.Revocation.URL(revocation.RevokePath)},
		{"GATEWAY_URL", "http://" + localhost(addrs["edge"][0])},
		// The admin CLI's connection (valet clients|resources|keys|users
		// and valet revoke), as the demo admin client.
		{envIssuerAdminURL, "http://" + loopback(addrs["issuer"][1])},
		{envAdminURL, "http://" + loopback(addrs["revocation"][1])},
		{envTokenURL, cfg.Services.Issuer.URL("/token")},
		{envClientID, c.AdminClientID},
		{envClientSecret, c.AdminClientSecret},
		{envIssuer, cfg.Issuer},
	}); err != nil {
		d.log.Warn("demo.env not written", zap.Error(err))
	}
	fmt.Fprintf(w, "credentials in    %s and %s (0600; `. %s` in a shell)\n",
		filepath.Join(d.opts.DataDir, demoCredentialsFile), filepath.Join(d.opts.DataDir, demoEnvFile), filepath.Join(d.opts.DataDir, demoEnvFile))
	first := ""
	if d.fresh {
		first = ", demo data created"
	}
	fmt.Fprintf(w, "valet dev ready in %s%s\n", time.Since(d.started).Round(time.Millisecond), first)
}

// close releases what newDev opened, in reverse order.
func (d *devServer) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
	if d.log != nil {
		_ = d.log.Sync()
	}
}
