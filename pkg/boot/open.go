package boot

import (
	"context"
	"crypto/cipher"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/config"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
)

// Store opens Redis and the token store on it with the retention the
// configuration implies: deny marks outlive the replay window and cut-offs
// the longest grant, and opts after those. Closing the store closes the
// Redis client.
func Store(ctx context.Context, cfg *config.Config, aead cipher.AEAD, log *zap.Logger, opts ...redisstore.Option) (*redisstore.Store, error) {
	rdb, err := Redis(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	st, err := redisstore.New(ctx, rdb, aead, append([]redisstore.Option{redisstore.WithPrefix(cfg.Redis.KeyPrefix), redisstore.WithLogger(log),
		redisstore.WithDenyRetention(cfg.Tokens.ReplayWindow()), redisstore.WithMaxGrantLifetime(cfg.Tokens.RefreshAbsoluteLifetime)}, opts...)...)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return st, nil
}

// StreamsConfig is the stream configuration the Valet configuration implies:
// revocations kept the maximum access-token lifetime plus skew and margin.
func StreamsConfig(cfg *config.Config) bus.StreamsConfig {
	return bus.StreamsConfig{
		Prefix:                 cfg.NATS.SubjectPrefix,
		MaxAccessTokenLifetime: cfg.Tokens.MaxAccessTokenLifetime,
		RetentionMargin:        cfg.Tokens.ClockSkew + cfg.NATS.StreamMargin,
		Replicas:               cfg.NATS.StreamReplicas,
	}
}

// JetStream connects to NATS as name and makes sure Valet's streams exist
// (bus.EnsureStreams, bounded to 30 s). The caller closes the connection.
func JetStream(ctx context.Context, cfg *config.Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := NATS(cfg.NATS, name)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("%s: jetstream: %w", name, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(sctx, js, StreamsConfig(cfg)); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
