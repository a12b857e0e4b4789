// Command cluster runs one issuer for load tests, in one process
// (loadtest/internal/cluster): an embedded NATS server with JetStream and
// the issuer with its user grants, against the Redis named by -redis. It
// registers the fixtures (a client-credentials client, a confidential and a
// public web client, a user with a new password), writes their credentials
// as shell assignments to -out, and serves net/http/pprof on -pprof so that
// a load run can take a CPU profile of the server.
//
//	cluster -redis redis://127.0.0.1:6380/0 -listen 127.0.0.1:18080 -out creds.env
//
// It is a harness, not a deployment: dev mode, a random key-encryption key,
// loopback listeners. loadtest/run.sh drives it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/valetauth/valet/loadtest/internal/cluster"
	"github.com/valetauth/valet/loadtest/internal/codeflow"
	"github.com/valetauth/valet/pkg/boot"
)

func main() {
	redisURL := flag.String("redis", "", "Redis URL (required), e.g. redis://127.0.0.1:6380/0")
	listen := flag.String("listen", "127.0.0.1:18080", "issuer public listener")
	admin := flag.String("admin", "127.0.0.1:19080", "issuer admin listener (metrics, /readyz)")
	pprofAddr := flag.String("pprof", "127.0.0.1:16060", "net/http/pprof listener; empty for none")
	out := flag.String("out", "", "file to write the credentials to (shell assignments; see writeCreds)")
	storeDir := flag.String("jetstream-dir", "", "JetStream store directory (default: a temporary directory)")
	level := flag.String("log-level", "warn", "log level")
	prefix := flag.String("key-prefix", "", "Redis key prefix (default the configuration's, valet:); set one on a shared Redis")
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
	o := cluster.Options{RedisURL: *redisURL, KeyPrefix: *prefix, Listen: *listen, Admin: *admin, JetStreamDir: *storeDir}
	if err := run(ctx, o, *pprofAddr, *out, *level); err != nil {
		log.Fatalf("cluster: %v", err)
	}
}

func run(ctx context.Context, o cluster.Options, pprofAddr, out, level string) error {
	logger, err := boot.NewLogger(level, "console")
	if err != nil {
		return err
	}
	o.Logger = logger
	c, err := cluster.Start(ctx, o)
	if err != nil {
		return err
	}
	if pprofAddr != "" {
		go func() {
			if err := http.ListenAndServe(pprofAddr, nil); err != nil {
				logger.Error("pprof listener", zap.Error(err))
			}
		}()
	}
	// The credentials file is the signal that the run may start: Start has
	// returned once the client cache trusts its events.
	if out != "" {
		if err := writeCreds(out, c.Creds); err != nil {
			_ = c.Close()
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "cluster: issuer on %s (admin %s, pprof %s)\n", strings.TrimSuffix(c.TokenURL, "/token"), o.Admin, pprofAddr)
	select {
	case <-ctx.Done():
	case <-c.Done():
	}
	return c.Close()
}

// writeCreds writes the credentials as shell assignments, single-quoted
// (values are URL-safe, so no quote needs escaping):
//
//	CLIENT_ID, CLIENT_SECRET, AUTHORIZATION   client_credentials (Basic header value)
//	TOKEN_URL, AUTHORIZE_URL, ISSUER, RESOURCE, REDIRECT_URI
//	WEB_CLIENT_ID, WEB_CLIENT_SECRET, WEB_AUTHORIZATION   authorization_code + refresh_token
//	PUBLIC_CLIENT_ID                          the same grants, public client
//	LOGIN_USER, LOGIN_PASSWORD                the user who signs in
func writeCreds(path string, c cluster.Creds) error {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"CLIENT_ID", c.ClientID}, {"CLIENT_SECRET", c.ClientSecret},
		{"AUTHORIZATION", codeflow.BasicAuth(c.ClientID, c.ClientSecret)},
		{"TOKEN_URL", c.TokenURL}, {"AUTHORIZE_URL", c.AuthorizeURL}, {"ISSUER", c.Issuer},
		{"RESOURCE", c.Resource}, {"REDIRECT_URI", c.RedirectURI},
		{"WEB_CLIENT_ID", c.WebClientID}, {"WEB_CLIENT_SECRET", c.WebClientSecret},
		{"WEB_AUTHORIZATION", codeflow.BasicAuth(c.WebClientID, c.WebClientSecret)},
		{"PUBLIC_CLIENT_ID", c.PublicClientID},
		{"LOGIN_USER", c.Username}, {"LOGIN_PASSWORD", c.Password},
	} {
		fmt.Fprintf(&b, "%s='%s'\n", kv[0], kv[1])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
