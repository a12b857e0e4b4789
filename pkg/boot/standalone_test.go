package boot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/pkg/boot"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/testenv"
)

// standaloneEnv returns the Env of a dev-mode service on rs and natsURL
// whose Redis connections carry a name of their own, so that the test can
// count them on a server other tests may share (REDIS_URL), and that name.
func standaloneEnv(t *testing.T, rs *testenv.RedisServer, natsURL, subjectPrefix string) (boot.Env, string) {
	t.Helper()
	name := "boot-test-" + strings.TrimSuffix(rs.Prefix, ":")
	sep := "?"
	if strings.Contains(rs.URL, "?") {
		sep = "&"
	}
	cfg := config.Default()
	cfg.Dev = true
	cfg.Redis.URL, cfg.Redis.KeyPrefix = rs.URL+sep+"client_name="+name, rs.Prefix
	cfg.NATS.URL, cfg.NATS.SubjectPrefix = natsURL, subjectPrefix
	return boot.Env{Config: &cfg, Logger: zaptest.NewLogger(t), Registry: prometheus.NewRegistry()}, name
}

// openDeps opens the Deps of a service on a harness Redis and NATS and
// returns them with the Redis server and the name of their connections.
func openDeps(t *testing.T) (*boot.Deps, *testenv.RedisServer, string) {
	t.Helper()
	rs, ns := testenv.Redis(t), testenv.NATS(t)
	env, name := standaloneEnv(t, rs, ns.URL, ns.Prefix)
	d, err := boot.Open(context.Background(), env, "probe")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d, rs, name
}

// redisConns returns how many connections named name rs has.
func redisConns(t *testing.T, rs *testenv.RedisServer, name string) int {
	t.Helper()
	opt, err := goredis.ParseURL(rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(list, " name="+name+" ")
}

// waitRedisConns fails t unless rs has want connections named name within
// five seconds: the server notices a closed connection a moment later.
func waitRedisConns(t *testing.T, rs *testenv.RedisServer, name string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := redisConns(t, rs, name)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Redis connections named %s, want %d", n, name, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOpenFailsHalfWay: when NATS fails after the store is open, Open
// returns the error and leaves neither Redis nor NATS connected; a
// configuration without servers opens nothing.
func TestOpenFailsHalfWay(t *testing.T) {
	rs := testenv.Redis(t)
	// NATS without JetStream: the service connects, then cannot declare
	// its streams.
	srv := testenv.NATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	ctx := context.Background()

	env, name := standaloneEnv(t, rs, srv.ClientURL(), "boottest")
	if _, err := boot.Open(ctx, env, "probe"); err == nil {
		t.Fatal("Open without JetStream succeeded")
	}
	waitRedisConns(t, rs, name, 0)
	for deadline := time.Now().Add(5 * time.Second); srv.NumClients() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d NATS connections left open, want 0", srv.NumClients())
		}
	}

	env.Config.NATS.URL = ""
	_, err := boot.Open(ctx, env, "probe")
	if want := "probe: redis.url and nats.url are required (the embedded stand-ins run only inside `valet dev`)"; err == nil || err.Error() != want {
		t.Fatalf("Open without nats.url: %v, want %q", err, want)
	}
	waitRedisConns(t, rs, name, 0)
}

// TestDepsCloseOrder: a failed start closes, through CloseOnError, what the
// main added with OnClose first (newest first), while NATS and the store it
// may use are still open, then NATS and the store; nothing is closed twice.
func TestDepsCloseOrder(t *testing.T) {
	ctx := context.Background()
	d, rs, name := openDeps(t)
	if n := redisConns(t, rs, name); n == 0 {
		t.Fatal("no Redis connection named for the test: the count proves nothing")
	}
	if err := boot.NATSReady(d.NATS).Fn(ctx); err != nil {
		t.Fatalf("nats readiness with the connection up: %v", err)
	}

	var closed []string
	probe := func(label string) closerFunc {
		return func() error {
			if d.NATS.IsClosed() {
				t.Errorf("%s closed after NATS", label)
			}
			if err := d.Store.Client().Ping(ctx).Err(); err != nil {
				t.Errorf("%s closed after the store: %v", label, err)
			}
			closed = append(closed, label)
			return nil
		}
	}
	d.OnClose(probe("checker"))
	d.OnClose(probe("cache"))

	build := func() (err error) {
		defer d.CloseOnError(&err)
		return errors.New("start failed")
	}
	if err := build(); err == nil {
		t.Fatal("build returned nil")
	}
	if got := strings.Join(closed, ","); got != "cache,checker" {
		t.Fatalf("closed %s, want cache,checker", got)
	}
	if !d.NATS.IsClosed() {
		t.Fatal("NATS still open")
	}
	if err := d.Store.Client().Ping(ctx).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Fatalf("store Ping after Close: %v, want redis: client is closed", err)
	}
	if err := boot.NATSReady(d.NATS).Fn(ctx); err == nil {
		t.Fatal("nats readiness with the connection closed passed")
	}
	waitRedisConns(t, rs, name, 0)
	d.Close()
	if len(closed) != 2 {
		t.Fatalf("a second Close closed again: %v", closed)
	}
}

// TestCloseOnErrorSuccess: a start that succeeded leaves everything open
// for the Runner's Close.
func TestCloseOnErrorSuccess(t *testing.T) {
	ctx := context.Background()
	d, _, _ := openDeps(t)
	defer d.Close()
	build := func() (err error) {
		defer d.CloseOnError(&err)
		return nil
	}
	if err := build(); err != nil {
		t.Fatal(err)
	}
	if d.NATS.IsClosed() {
		t.Fatal("NATS closed after a successful start")
	}
	if err := d.Store.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("store closed after a successful start: %v", err)
	}
}

// closerFunc adapts a function to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }
