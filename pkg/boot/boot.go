// Package boot opens the connections a service's main needs from the
// configuration: Redis (single, Sentinel or Cluster, with TLS and ACL user)
// and NATS (credentials, NKey, TLS, endless reconnect). It also builds, once
// for every main, the parts they wire alike: the shared dependencies with
// one cleanup path (Deps), the heartbeat, the revoke primitive and its
// relay, the client cache, the token checker's configuration and the "nats"
// readiness check. Only cmd/*/main.go and the all-in-one dev server call it;
// everything else gets its clients through constructors.
package boot

import (
	"context"
	"errors"
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

// NATS connects to the servers of cfg with the credentials, TLS and reply-inbox
// prefix it names, reconnecting forever: a service keeps running through a
// NATS outage and answers 503 where it needs the stream. When the connection
// is up at once, it also checks that the user may subscribe to its reply
// inboxes, and returns an error naming nats.inbox_prefix if not: a service
// whose prefix its NATS permissions do not allow would otherwise receive no
// reply at all and fail later on a bare timeout.
//
// The prefix (nats.CustomInboxPrefix, when not NATS's own _INBOX) is what
// lets the server keep other users from reading this service's replies
// (deploy/nats/accounts.conf). Verified in nats.go v1.55.0 that every reply
// subject the services create is under it:
//   - Conn.Request*/RequestMsg* (new style): createNewRequestAndSend subscribes
//     its respMux to respSub, "<Conn.NewInbox()>.*" (initNewResp); old style
//     and nats.go's context.go use Conn.NewInbox(), which honours
//     Opts.InboxPrefix (the package-level nats.NewInbox does not; nothing in
//     Valet calls it). Every jetstream API call (apiRequest: EnsureStreams,
//     stream and consumer create/info/delete, ordered-consumer resets) and
//     the synchronous PublishMsg (RequestMsgWithContext) go through these.
//   - jetstream.New: setReplyPrefix takes Opts.InboxPrefix + "."; the
//     PublishMsgAsync acks subscribe to "<prefix>.<token>.*" (newAsyncReply).
//   - Pull consumers: Consume, Messages and fetch (Fetch, FetchNoWait,
//     FetchBytes, Next) subscribe to p.js.conn.NewInbox() and send their pull
//     requests with it as reply; ordered consumers (OrderedConsumer, as
//     pkg/bus.Consumer and pkg/edge use them) run on those same pull paths.
//   - Msg.DoubleAck uses RequestWithContext; plain acks carry no reply.
func NATS(cfg config.NATS, name string, opts ...nats.Option) (*nats.Conn, error) {
	o := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5 * time.Second),
	}
	if cfg.InboxPrefix != "" && cfg.InboxPrefix != config.DefaultInboxPrefix {
		o = append(o, nats.CustomInboxPrefix(cfg.InboxPrefix))
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
	if err := checkInbox(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats at %s: nats.inbox_prefix %q: %w", cfg.URL, inboxPrefix(cfg), err)
	}
	return nc, nil
}

// inboxCheckTimeout bounds the round trip of checkInbox.
const inboxCheckTimeout = 5 * time.Second

// checkInbox subscribes to a reply inbox of nc, waits for the server to have
// processed the subscription, and returns an error if it refused it. The
// server answers a refused subscription with -ERR before the PONG of the
// flush, and nats.go records it in LastError before it reads the PONG, so no
// wait is needed. Not connected yet (the servers are down and the connection
// retries), or no answer within inboxCheckTimeout, it returns nil: the
// service then starts as it did before the check.
func checkInbox(nc *nats.Conn) error {
	if !nc.IsConnected() {
		return nil
	}
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		return fmt.Errorf("subscribe to a reply inbox: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.FlushTimeout(inboxCheckTimeout); err != nil {
		return nil
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), sub.Subject) {
		return fmt.Errorf("the NATS user may not subscribe to its reply inboxes, so it would get no reply "+
			"(set nats.inbox_prefix to the prefix its subscribe permissions allow, deploy/nats/accounts.conf): %w", err)
	}
	return nil
}

// inboxPrefix returns the prefix a connection made for cfg uses.
func inboxPrefix(cfg config.NATS) string {
	if cfg.InboxPrefix == "" {
		return config.DefaultInboxPrefix
	}
	return cfg.InboxPrefix
}

// ConfigPath returns the configuration file named by flagValue, else by
// VALET_CONFIG_FILE, else "" (defaults and environment only).
func ConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv(config.FileEnv)
}
