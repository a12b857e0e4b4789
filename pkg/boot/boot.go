// Package boot opens the connections a service's main needs from the
// configuration: Redis (single, Sentinel or Cluster, with TLS and ACL user)
// and NATS (credentials, NKey, TLS, endless reconnect). Only cmd/*/main.go and
// the all-in-one dev server call it; everything else gets its clients through
// constructors.
package boot

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/config"
)

// Redis returns a client for cfg and checks that it answers.
func Redis(ctx context.Context, cfg config.Redis) (goredis.UniversalClient, error) {
	opt, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	password, err := cfg.ReadPassword()
	if err != nil {
		return nil, err
	}
	if password != "" {
		opt.Password = password
	}
	if cfg.Username != "" {
		opt.Username = cfg.Username
	}
	if cfg.UseTLS() {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("redis.tls: %w", err)
		}
		if tc.ServerName == "" {
			tc.ServerName = strings.Split(opt.Addr, ":")[0]
		}
		opt.TLSConfig = tc
	}
	if cfg.PoolSize > 0 {
		opt.PoolSize = cfg.PoolSize
	}
	if cfg.DialTimeout > 0 {
		opt.DialTimeout = cfg.DialTimeout
	}
	if cfg.ReadTimeout > 0 {
		opt.ReadTimeout, opt.WriteTimeout = cfg.ReadTimeout, cfg.ReadTimeout
	}
	addrs := append([]string{opt.Addr}, extraAddrs(cfg.URL)...)
	uo := &goredis.UniversalOptions{
		Addrs: addrs, DB: opt.DB, Username: opt.Username, Password: opt.Password,
		TLSConfig: opt.TLSConfig, PoolSize: opt.PoolSize, DialTimeout: opt.DialTimeout,
		ReadTimeout: opt.ReadTimeout, WriteTimeout: opt.WriteTimeout,
	}
	var rdb goredis.UniversalClient
	switch cfg.Mode {
	case "cluster":
		uo.IsClusterMode = true
		rdb = goredis.NewUniversalClient(uo)
	case "sentinel":
		uo.MasterName = cfg.MasterName
		rdb = goredis.NewUniversalClient(uo)
	default:
		rdb = goredis.NewClient(opt)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", opt.Addr, err)
	}
	return rdb, nil
}

// extraAddrs returns the addresses listed as ?addr=host:port in a Redis URL,
// the go-redis convention for further cluster or Sentinel nodes.
func extraAddrs(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u.Query()["addr"]
}

// NATS connects to the servers of cfg with the credentials and TLS it names,
// reconnecting forever: a service keeps running through a NATS outage and
// answers 503 where it needs the stream.
func NATS(cfg config.NATS, name string, opts ...nats.Option) (*nats.Conn, error) {
	o := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5 * time.Second),
	}
	if cfg.CredentialsFile != "" {
		o = append(o, nats.UserCredentials(cfg.CredentialsFile))
	}
	if cfg.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		o = append(o, opt)
	}
	if cfg.UseTLS() {
		tc, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("nats.tls: %w", err)
		}
		o = append(o, nats.Secure(tc))
	}
	o = append(o, opts...)
	nc, err := nats.Connect(strings.Join(cfg.Servers(), ","), o...)
	if err != nil {
		return nil, fmt.Errorf("nats at %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// ConfigPath returns the configuration file named by flagValue, else by
// VALET_CONFIG_FILE, else "" (defaults and environment only).
func ConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv(config.FileEnv)
}
