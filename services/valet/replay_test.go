package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/bus"
	"github.com/valetauth/valet/pkg/store"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
)

// TestReplayCommandRebuildsDenyState publishes a revocation to the stream of
// a fresh Redis that never saw it, runs `valet replay`, and finds the
// revocation in Redis.
func TestReplayCommandRebuildsDenyState(t *testing.T) {
	rs, ns := testenv.Redis(t), testenv.NATS(t)
	for k, v := range map[string]string{
		"VALET_DEV": "true", "VALET_REDIS_URL": rs.URL, "VALET_NATS_URL": ns.URL,
		"VALET_NATS_SUBJECT_PREFIX": ns.Prefix, "VALET_REDIS_KEY_PREFIX": rs.Prefix,
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{Prefix: ns.Prefix, MaxAccessTokenLifetime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.NewPublisher(js, ns.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.New(events.NewID(), "http://localhost:8080", time.Now(), &events.TokenRevoked{JTI: "jti-replayed", Exp: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"replay"}, &out, &errOut); code != 0 {
		t.Fatalf("valet replay exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "replayed 1 revocations") {
		t.Fatalf("output: %q", out.String())
	}
	opt, _ := goredis.ParseURL(rs.URL)
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	st, err := redisstore.New(ctx, goredis.NewClient(opt), aead, redisstore.WithPrefix(rs.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if d, err := st.DenyState(ctx, store.DenyQuery{JTI: "jti-replayed"}); err != nil || !d.JTIRevoked {
		t.Fatalf("deny state after valet replay: %+v, %v", d, err)
	}
}
